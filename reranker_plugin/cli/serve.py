"""Serving commands: `reranker deploy`, `models list|undeploy|delete`, `pipeline show`, `search`."""
from __future__ import annotations

from pathlib import Path

import click
from rich import box
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from reranker_core.config import override
from reranker_core.errors import RerankerError

from .app import Context, Deprecated, GrammarCommand, cli, console, err_console, pass_ctx


# ----------------------------------------------------------------- deploy
@cli.command()
@click.argument("model_zip", type=click.Path(path_type=Path))
@click.option("--name", "model_name", help="Model name in ML Commons [deploy.model_name].")
@click.option("--model-version", help="Model version label [deploy.model_version].")
@click.option("--group", "model_group", help="Model group [deploy.model_group].")
@click.option("--index", help="Index the pipeline serves [deploy.index].")
@click.option("--field", "document_fields", multiple=True, help="Document field(s) to rerank on; repeatable "
              "[deploy.document_fields, else the product template's].")
@click.option("--pipeline", help="Search pipeline name [deploy.pipeline].")
@click.option("--default-pipeline/--no-default-pipeline", default=None,
              help="Make the pipeline the index's default [deploy.default_pipeline].")
@click.option("--undeploy-previous/--keep-previous", default=None,
              help="After the switch, undeploy the model the pipeline used before once its searches have drained, "
                   "unless another pipeline uses it [deploy.undeploy_previous]. The main job does; keep it for a "
                   "rollback by pipeline.")
@click.option("--timeout", "deploy_timeout_s", type=float, help="Seconds to wait for deployment.")
@pass_ctx
def deploy(ctx: Context, model_zip: Path, **flags) -> None:
    """Validate MODEL_ZIP, register and deploy it, then point the rerank pipeline at it.

    The serving pipeline changes only after the new model answered a test
    prediction; a failed run removes what it registered, so re-running converges.

    Example:

    \b
      reranker deploy runs/student.zip --index products --field title --pipeline rerank
    """
    from reranker_core.model_zip import validate_zip

    from ..mlcommons.deploy import deploy as run_deploy

    flags["document_fields"] = tuple(flags["document_fields"]) or None
    cfg = override(ctx.config.deploy, **flags)
    cfg = override(cfg, document_fields=cfg.document_fields or ctx.config.template.document_fields)
    artifact = validate_zip(model_zip)
    client = ctx.client()
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done)

        result = run_deploy(client, artifact, cfg, report)
    how = "reused" if result.reused else "registered"
    console.print(f"model {result.model_id} ({how}, {artifact.size_bytes / 1e6:.1f} MB) deployed; "
                  f"pipeline {result.pipeline!r} now reranks {cfg.index!r} on {', '.join(cfg.document_fields)}")
    if result.previous_undeployed:
        console.print(f"previous model {result.previous_model_id} undeployed (still registered)")
    elif result.previous_model_id:
        console.print(f"previous model {result.previous_model_id} is still deployed: "
                      f"`reranker models undeploy -- {result.previous_model_id}` frees its memory")


# ----------------------------------------------------------------- models
@cli.group()
def models() -> None:
    """List, undeploy and delete models in ML Commons.

    Example:

    \b
      reranker models list
      reranker models undeploy -- MODEL_ID
    """


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
    import dataclasses
    import json

    from ..mlcommons.client import MLCommons
    from ..mlcommons.pipeline import pipelines_by_model

    client = ctx.client()
    found = MLCommons(client).list_models()
    used_by = pipelines_by_model(client)
    if output_format == "json":
        rows = [{**dataclasses.asdict(m), "pipelines": used_by.get(m.model_id, [])} for m in found]
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(Column("model / id", no_wrap=True), Column("MB", justify="right", no_wrap=True), "dtype", "layers",
                  "state", Column("pipelines", overflow="fold"), box=box.SIMPLE_HEAD, pad_edge=False)
    for m in found:  # the id under the name keeps a row within 80 columns
        size = f"{m.size_bytes / 1e6:.1f}" if m.size_bytes else "?"
        table.add_row(f"{m.name} v{m.version}\n[dim]{m.model_id}[/dim]", size, m.precision or "?",
                      str(m.layers or "?"), m.state, "\n".join(used_by.get(m.model_id, [])) or "-")
    console.print(table)


@models.command("undeploy")
@click.argument("model_id")
@pass_ctx
def models_undeploy(ctx: Context, model_id: str) -> None:
    """Free a model's memory on the nodes (it stays registered).

    Example:

    \b
      reranker models undeploy -- MODEL_ID
    """
    from ..mlcommons.client import MLCommons

    MLCommons(ctx.client()).undeploy(model_id)
    console.print(f"undeployed {model_id}")


@models.command("delete")
@click.argument("model_id")
@pass_ctx
def models_delete(ctx: Context, model_id: str) -> None:
    """Undeploy (if needed) and delete a model with its chunks.

    Example:

    \b
      reranker models delete -- MODEL_ID
    """
    from ..mlcommons.client import MLCommons

    ml = MLCommons(ctx.client())
    if ml.get_model(model_id) is None:
        raise RerankerError(f"model {model_id} does not exist", "see `reranker models list`")
    ml.delete(model_id)
    console.print(f"deleted {model_id}")


# --------------------------------------------------------------- pipeline
@cli.group()
def pipeline() -> None:
    """Inspect rerank search pipelines.

    Example:

    \b
      reranker pipeline show rerank
    """


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


# ----------------------------------------------------------------- search
@cli.command()
@click.argument("query")
@click.option("--index", help="Index to search [deploy.index].")
@click.option("--field", "fields", multiple=True, help="Text field(s) to match and show [deploy.document_fields].")
@click.option("--pipeline", "pipeline_name", help="Rerank pipeline [deploy.pipeline].")
@click.option("-k", "--size", default=10, show_default=True, help="Hits per side.")
@pass_ctx
def search(ctx: Context, query: str, index: str | None, fields: tuple[str, ...], pipeline_name: str | None,
           size: int) -> None:
    """Show the top hits for QUERY without and with the rerank pipeline, side by side.

    Example:

    \b
      reranker search "cordless drill" --index products
    """
    from ..jobs.search import search as run_search

    cfg = ctx.config.deploy
    index, fields, pipeline_name = index or cfg.index, fields or ctx.config.document_fields, pipeline_name or cfg.pipeline
    client = ctx.client()
    plain = run_search(client, index, query, fields, size, None)
    reranked = run_search(client, index, query, fields, size, pipeline_name)
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
