"""`reranker cluster up|down|status|logs`: the local single-node OpenSearch."""
from __future__ import annotations

import sys
import time

import click

from reranker_core.config import override

from .app import Context, cli, console, pass_ctx


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
