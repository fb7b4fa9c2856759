"""The `reranker` command line: local node, deploy, models, pipelines, search.

Heavy libraries (torch, transformers) are imported inside commands only, so
``reranker --help`` stays instant. Every :class:`RerankerError` becomes one line
on stderr and a non-zero exit.
"""
from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from reranker_core.config import Config, load_config, override
from reranker_core.errors import RerankerError

console = Console()
err_console = Console(stderr=True)


class Context:
    """What the group passes to commands: the loaded config."""

    def __init__(self, config: Config, verbose: bool = False) -> None:
        self.config = config
        self.verbose = verbose

    def quiet_models(self) -> None:
        """Silence transformers' load reports and tqdm bars (unless -v): our progress display says enough."""
        if not self.verbose:
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()

    def client(self):
        from ..connection import connect

        return connect(self.config.cluster)


pass_ctx = click.make_pass_decorator(Context)


class _Group(click.Group):
    """Turns a :class:`RerankerError` anywhere below into one line on stderr and its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RerankerError as err:
            err_console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)
            ctx.exit(err.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML config (default: ./reranker.yaml if present). Flags override it.")
@click.option("--url", help="OpenSearch URL (overrides cluster.url and OPENSEARCH_URL).")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, url: str | None, verbose: bool) -> None:
    """Distilled cross-encoder reranking for OpenSearch.

    Start a local node, deploy an exported model zip into ML Commons behind a
    rerank search pipeline, and compare search results with and without it.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    # opensearch-py logs every failed attempt with a traceback; our errors say it in one line.
    logging.getLogger("opensearch").setLevel(logging.INFO if verbose else logging.CRITICAL)
    if not verbose:  # transformers' load reports and tqdm bars would drown our own progress display
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")  # e.g. the GGUF dequantizer's bar; read when tqdm is imported
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
    config = load_config(config_path)
    if url:
        config = override(config, cluster=override(config.cluster, url=url))
    ctx.obj = Context(config, verbose)


# ---------------------------------------------------------------- cluster
@cli.group()
def cluster() -> None:
    """Run a local single-node OpenSearch (ML Commons + neural-search) built from Maven Central."""


def _local_node(ctx: Context, port: int | None = None):
    from ..node.local import LocalNode

    return LocalNode(override(ctx.config.local_node, port=port))


@cluster.command("up")
@click.option("--port", type=int, help="HTTP port (default from local_node.port: 9200).")
@pass_ctx
def cluster_up(ctx: Context, port: int | None) -> None:
    """Download (once), assemble and start the node; a no-op if it already runs."""
    started = time.monotonic()
    with console.status("starting the local OpenSearch node…"):
        status = _local_node(ctx, port).up()
    console.print(f"OpenSearch {status.version} up at {status.url} (pid {status.pid}, {status.health}) "
                  f"in {time.monotonic() - started:.1f}s")


@cluster.command("down")
@pass_ctx
def cluster_down(ctx: Context) -> None:
    """Stop the local node (its data is kept)."""
    stopped = _local_node(ctx).down()
    console.print("stopped" if stopped else "not running")


@cluster.command("status")
@pass_ctx
def cluster_status(ctx: Context) -> None:
    """Show whether the local node runs, its health and plugins; exit 1 if it is down."""
    status = _local_node(ctx).status()
    console.print(f"url: {status.url}\nrunning: {status.running} (pid {status.pid})\nhealth: {status.health}\n"
                  f"version: {status.version}\nplugins: {', '.join(status.plugins) or '-'}\nlog: {status.log_file}")
    if not status.health:
        sys.exit(1)


@cluster.command("logs")
@click.option("-n", "--lines", default=50, show_default=True, help="How many lines from the end.")
@pass_ctx
def cluster_logs(ctx: Context, lines: int) -> None:
    """Print the end of the local node's log."""
    click.echo("".join(_local_node(ctx).tail_logs(lines)), nl=False)


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
@click.option("--timeout", "deploy_timeout_s", type=float, help="Seconds to wait for deployment.")
@pass_ctx
def deploy(ctx: Context, model_zip: Path, **flags) -> None:
    """Validate MODEL_ZIP, register and deploy it, then point the rerank pipeline at it.

    The serving pipeline changes only after the new model answered a test
    prediction; a failed run removes what it registered, so re-running converges.
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
    if result.previous_model_id:
        console.print(f"previous model {result.previous_model_id} is still deployed: "
                      f"`reranker models undeploy -- {result.previous_model_id}` frees its memory")


# ----------------------------------------------------------------- models
@cli.group()
def models() -> None:
    """List, undeploy and delete models in ML Commons."""


@models.command("list")
@pass_ctx
def models_list(ctx: Context) -> None:
    """Registered models, newest first."""
    from ..mlcommons.client import MLCommons

    table = Table("name", "version", "function", "state", "sha256")
    table.add_column("model id", no_wrap=True)
    for m in MLCommons(ctx.client()).list_models():
        table.add_row(m.name, m.version, m.function_name, m.state, (m.content_hash or "")[:12], m.model_id)
    console.print(table)


@models.command("undeploy")
@click.argument("model_id")
@pass_ctx
def models_undeploy(ctx: Context, model_id: str) -> None:
    """Free a model's memory on the nodes (it stays registered)."""
    from ..mlcommons.client import MLCommons

    MLCommons(ctx.client()).undeploy(model_id)
    console.print(f"undeployed {model_id}")


@models.command("delete")
@click.argument("model_id")
@pass_ctx
def models_delete(ctx: Context, model_id: str) -> None:
    """Undeploy (if needed) and delete a model with its chunks."""
    from ..mlcommons.client import MLCommons

    ml = MLCommons(ctx.client())
    if ml.get_model(model_id) is None:
        raise RerankerError(f"model {model_id} does not exist", "see `reranker models list`")
    ml.delete(model_id)
    console.print(f"deleted {model_id}")


# --------------------------------------------------------------- pipeline
@cli.group()
def pipeline() -> None:
    """Inspect rerank search pipelines."""


@pipeline.command("show")
@click.argument("name", required=False)
@pass_ctx
def pipeline_show(ctx: Context, name: str | None) -> None:
    """Print pipeline NAME (default: deploy.pipeline) as JSON."""
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
    """Show the top hits for QUERY without and with the rerank pipeline, side by side."""
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


from . import jobs, train  # noqa: E402,F401  (register their commands on `cli`)


def main() -> None:
    """Console-script entry point."""
    cli()
