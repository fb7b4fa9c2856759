"""Commands that join data, models and the cluster: index-catalog, augment, evaluate."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from reranker_core.config import override

from .app import Context, cli, data_option, engine_options, kind_option, pass_ctx, with_data, with_engine


@cli.command("index-catalog")
@click.argument("catalog", required=False, type=click.Path(path_type=Path))
@data_option
@kind_option
@click.option("--index", help="Target index [deploy.index].")
@pass_ctx
def index_catalog(ctx: Context, catalog: Path | None, data: Path | None, kind: str | None, index: str | None) -> None:
    """Bulk-index a catalog (CSV / JSONL / Parquet with an id column), or the dataset's products.

    Documents keep their fields plus `product_text` (the product template's
    rendering); ids are the product ids, so re-running updates, never duplicates.
    Rows the cluster rejects are listed by id and make the exit code 1.

    Example:

    \b
      reranker index-catalog catalog.jsonl --index products
    """
    from ..jobs.api import index_products

    index_products(with_data(ctx.config, data, kind), catalog=catalog, index=index, out=ctx.output)


@cli.command("augment")
@click.argument("teacher_dir", type=click.Path(path_type=Path))
@click.option("--log", "logs", multiple=True, type=click.Path(path_type=Path),
              help="Query log file(s), JSONL or CSV; repeatable [augment.logs]. None: the UBI index.")
@click.option("--ubi-index", help="UBI queries index [augment.ubi_index].")
@data_option
@kind_option
@click.option("--index", help="Index to retrieve from [deploy.index].")
@click.option("--top-k", type=int, help="Hits per query [augment.top_k].")
@click.option("--max-queries", type=int,
              help="Use at most N of the log's queries (the most frequent) [augment.max_queries].")
@click.option("--output", type=click.Path(path_type=Path), help="Output directory [augment.output].")
@click.option("--max-malformed-fraction", type=float,
              help="Abort above this share of unreadable log lines [augment.max_malformed_fraction].")
@click.option("--restart", is_flag=True, help="Discard earlier parts instead of resuming.")
@click.option("--replace-stale", is_flag=True, help="Discard earlier parts only when another log, index, template "
              "or teacher (by content) made them, instead of stopping; resume otherwise.")
@engine_options
@pass_ctx
def augment(ctx: Context, teacher_dir: Path, logs: tuple[Path, ...], data: Path | None, kind: str | None,
            index: str | None, restart: bool, replace_stale: bool, engine: str | None, ray_address: str | None,
            **flags) -> None:
    """Mine (query, product) pairs from query logs via the live index and label them with the teacher.

    Evaluation queries (validation / test split) are excluded and, when a
    dataset is configured, human-judged pairs are skipped. Resumes by default,
    from parts written by either engine.

    Example:

    \b
      reranker augment runs/teacher --log queries.jsonl --top-k 20
    """
    ctx.quiet_models()
    from ..jobs.api import augment_pool

    flags["output"] = str(flags["output"]) if flags["output"] else None
    config = with_engine(with_data(ctx.config, data, kind), engine, ray_address)
    config = dataclasses.replace(config, augment=override(config.augment, **flags))
    augment_pool(config, teacher_dir, logs=logs, index=index, restart=restart, replace_stale=replace_stale,
                 out=ctx.output)


@cli.command("evaluate")
@data_option
@kind_option
@click.option("--pipeline", "pipelines", multiple=True,
              help="Rerank pipeline(s) to compare with BM25; repeatable; the first is the shipped one "
                   "[evaluate.pipelines, else deploy.pipeline].")
@click.option("--offline", "offline", multiple=True, type=click.Path(path_type=Path),
              help="Also score this teacher / student checkpoint or zip locally on the same lists; repeatable.")
@click.option("--index", help="Index [deploy.index].")
@click.option("--split", type=click.Choice(["train", "validation", "test"]), help="Judged split [evaluate.split].")
@click.option("--max-queries", type=int,
              help="Use at most N of the split's queries (sorted) [evaluate.max_queries].")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Results file [evaluate.output].")
@pass_ctx
def evaluate(ctx: Context, data: Path | None, kind: str | None, pipelines: tuple[str, ...], offline: tuple[Path, ...],
             index: str | None, split: str | None, max_queries: int | None, json_path: Path | None) -> None:
    """BM25 alone vs rerank pipeline(s) through the cluster, on held-out judged queries, with 95% intervals.

    Each query's judged products only are ranked (BM25 restricted to them, then
    the pipeline reranks), so every ranked product has a human label. Random
    order is always reported; every system is compared with BM25 and the first
    pipeline with every other system, as paired differences over the same queries.

    Example:

    \b
      reranker evaluate --pipeline rerank --split test
    """
    from ..jobs.api import evaluate_pipelines

    config = with_data(ctx.config, data, kind)
    config = dataclasses.replace(config, evaluate=override(config.evaluate, split=split, max_queries=max_queries,
                                                           output=str(json_path) if json_path else None))
    if offline:
        ctx.quiet_models()
    evaluate_pipelines(config, pipelines=pipelines, offline=offline, index=index, out=ctx.output)
