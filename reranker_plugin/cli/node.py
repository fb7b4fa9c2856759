"""`reranker cluster up|down|status|logs`: the local single-node OpenSearch."""
from __future__ import annotations

import click

from reranker_core.config import override
from reranker_core.errors import LocalNodeError

from .app import Context, cli, console, pass_ctx


@cli.group()
def cluster() -> None:
    """Run a local single-node OpenSearch (ML Commons + neural-search) built from Maven Central.

    \b
    Plain: OpenSearch 3.6 (.env) over HTTP on 9200.
    --secure: OpenSearch 2.19.1 with the security plugin over HTTPS on 9201.

    Example:

    \b
      reranker cluster up
      reranker cluster status
    """


def _local_node(ctx: Context, secure: bool, port: int | None = None):
    from ..node.local import LocalNode

    key = "secure_port" if secure else "port"
    return LocalNode(override(ctx.config.local_node, **{key: port}), secure=secure)


secure_option = click.option(
    "--secure", is_flag=True,
    help="The secured node instead: OpenSearch 2.19.1 with the security plugin (HTTPS, basic auth, a restricted "
         "role), on local_node.secure_port (9201).")


@cluster.command("up")
@click.option("--port", type=int, help="HTTP port (default local_node.port: 9200, or secure_port: 9201).")
@secure_option
@pass_ctx
def cluster_up(ctx: Context, port: int | None, secure: bool) -> None:
    """Download (once), assemble and start the node; a no-op if it already runs.

    Then every model a rerank pipeline uses is checked and, if it does not
    answer (ML Commons may not have redeployed it after a restart), deployed
    again, so reranked search works when this returns.

    Example:

    \b
      reranker cluster up
      reranker cluster up --secure
    """
    from ..jobs.api import start_local_node

    up = start_local_node(ctx.config, port=port, secure=secure, out=ctx.output)
    node, status = up.node, up.status
    if node.credentials is not None:
        console.print(f"users: {', '.join(node.credentials.passwords)} (roles in opensearch/secure-node.yml); "
                      f"to use it as the restricted user:\n"
                      f"  export OPENSEARCH_URL={status.url} OPENSEARCH_CA_CERTS={node.credentials.ca_certs} "
                      f"OPENSEARCH_USER=reranker\n"
                      f"  export OPENSEARCH_PASSWORD=$(reranker cluster password reranker)", soft_wrap=True)


@cluster.command("down")
@secure_option
@pass_ctx
def cluster_down(ctx: Context, secure: bool) -> None:
    """Stop the local node (its data is kept).

    Example:

    \b
      reranker cluster down
    """
    stopped = _local_node(ctx, secure).down()
    console.print("stopped" if stopped else "not running")


@cluster.command("password")
@click.argument("user")
@pass_ctx
def cluster_password(ctx: Context, user: str) -> None:
    """Print the generated password of USER on the secured node (for $(…), so it never sits on a command line).

    Example:

    \b
      export OPENSEARCH_PASSWORD=$(reranker cluster password reranker)
    """

    credentials = _local_node(ctx, True).credentials
    if credentials is None:
        raise LocalNodeError("the secured node has no credentials yet", "run `reranker cluster up --secure` first")
    if user not in credentials.passwords:
        raise LocalNodeError(f"the secured node has no user {user!r}",
                             f"use one of {', '.join(credentials.passwords)}")
    click.echo(credentials.passwords[user])


@cluster.command("status")
@secure_option
@pass_ctx
def cluster_status(ctx: Context, secure: bool) -> None:
    """Show whether the local node runs, its health and plugins; exit 1 if it is down.

    With `reranker --url URL cluster status` it reports the cluster at URL
    instead (health, version, plugins), with cluster.* credentials.

    Example:

    \b
      reranker cluster status
      reranker --url http://127.0.0.1:9200 cluster status
    """
    if ctx.url:
        if secure:
            raise click.UsageError("--url and --secure name two clusters; pass one of them")
        _remote_status(ctx)
        return
    status = _local_node(ctx, secure).status()
    console.print(f"url: {status.url}\nrunning: {status.running} (pid {status.pid})\nhealth: {status.health}\n"
                  f"version: {status.version}\nplugins: {', '.join(status.plugins) or '-'}\nlog: {status.log_file}")
    if not status.health:
        raise LocalNodeError(f"the local node at {status.url} is down", f"start it with `reranker cluster up` "
                             f"(its log: {status.log_file})")


def _remote_status(ctx: Context) -> None:
    """`cluster status` for the cluster at --url: health, version and plugins, or one error line when unreachable."""
    from opensearchpy.exceptions import OpenSearchException

    from reranker_core.errors import ClusterError
    from reranker_core.redact import redact_url

    from ..connection import make_client

    url = redact_url(ctx.config.cluster.url)
    client = make_client(ctx.config.cluster)  # not connect(): a cluster without ML plugins still gets a status
    try:
        health = client.cluster.health()["status"]
        version = client.info()["version"]["number"]
        plugins = sorted({row["component"] for row in client.cat.plugins(format="json")})
    except (OpenSearchException, KeyError, TypeError) as err:
        raise ClusterError(f"the cluster at {url} did not answer ({type(err).__name__})",
                           "check --url and that the cluster is up") from err
    console.print(f"url: {url}\nhealth: {health}\nversion: {version}\nplugins: {', '.join(plugins) or '-'}",
                  highlight=False)


@cluster.command("logs")
@click.option("-n", "--lines", default=50, show_default=True, help="How many lines from the end.")
@secure_option
@pass_ctx
def cluster_logs(ctx: Context, lines: int, secure: bool) -> None:
    """Print the end of the local node's log.

    Example:

    \b
      reranker cluster logs -n 100
    """
    click.echo("".join(_local_node(ctx, secure).tail_logs(lines)), nl=False)
