"""Commands that join data, models and the cluster: index-catalog, augment, evaluate, and `run` (the main job)."""
from __future__ import annotations

import time
from pathlib import Path

import click

from reranker_core.config import override
from reranker_core.errors import RerankerError

from .app import Context, cli, console, err_console, pass_ctx
from .train import data_option, kind_option, load_data, print_metrics, progress_bar, with_data


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
@click.option("--max-queries", type=int, help="Most frequent queries to use [augment.max_queries].")
@click.option("--output", type=click.Path(path_type=Path), help="Output directory [augment.output].")
@click.option("--max-malformed-fraction", type=float,
              help="Abort above this share of unreadable log lines [augment.max_malformed_fraction].")
@click.option("--restart", is_flag=True, help="Discard earlier parts instead of resuming.")
@pass_ctx
def augment(ctx: Context, teacher_dir: Path, logs: tuple[Path, ...], data: Path | None, kind: str | None,
            index: str | None, restart: bool, **flags) -> None:
    """Mine (query, product) pairs from query logs via the live index and label them with the teacher.

    Evaluation queries (validation / test split) are excluded and, when a
    dataset is configured, human-judged pairs are skipped. Resumes by default.
    """
    ctx.quiet_models()
    from training.teacher import Teacher

    from ..jobs.augment import augment as run
    from ..jobs.augment import judged_pairs

    flags["output"] = str(flags["output"]) if flags["output"] else None
    config = with_data(ctx.config, data, kind)
    cfg = override(config.augment, logs=tuple(map(str, logs)) or None, **flags)
    judged = judged_pairs(load_data(config)) if cfg.skip_judged and config.data.path else frozenset()
    teacher = Teacher.load(teacher_dir)
    client = ctx.client()
    with progress_bar("mining and labeling", "pairs") as update:
        report = run(client, index or config.deploy.index, cfg, config.data, config.template, teacher, judged,
                     restart, update, config.teacher.score_batch_size)
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
              help="Rerank pipeline(s) to compare with BM25; repeatable [evaluate.pipelines, else deploy.pipeline].")
@click.option("--index", help="Index [deploy.index].")
@click.option("--split", type=click.Choice(["train", "validation", "test"]), help="Judged split [evaluate.split].")
@click.option("--max-queries", type=int, help="Queries to evaluate [evaluate.max_queries].")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Results file [evaluate.output].")
@pass_ctx
def evaluate(ctx: Context, data: Path | None, kind: str | None, pipelines: tuple[str, ...], index: str | None,
             split: str | None, max_queries: int | None, json_path: Path | None) -> None:
    """NDCG@5/@10 and MRR through the cluster: BM25 alone vs rerank pipeline(s), on held-out judged queries.

    Each query's judged products only are ranked (BM25 restricted to them, then
    the pipeline reranks), so every ranked product has a human label.
    """
    from training.evaluate import judged_lists

    from ..jobs.evaluate import evaluate_through_cluster, plot_comparison, write_json

    config = with_data(ctx.config, data, kind)
    cfg = override(config.evaluate, split=split, max_queries=max_queries,
                   output=str(json_path) if json_path else None)
    dataset = load_data(config)
    lists = judged_lists(dataset, cfg.split, config.template, config.data.split_fractions, config.data.split_salt,
                         cfg.max_queries)
    labels = {j.query: dict(zip(j.product_ids, j.labels)) for j in lists}
    systems = [None, *(pipelines or cfg.pipelines or (config.deploy.pipeline,))]
    client = ctx.client()
    with progress_bar("searching", "queries") as update:
        results = evaluate_through_cluster(client, index or config.deploy.index, labels, config.template.fields,
                                           systems, relevant_threshold=config.data.relevant_threshold,
                                           progress=update)
    print_metrics(results, f"{dataset.name} {cfg.split} split through the cluster, {len(lists)} judged lists")
    out = Path(cfg.output)
    write_json(results, out)
    plot_comparison(results, out.with_suffix(".png"), title=f"{dataset.name} {cfg.split}: BM25 vs reranked")
    console.print(f"wrote {out} and {out.with_suffix('.png')}")


@cli.command("run")
@data_option
@kind_option
@click.option("--log", "logs", multiple=True, type=click.Path(path_type=Path),
              help="Query log(s) for augmentation; default: the dataset's training queries as the log.")
@click.option("--restart", is_flag=True, help="Retrain and re-mine instead of reusing finished steps.")
@pass_ctx
def run_all(ctx: Context, data: Path | None, kind: str | None, logs: tuple[Path, ...], restart: bool) -> None:
    """The main job: node up, index, teacher, augment, label, student, export, deploy, evaluate.

    Budgets come from reranker.yaml (teacher.max_train_queries, augment.max_queries,
    evaluate.max_queries...). Finished steps are reused on a re-run unless --restart.
    """
    from .app import cluster_up
    from .train import export, label, train_student, train_teacher

    config = with_data(ctx.config, data, kind)
    ctx.config = config
    click_ctx = click.get_current_context()
    timings: dict[str, float] = {}

    def step(name: str, done: bool, fn, **kwargs) -> None:
        console.rule(f"[bold]{name}")
        started = time.monotonic()
        if done and not restart:
            console.print("already done; reusing (pass --restart to redo)")
        else:
            click_ctx.invoke(fn, **kwargs)
        timings[name] = time.monotonic() - started

    teacher_dir, student_dir = Path(config.teacher.output), Path(config.student.output)
    zip_path = student_dir.with_suffix(".zip")
    log_paths = list(logs) or [_queries_as_log(config)]
    if _is_local(config.cluster.url):
        step("cluster up", False, cluster_up, port=None)
    step("index catalog", False, index_catalog, catalog=None, data=None, kind=None, index=None)
    step("train teacher", (teacher_dir / "reranker.json").is_file(), train_teacher, data=None, kind=None,
         resume=True, output=None, model=None, gguf_file=None, target=None, lora=None, max_train_queries=None,
         max_steps=None, epochs=None)
    step("label judged pairs", Path("runs/pairs/judged-train.parquet").is_file(), label, teacher_dir=teacher_dir,
         data=None, kind=None, split="train", max_queries=config.teacher.max_train_queries, out=None)
    step("augment", False, augment, teacher_dir=teacher_dir, logs=tuple(log_paths), data=None, kind=None,
         index=None, restart=restart, ubi_index=None, top_k=None, max_queries=None, output=None,
         max_malformed_fraction=None)
    step("train student", (student_dir / "reranker.json").is_file(), train_student, pairs=(), data=None,
         kind=None, max_train_queries=None, loss="margin_mse", output=None, model=None, max_steps=None, epochs=None)
    step("export", False, export, student_dir=student_dir, out=zip_path, int8=False,
         data=None, kind=None, max_queries=300)
    from .app import deploy

    step("deploy", False, deploy, model_zip=zip_path, model_name=None, model_version=None, model_group=None,
         index=None, document_fields=(), pipeline=None, default_pipeline=None, deploy_timeout_s=None)
    step("evaluate", False, evaluate, data=None, kind=None, pipelines=(), index=None, split=None, max_queries=None,
         json_path=None)
    console.rule("[bold]done")
    for name, seconds in timings.items():
        console.print(f"{name:>20}: {seconds:7.1f}s")
    console.print(f"{'total':>20}: {sum(timings.values()):7.1f}s")


def _queries_as_log(config) -> Path:
    """Without a real log, the dataset's search terms stand in for one (evaluation queries are excluded later)."""
    import json

    from reranker_core.files import atomic_write

    lines = "".join(json.dumps({"user_query": j.query}) + "\n" for j in load_data(config).judgments)
    return atomic_write(Path("runs/query-log.jsonl"), lambda tmp: tmp.write_text(lines, encoding="utf-8"))


def _is_local(url: str) -> bool:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname in ("127.0.0.1", "localhost")
