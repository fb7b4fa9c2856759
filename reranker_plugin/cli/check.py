"""`reranker check`: one line per probe of the cluster; exit 0 only if deploy + rerank will work there."""
from __future__ import annotations

import click

from reranker_core.errors import ClusterError

from .app import Context, cli, pass_ctx


@cli.command("check")
@click.option("--index", help="Index the rerank pipeline will serve, for the permission probe [deploy.index].")
@pass_ctx
def check(ctx: Context, index: str | None) -> None:
    """Probe the cluster: reachable, version, plugins, ML settings and breakers, permissions, disk.

    Each probe prints one line (ok, FAIL with its fix, or skip); the exit code
    is 0 only when every probe passed. Then one warn line, with its fix, per
    setting of opensearch/ml-settings-production.json the cluster lacks (advice:
    it does not change the exit code). It only reads the cluster.

    Example:

    \b
      reranker check
      OPENSEARCH_URL=https://search.example.com:9200 OPENSEARCH_USER=deployer reranker check --index products
    """
    from ..jobs.check import run_checks

    probes = run_checks(ctx.config, index or ctx.config.deploy.index)
    for probe in probes:
        click.echo(probe.line())
    failed = [p.name for p in probes if not p.ok and not p.skipped]
    if failed:
        raise ClusterError(f"{len(failed)} of {len(probes)} probes failed ({', '.join(failed)})",
                           "apply the fix on each FAIL line, then rerun `reranker check`")
