"""Serving commands: `models deploy|list|undeploy|delete` (`deploy` for short), `pipeline list|show|delete`,
`search`."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import click
from rich import box
from rich.table import Column, Table

from reranker_core.config import override
from reranker_core.errors import RerankerError

from .app import Context, Deprecated, GrammarCommand, cli, console, pass_ctx


# ----------------------------------------------------------------- deploy
DEPLOY_HELP = """Validate MODEL_ZIP, register and deploy it, then point the rerank pipeline at it.

    The serving pipeline changes only after the new model answered a test
    prediction; a failed run removes what it registered, so re-running converges.{shortcut}

    Example:

    \b
      reranker {path} runs/student.zip --index products --field title --pipeline rerank
    """


def deploy_options(command):
    """MODEL_ZIP and the deploy flags, shared by `models deploy` and its shortcut `deploy`."""
    for decorator in reversed(_DEPLOY_PARAMS):
        command = decorator(command)
    return command


_DEPLOY_PARAMS = [
    click.argument("model_zip", type=click.Path(path_type=Path)),
    click.option("--name", "model_name", help="Model name in ML Commons [deploy.model_name]."),
    click.option("--model-version", help="Model version label [deploy.model_version]."),
    click.option("--group", "model_group", help="Model group [deploy.model_group]."),
    click.option("--index", help="Index the pipeline serves [deploy.index]."),
    click.option("--field", "document_fields", multiple=True, help="Document field(s) to rerank on; repeatable "
                 "[deploy.document_fields, else the product template's]."),
    click.option("--pipeline", help="Search pipeline name [deploy.pipeline]."),
    click.option("--default-pipeline/--no-default-pipeline", default=None,
                 help="Make the pipeline the index's default [deploy.default_pipeline]."),
    click.option("--undeploy-previous/--keep-previous", default=None,
                 help="After the switch, undeploy the model the pipeline used before once its searches have "
                      "drained, unless another pipeline uses it [deploy.undeploy_previous]. The main job does; "
                      "keep it for a rollback by pipeline."),
    click.option("--timeout", "deploy_timeout_s", type=float, help="Seconds to wait for deployment."),
    pass_ctx,
]


@cli.command("deploy", short_help="Shortcut for `models deploy`: register and deploy MODEL_ZIP.",
             help=DEPLOY_HELP.format(
    shortcut="\n\n    A documented shortcut for `reranker models deploy`: the same command.", path="deploy"))
@deploy_options
def deploy(ctx: Context, model_zip: Path, **flags) -> None:
    """Shortcut for `reranker models deploy` (help: DEPLOY_HELP)."""
    run_deploy_command(ctx, model_zip, **flags)


def run_deploy_command(ctx: Context, model_zip: Path, **flags) -> None:
    """What `models deploy` and `deploy` do: validate, register, deploy, switch the pipeline."""
    from ..jobs.api import deploy_model

    flags["document_fields"] = tuple(flags["document_fields"]) or None
    config = dataclasses.replace(ctx.config, deploy=override(ctx.config.deploy, **flags))
    deploy_model(config, model_zip, out=ctx.output)


# ----------------------------------------------------------------- models
@cli.group()
def models() -> None:
    """Deploy, list, undeploy and delete models in ML Commons.

    Example:

    \b
      reranker models deploy runs/student.zip --index products --field title
      reranker models list
      reranker models undeploy -- MODEL_ID
    """


@models.command("deploy", help=DEPLOY_HELP.format(shortcut="", path="models deploy"))
@deploy_options
def models_deploy(ctx: Context, model_zip: Path, **flags) -> None:
    """Help: DEPLOY_HELP."""
    run_deploy_command(ctx, model_zip, **flags)


format_option = click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table",
                             show_default=True, help="Print a table, or JSON for scripts.")


@models.command("list", cls=GrammarCommand,
                old_spellings={"--json": Deprecated(("--format", "json"), "use --format json")})
@format_option
@pass_ctx
def models_list(ctx: Context, output_format: str) -> None:
    """Registered models, newest first: size, precision, layers, state and the pipelines that use each.

    Example:

    \b
      reranker models list --format json
    """
    import json

    from ..jobs.serving import served_models

    found = served_models(ctx.client())
    if output_format == "json":
        click.echo(json.dumps([{**dataclasses.asdict(s.model), "pipelines": s.pipelines} for s in found], indent=2))
        return
    table = Table(Column("model / id", no_wrap=True), Column("MB", justify="right", no_wrap=True), "dtype", "layers",
                  "state", Column("pipelines", overflow="fold"), box=box.SIMPLE_HEAD, pad_edge=False)
    for served in found:  # the id under the name keeps a row within 80 columns
        m = served.model
        size = f"{m.size_bytes / 1e6:.1f}" if m.size_bytes else "?"
        table.add_row(f"{m.name} v{m.version}\n[dim]{m.model_id}[/dim]", size, m.precision or "?",
                      str(m.layers or "?"), m.state, "\n".join(served.pipelines) or "-")
    console.print(table)


serving_option = click.option("--force", is_flag=True,
                              help="Even if a search pipeline reranks with it (its searches then fail).")


@models.command("undeploy")
@click.argument("model_id")
@serving_option
@pass_ctx
def models_undeploy(ctx: Context, model_id: str, force: bool) -> None:
    """Free a model's memory on the nodes (it stays registered); refused while a pipeline uses it.

    Example:

    \b
      reranker models undeploy -- MODEL_ID
    """
    from ..jobs.serving import undeploy_model

    undeploy_model(ctx.client(), model_id, force)
    console.print(f"undeployed {model_id}")


@models.command("delete")
@click.argument("model_id")
@serving_option
@pass_ctx
def models_delete(ctx: Context, model_id: str, force: bool) -> None:
    """Undeploy (if needed) and delete a model with its chunks; refused while a pipeline uses it.

    Example:

    \b
      reranker models delete -- MODEL_ID
    """
    from ..jobs.serving import delete_model

    delete_model(ctx.client(), model_id, force)
    console.print(f"deleted {model_id}")


# --------------------------------------------------------------- pipeline
@cli.group()
def pipeline() -> None:
    """List, inspect and delete search pipelines.

    Example:

    \b
      reranker pipeline list
      reranker pipeline show rerank
    """


@pipeline.command("list")
@format_option
@pass_ctx
def pipeline_list(ctx: Context, output_format: str) -> None:
    """Search pipelines: the model each reranks with and the indices whose default it is.

    Example:

    \b
      reranker pipeline list --format json
    """
    import json

    from ..jobs.serving import pipeline_uses

    rows = [dataclasses.asdict(use) for use in pipeline_uses(ctx.client())]
    if output_format == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(Column("pipeline", no_wrap=True), Column("model", no_wrap=True),
                  Column("default of", overflow="fold"), box=box.SIMPLE_HEAD, pad_edge=False)
    for row in rows:
        table.add_row(row["name"], row["model_id"] or "-", ", ".join(row["default_of"]) or "-")
    console.print(table)


@pipeline.command("show")
@click.argument("name", required=False)
@pass_ctx
def pipeline_show(ctx: Context, name: str | None) -> None:
    """Print pipeline NAME (default: deploy.pipeline) as JSON.

    Example:

    \b
      reranker pipeline show rerank
    """
    import json

    from ..mlcommons.pipeline import get_pipeline

    name = name or ctx.config.deploy.pipeline
    body = get_pipeline(ctx.client(), name)
    if body is None:
        raise RerankerError(f"search pipeline {name!r} does not exist", "create it with `reranker deploy`")
    click.echo(json.dumps(body, indent=2))


@pipeline.command("delete")
@click.argument("name")
@click.option("--force", is_flag=True, help="Also when it is an index's default pipeline: that setting is removed "
              "first, so plain searches on the index are no longer reranked.")
@pass_ctx
def pipeline_delete(ctx: Context, name: str, force: bool) -> None:
    """Delete search pipeline NAME (its model stays deployed; see `models undeploy`).

    It refuses when NAME is an index's default search pipeline, since every
    plain search on that index would then fail, unless --force.

    Example:

    \b
      reranker pipeline delete rerank-int8
    """
    from ..jobs.serving import delete_search_pipeline

    for index in delete_search_pipeline(ctx.client(), name, force):
        console.print(f"{index}: default pipeline {name!r} removed")
    console.print(f"deleted search pipeline {name!r}")


# ----------------------------------------------------------------- search
@cli.command()
@click.argument("query", required=False)
@click.option("--body", "body_file", type=click.Path(path_type=Path),
              help="JSON search body to send instead of the BM25 multi_match (QUERY, or the body's "
              "ext.rerank.query_context.query_text or first match query, is the text the reranker scores against).")
@click.option("--index", help="Index to search [deploy.index].")
@click.option("--field", "fields", multiple=True, help="Text field(s) to match and show [deploy.document_fields].")
@click.option("--pipeline", "pipeline_name", help="Rerank pipeline [deploy.pipeline].")
@click.option("-k", "--size", type=click.IntRange(min=1), help="Hits per side [10, or the body's size].")
@pass_ctx
def search(ctx: Context, query: str | None, body_file: Path | None, index: str | None, fields: tuple[str, ...],
           pipeline_name: str | None, size: int | None) -> None:
    """Show the top hits for QUERY without and with the rerank pipeline, side by side.

    With --body FILE the search body comes from FILE (any query DSL); QUERY may
    then be left out when the body holds the query text.

    Example:

    \b
      reranker search "cordless drill" --index products
      reranker search --body query.json --index products
    """
    from ..jobs.search import read_body, search as run_search

    cfg = ctx.config.deploy
    index, fields, pipeline_name = index or cfg.index, fields or ctx.config.document_fields, pipeline_name or cfg.pipeline
    body = None
    if body_file is not None:
        body, query = read_body(body_file, query, size)
    elif query is None:
        raise click.UsageError("pass QUERY, or --body FILE with a search body")
    size = size or 10
    client = ctx.client()
    plain = run_search(client, index, query, fields, size, None, body)
    reranked = run_search(client, index, query, fields, size, pipeline_name, body)
    table = Table(title=f"{query!r} on {index}", show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("BM25", overflow="fold")
    table.add_column("score", justify="right")
    table.add_column(f"reranked ({pipeline_name})", overflow="fold")
    table.add_column("score", justify="right")
    for i in range(max(len(plain), len(reranked))):
        left = plain[i] if i < len(plain) else None
        right = reranked[i] if i < len(reranked) else None
        table.add_row(str(i + 1), left.text if left else "", f"{left.score:.3f}" if left else "",
                      right.text if right else "", f"{right.score:.3f}" if right else "")
    console.print(table)
