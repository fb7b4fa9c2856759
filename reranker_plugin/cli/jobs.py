"""Commands that join data, models and the cluster: index-catalog, augment, evaluate."""
from __future__ import annotations

from pathlib import Path

import click

from reranker_core.config import override
from reranker_core.errors import RerankerError

from .app import (Context, cli, console, data_option, engine_options, err_console, kind_option, load_data,
                  pass_ctx, progress_bar, report_comparison, with_data, with_engine)


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
    from training.datasets import read_catalog

    from ..jobs.catalog import index_catalog as run

    config = with_data(ctx.config, data, kind)
    index = index or config.deploy.index
    products = read_catalog(catalog) if catalog else load_data(config).products
    client = ctx.client()
    with progress_bar(f"indexing into {index}", "docs") as update:
        report = run(client, index, list(products.items()), config.template, progress=update)
    console.print(f"{report.indexed} products indexed into {index!r}; {len(report.failed)} failed")
    for product_id, reason in report.failed[:10]:
        err_console.print(f"  product {product_id}: {reason}", highlight=False)
    if report.failed:
        raise RerankerError(f"{len(report.failed)} product(s) were not indexed (first: {report.failed[0][0]})",
                            "fix those rows and re-run; indexed products are updated, not duplicated")


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
    from ..jobs.augment import augment as run
    from ..jobs.augment import judged_pairs

    flags["output"] = str(flags["output"]) if flags["output"] else None
    config = with_engine(with_data(ctx.config, data, kind), engine, ray_address)
    if config.engine.kind == "ray":
        from ..jobs.ray_engine import check_workers_reach

        check_workers_reach(config.engine, config.cluster)  # before any work
    cfg = override(config.augment, logs=tuple(map(str, logs)) or None, **flags)
    judged = judged_pairs(load_data(config)) if cfg.skip_judged and config.data.path else frozenset()
    client = ctx.client()
    index = index or config.deploy.index
    from training.ensemble import teacher_fingerprint

    teacher_id = teacher_fingerprint(teacher_dir)  # by content: a retrained teacher re-scores every pair
    with progress_bar("mining and labeling", "pairs") as update:
        if config.engine.kind == "ray":
            from ..jobs.ray_engine import RayLabeler

            labeler = RayLabeler(config.engine, config.cluster, index, cfg, config.template, teacher_dir, judged,
                                 config.teacher.score_batch_size, update)
            report = run(client, index, cfg, config.data, config.template, None, restart=restart, labeler=labeler,
                         teacher_id=teacher_id, replace_stale=replace_stale)
        else:
            from training.ensemble import load_teacher

            report = run(client, index, cfg, config.data, config.template, load_teacher(teacher_dir), judged,
                         restart, update, config.teacher.score_batch_size, teacher_id=teacher_id,
                         replace_stale=replace_stale)
    if report.malformed:
        err_console.print(f"{report.malformed} of {report.log_lines} log lines malformed; e.g. "
                          + "; ".join(report.malformed_samples[:3]), highlight=False)
    resumed = f" (resumed: {report.parts_done_before} parts were already done)" if report.parts_done_before else ""
    console.print(f"{report.queries} queries ({report.excluded_eval_queries} evaluation queries excluded), "
                  f"{report.pairs_written} new pairs in {report.seconds:.0f}s{resumed}: "
                  f"{report.pairs_per_second:.1f} pairs/s end to end, teacher {report.labeling_pairs_per_second:.1f} "
                  f"pairs/s; {report.skipped_judged} judged pairs skipped; {report.pairs_total} pairs in {report.output}")


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
    from training.bootstrap import random_per_query
    from training.evaluate import judged_lists, load_scorer, ranked_lists

    from ..jobs.evaluate import BM25, rank_through_cluster

    config = with_data(ctx.config, data, kind)
    cfg = override(config.evaluate, split=split, max_queries=max_queries,
                   output=str(json_path) if json_path else None)
    dataset = load_data(config)
    lists = judged_lists(dataset, cfg.split, config.template, config.data.split_fractions, config.data.split_salt,
                         cfg.max_queries)
    labels = {j.query: dict(zip(j.product_ids, j.labels)) for j in lists}
    served = list(pipelines or cfg.pipelines or (config.deploy.pipeline,))
    client = ctx.client()
    with progress_bar("searching", "queries") as update:
        ranked = rank_through_cluster(client, index or config.deploy.index, labels, config.template.fields,
                                      [None, *served], progress=update)
    if offline:
        ctx.quiet_models()
        for model in offline:
            scorer = load_scorer(model)
            with progress_bar(f"scoring with {scorer.name} offline", "pairs") as update:
                ranked[f"{scorer.name} (offline)"] = ranked_lists(scorer, lists, update)
    systems = {"random": random_per_query([j.labels for j in lists]), **ranked}
    pairs = [(name, BM25) for name in systems if name not in ("random", BM25)]
    pairs += [(served[0], name) for name in systems if name not in ("random", BM25, served[0])]
    report_comparison(systems, pairs, f"{dataset.name} {cfg.split} split through the cluster, {len(lists)} judged "
                      "lists", Path(cfg.output), config.data.relevant_threshold)
