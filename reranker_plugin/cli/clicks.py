"""Commands on UBI behaviour data: simulate-events, implicit-judgments (docs/clicks.md)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from reranker_core.config import override

from .app import Context, GrammarCommand, cli, data_option, kind_option, pass_ctx, renamed, with_data


@cli.command("simulate-events", cls=GrammarCommand, old_spellings={"--sidecar": renamed("--json")})
@data_option
@kind_option
@click.option("--index", help="Index whose BM25 pages the sessions see [deploy.index].")
@click.option("--events-index", help="UBI events index to write [clicks.events_index].")
@click.option("--queries-index", help="UBI queries index to write [clicks.queries_index].")
@click.option("--sessions", type=int, help="Searches to simulate [clicks.sessions].")
@click.option("--max-queries", type=int,
              help="Use at most N of the train split's queries (the most frequent) [clicks.max_queries].")
@click.option("--top-k", type=int, help="Results per page [clicks.top_k].")
@click.option("--model", type=click.Choice(["pbm", "cascade"]), help="Click model [clicks.model].")
@click.option("--eta", type=float, help="Examination decay: (1 / (rank + 1)) ** eta [clicks.eta].")
@click.option("--unjudged-attractiveness", type=float,
              help="Click probability of an examined, unjudged result [clicks.unjudged_attractiveness].")
@click.option("--noise", type=click.FloatRange(0, 1),
              help="Share of attractiveness that ignores relevance; 1: clicks follow position only [clicks.noise].")
@click.option("--seed", type=int, help="Random seed [clicks.seed].")
@click.option("--json", "sidecar", type=click.Path(path_type=Path),
              help="Where to write the simulation's parameters, seed and counts [clicks.sidecar].")
@pass_ctx
def simulate_events(ctx: Context, data: Path | None, kind: str | None, index: str | None, sidecar: Path | None,
                    **flags) -> None:
    """Write simulated UBI sessions (ubi_queries + ubi_events) for training-split queries only.

    Queries are drawn by frequency; each session sees the query's BM25 page from
    the live index and clicks by a position-based (or cascade) model whose attractiveness
    comes from the human grade of the pair (a stated default when unjudged).
    Every doc is marked application "reranker-simulated"; the model's
    parameters and the seed go to the sidecar.

    Example:

    \b
      reranker simulate-events --data data/train.csv.zip --sessions 5000 --seed 1
    """
    from ..jobs.api import simulate_clicks

    config = with_data(ctx.config, data, kind)
    clicks = override(config.clicks, sidecar=str(sidecar) if sidecar else None, **flags)
    simulate_clicks(dataclasses.replace(config, clicks=clicks), index=index, out=ctx.output)


@cli.command("implicit-judgments")
@click.option("--events", "events_file", type=click.Path(path_type=Path),
              help="ubi_events export (JSONL[.gz] / Parquet) instead of the index.")
@click.option("--queries", "queries_file", type=click.Path(path_type=Path),
              help="ubi_queries export (JSONL[.gz] / Parquet) instead of the index.")
@click.option("--events-index", help="UBI events index [clicks.events_index].")
@click.option("--queries-index", help="UBI queries index [clicks.queries_index].")
@click.option("--metric", type=click.Choice(["coec", "ctr"]), help="Rating to export [clicks.metric].")
@click.option("--max-rank", type=int, help="Positions counted: 0..N-1 [clicks.max_rank].")
@click.option("--max-malformed-fraction", type=float,
              help="Abort above this share of unreadable events [clicks.max_malformed_fraction].")
@click.option("--name", default="implicit-judgments", show_default=True, help="Judgment list name.")
@click.option("--output", type=click.Path(path_type=Path), help="Judgment list JSON [clicks.output].")
@pass_ctx
def implicit_judgments(ctx: Context, events_file: Path | None, queries_file: Path | None, name: str,
                       output: Path | None, **flags) -> None:
    """COEC (or CTR) implicit judgments per (training query, product) from UBI events.

    Events are joined to ubi_queries by query_id; validation and test queries
    are dropped before anything is counted. Writes a Search Relevance Workbench
    import body and a sidecar with counts, rank CTRs and, for simulated events,
    the simulation's parameters. teacher.implicit_judgments reads it.

    Example:

    \b
      reranker implicit-judgments --events ubi_events.jsonl.gz --queries ubi_queries.jsonl
    """
    from ..jobs.api import implicit_judgments as run

    config = dataclasses.replace(ctx.config, clicks=override(ctx.config.clicks, output=str(output) if output else None,
                                                             **flags))
    run(config, events_file=events_file, queries_file=queries_file, name=name, out=ctx.output)

