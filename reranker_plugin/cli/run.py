"""`reranker run`: the main job (``reranker_plugin.jobs.main_job.run_main_job``), its options parsed here."""
from __future__ import annotations

from pathlib import Path

import click

from .app import Context, cli, data_option, kind_option, pass_ctx, with_data
from ..jobs.own_data import with_own_data


@cli.command("run")
@data_option
@kind_option
@click.option("--catalog", type=click.Path(path_type=Path),
              help="Your products: CSV / JSONL / Parquet with an id column and text columns (sets data.catalog "
              "and data.kind generic).")
@click.option("--judgments", type=click.Path(path_type=Path),
              help="Your relevance grades: CSV / JSONL / Parquet with query, product_id, grade (sets data.path).")
@click.option("--teacher-from", type=click.Path(path_type=Path),
              help="Without --judgments: a teacher `reranker train-teacher` wrote (e.g. runs/teacher); it labels "
              "the logged queries' top hits and the student learns from its scores alone [teacher.from_path].")
@click.option("--queries", "query_logs", multiple=True, type=click.Path(path_type=Path),
              help="Your query log(s): JSONL / CSV with user_query, query or search_term; their top hits join "
              "the pool (same as --log).")
@click.option("--log", "logs", multiple=True, type=click.Path(path_type=Path),
              help="Query log(s) whose queries' top hits join the pool (the dataset's training queries always do).")
@click.option("--ship", type=click.Choice(["auto", "int8", "fp32"]), default="auto", show_default=True,
              help="The zip the main pipeline serves: auto ships int8 when it ranks within noise of fp32 on "
              "the validation split (the other is deployed beside it as <pipeline>-<precision>).")
@click.option("--behaviour", "behaviour", metavar="EVENTS",
              help="'index' (clicks.events_index) or a ubi_events export: implicit judgments from its training "
              "queries' clicks, then a behaviour-aggregated teacher labels the pool (teacher.behaviour).")
@click.option("--behaviour-queries", type=click.Path(path_type=Path),
              help="With --behaviour: a ubi_queries export instead of clicks.queries_index.")
@click.option("--restart", is_flag=True, help="Forget finished steps (runs/steps.json) and redo everything.")
@click.option("--yes", is_flag=True, help="On a cluster other than the local node: carry out the plan printed "
              "first (index, models, pipelines, undeploys). Without it the run stops there.")
@click.option("--overwrite", is_flag=True, help="Write the catalog into deploy.index even though reranker did not "
              "create that index.")
@pass_ctx
def run_all(ctx: Context, data: Path | None, kind: str | None, logs: tuple[Path, ...], ship: str,
            restart: bool, yes: bool = False, overwrite: bool = False, behaviour: str | None = None,
            behaviour_queries: Path | None = None, catalog: Path | None = None, judgments: Path | None = None,
            query_logs: tuple[Path, ...] = (), teacher_from: Path | None = None) -> None:
    """The main job: node up, index, teacher, label, augment, students, export, deploy, evaluate.

    Budgets come from reranker.yaml (teacher, augment and student sections);
    label and augment run where the engine section says. Each step's inputs are
    fingerprinted (data file, its config sections, upstream steps) in
    runs/steps.json: a rerun skips finished steps, a changed section
    reruns its step and everything after it, and a killed step runs again
    (augmentation resumes its own parts). The student's pool is every judged
    training pair plus the BM25 top-K of every training query and logged query,
    all scored by the teacher. Two students are trained with the same init and
    the same number of optimizer steps: the distilled one (teacher margins +
    human term) and a human-label one (human labels only), and both are
    deployed and evaluated beside BM25, random order and the teacher.
    With --behaviour, implicit judgments come first and the teacher is the
    behaviour-aggregated one (docs/clicks.md); the students stay plain.

    On a cluster other than the local node it first prints what it will
    change there and needs --yes; it never writes into an index reranker did
    not create without --overwrite.

    Your own files: --catalog, --judgments and --queries stand for
    data.kind generic, data.catalog, data.path and --log; all are checked
    before anything is written. Judgments train the teacher and give the
    test split; without them pass --teacher-from DIR (a trained teacher):
    it labels the logged queries' top hits, the student learns from its
    scores alone, fp32 ships, and instead of NDCG the run reports each
    pipeline's agreement with the teacher on held-out logged queries.

    Example:

    \b
      reranker run --data data/train.csv.zip --kind homedepot
      OPENSEARCH_URL=https://search.example.com:9200 reranker run --data data/train.csv.zip --yes
      reranker --config configs/large.yaml run --data data/train.csv.zip
      reranker run --data data/train.csv.zip --behaviour index
      reranker run --catalog products.csv --queries queries.jsonl --judgments judgments.csv
      reranker run --catalog products.csv --queries queries.jsonl --teacher-from runs/teacher
    """
    from ..jobs.main_job import run_main_job

    config = with_data(with_own_data(ctx.config, catalog, judgments, data, kind, teacher_from), data, kind)
    ctx.quiet_models()
    run_main_job(config, logs=logs, query_logs=query_logs, ship=ship, restart=restart, yes=yes, overwrite=overwrite,
                 behaviour=behaviour, behaviour_queries=behaviour_queries, load_first=bool(catalog or judgments),
                 out=ctx.output)
