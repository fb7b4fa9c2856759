"""`reranker run`: the main job, chaining the other commands in one process, each step reused when unchanged."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import click

from reranker_core.steps import Ledger, Step

from .app import Context, cli, command, console, data_option, kind_option, load_data, pass_ctx, with_data
from ..jobs.own_data import check_queries, with_own_data

RUNS = Path("runs")
PAIRS = RUNS / "pairs"
CHAINED = ("cluster up", "index-catalog", "train-teacher", "label", "augment", "train-student", "export", "deploy",
           "evaluate")
CURVE_POINTS = 4  # validation measurements while the distilled student trains: has it converged?
HUMAN = "human"  # suffix of the human-label student's checkpoint, zip, model and pipeline


@cli.command("run")
@data_option
@kind_option
@click.option("--catalog", type=click.Path(path_type=Path),
              help="Your products: CSV / JSONL / Parquet with an id column and text columns (sets data.catalog "
              "and data.kind generic).")
@click.option("--judgments", type=click.Path(path_type=Path),
              help="Your relevance grades: CSV / JSONL / Parquet with query, product_id, grade (sets data.path).")
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
            query_logs: tuple[Path, ...] = ()) -> None:
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
    before anything is written. Judgments are required (they train the
    teacher and give the test split).

    Example:

    \b
      reranker run --data data/train.csv.zip --kind homedepot
      OPENSEARCH_URL=https://search.example.com:9200 reranker run --data data/train.csv.zip --yes
      reranker --config configs/large.yaml run --data data/train.csv.zip
      reranker run --data data/train.csv.zip --behaviour index
      reranker run --catalog products.csv --queries queries.jsonl --judgments judgments.csv
    """
    for name in CHAINED:  # a renamed command fails here, before any work
        command(*name.split())
    config = with_behaviour(with_data(with_own_data(ctx.config, catalog, judgments, data, kind), data, kind),
                            behaviour)
    check_queries(query_logs, config.augment.query_field)
    check_queries(logs, config.augment.query_field, "--log")
    logs = (*logs, *query_logs)
    if catalog or judgments:
        load_data(config)  # a bad judgments or catalog row stops the run here, before the cluster is touched
    ctx.config = config
    click_ctx = click.get_current_context()
    timings: dict[str, float] = {}

    def invoke(name: str, **kwargs) -> None:
        click_ctx.invoke(command(*name.split()), **kwargs)

    def step(spec: Step | str, action) -> None:
        title = spec if isinstance(spec, str) else spec.name
        console.rule(f"[bold]{title}")
        started = time.monotonic()
        if isinstance(spec, str):  # cluster state: always run (each of these is idempotent and quick)
            action()
        else:
            ledger.run(spec, action,
                       on_skip=lambda: console.print("unchanged since its last run; reusing (--restart redoes it)"))
        timings[title] = time.monotonic() - started

    if _is_local_node(config):
        step("cluster up", lambda: invoke("cluster up", port=None))
    _confirm(ctx, config, ship, yes, overwrite)  # before anything is written to the cluster
    if restart:
        (RUNS / "steps.json").unlink(missing_ok=True)
        shutil.rmtree(Path(config.augment.output), ignore_errors=True)
    ledger = Ledger(RUNS)
    teacher_dir, student_dir = Path(config.teacher.output), Path(config.student.output)
    human_dir = student_dir.with_name(f"{student_dir.name}-{HUMAN}")
    zips = {"fp32": student_dir.with_suffix(".zip"), "int8": student_dir.with_name(f"{student_dir.name}-int8.zip"),
            HUMAN: human_dir.with_suffix(".zip")}
    data_files = tuple(Path(p) for p in (config.data.require_path(), config.data.catalog,
                                         config.teacher.implicit_judgments if behaviour else None) if p)
    log_paths = (*logs, _queries_as_log(config))  # every training query's top-K joins the pool
    base = (config.data, config.template)
    teacher = Step("train teacher", (*base, config.teacher), data_files, outputs=(teacher_dir,))
    labeled = Step("label judged pairs", (config.teacher.score_batch_size,), after=(teacher.name,),
                   outputs=(PAIRS / "judged-train.parquet",))
    augmented = Step("augment", (config.augment, config.deploy.index), log_paths, after=(teacher.name,),
                     outputs=(Path(config.augment.output) / "report.json",))
    student = Step("train student", (config.student,), after=(labeled.name, augmented.name), outputs=(student_dir,))
    human = Step("train human-label student", (config.student,), after=(teacher.name, student.name),
                 outputs=(human_dir,))  # as many optimizer steps as the distilled student took
    exported = Step("export", (), after=(student.name, human.name),
                    outputs=(*zips.values(), zips["int8"].with_suffix(".json")))

    step("index catalog", lambda: invoke("index-catalog", catalog=None, data=None, kind=None, index=None))
    if behaviour:  # quick and idempotent; the teacher step retrains when the list's content changes
        step("implicit judgments", lambda: invoke(
            "implicit-judgments", events_file=None if behaviour == "index" else Path(behaviour),
            queries_file=behaviour_queries, name="implicit-judgments", output=None, events_index=None,
            queries_index=None, metric=None, max_rank=None, max_malformed_fraction=None))
    step(teacher, lambda: invoke("train-teacher", data=None, kind=None, kind_=None, restart=False, output=None,
                                 model=None, gguf_file=None, target=None, lora=None, max_train_queries=None,
                                 max_steps=None, epochs=None, behaviour=None, implicit_judgments=None))
    step(labeled, lambda: invoke("label", teacher_dir=teacher_dir, data=None, kind=None, split="train",
                                 max_queries=None, out=None, engine=None, ray_address=None))
    step(augmented, lambda: invoke("augment", teacher_dir=teacher_dir, logs=log_paths, data=None, kind=None,
                                   index=None, restart=False, replace_stale=True, ubi_index=None, top_k=None,
                                   max_queries=None, output=None, max_malformed_fraction=None, engine=None,
                                   ray_address=None))
    same = dict(data=None, kind=None, max_train_queries=None, model=None, layers=None, epochs=None,
                max_pairs=None, human_weight=None)  # one student config: same init, same architecture
    step(student, lambda: invoke("train-student", pairs=(PAIRS,), loss="margin_mse", output=None, max_steps=None,
                                 curve_points=CURVE_POINTS, **same))
    step(human, lambda: invoke("train-student", pairs=(), loss="pointwise", output=human_dir,
                               max_steps=_steps_of(student_dir), curve_points=0, **same))

    def export_both() -> None:
        invoke("export", student_dir=student_dir, out=zips["fp32"], int8=True, data=None, kind=None, max_queries=None)
        invoke("export", student_dir=human_dir, out=zips[HUMAN], int8=False, data=None, kind=None, max_queries=None)

    step(exported, export_both)
    shipped = _shipped(ship, zips["int8"].with_suffix(".json"))
    other = "fp32" if shipped == "int8" else "int8"
    pipelines = {shipped: config.deploy.pipeline, other: f"{config.deploy.pipeline}-{other}",
                 HUMAN: f"{config.deploy.pipeline}-{HUMAN}"}
    for variant, pipeline in pipelines.items():
        suffix = "" if variant == shipped else f"-{variant}"
        step(f"deploy {variant}", lambda variant=variant, pipeline=pipeline, suffix=suffix: invoke(
            "deploy", model_zip=zips[variant], model_name=config.deploy.model_name + suffix, model_version=None,
            model_group=None, index=None, document_fields=(), pipeline=pipeline,
            default_pipeline=None if not suffix else False, undeploy_previous=True, deploy_timeout_s=None))
    step("evaluate", lambda: invoke("evaluate", data=None, kind=None, pipelines=tuple(pipelines.values()),
                                    offline=(teacher_dir,), index=None, split=None, max_queries=None,
                                    json_path=None))
    console.rule("[bold]done")
    for name, seconds in timings.items():
        console.print(f"{name:>28}: {seconds:7.1f}s")
    console.print(f"{'total':>28}: {sum(timings.values()):7.1f}s")


def with_behaviour(config, behaviour: str | None):
    """The config with the behaviour-aggregated teacher reading clicks.output, or unchanged without --behaviour."""
    import dataclasses

    if not behaviour:
        return config
    teacher = dataclasses.replace(config.teacher, behaviour="neighbours", implicit_judgments=config.clicks.output)
    return dataclasses.replace(config, teacher=teacher)


def _confirm(ctx: Context, config, ship: str, yes: bool, overwrite: bool) -> None:
    """Print the plan on a cluster that is not the local node and stop unless --yes (and --overwrite for an
    index reranker did not create) allow it; reads the cluster only."""
    from ..jobs.run_plan import confirm_run, plan_run

    others = {"auto": ("fp32", "int8"), "int8": ("fp32",), "fp32": ("int8",)}[ship]
    pipeline, model = config.deploy.pipeline, config.deploy.model_name
    models = {pipeline: model, **{f"{pipeline}-{v}": f"{model}-{v}" for v in (*others, HUMAN)}}
    either = tuple(f"{pipeline}-{v}" for v in others) if len(others) > 1 else ()
    confirm_run(plan_run(ctx.client(), config, models, either=either), yes, overwrite,
                lambda line: console.print(line, highlight=False, markup=False, soft_wrap=True))


def _steps_of(student_dir: Path) -> int:
    """Optimizer steps a trained student took: the human-label baseline gets the same number."""
    from training.models import read_meta

    return int(read_meta(student_dir)["steps"])


def _shipped(choice: str, verdict: Path) -> str:
    """``int8`` or ``fp32``: the choice, or with ``auto`` int8 when export found it within noise of fp32."""
    import json

    if choice != "auto":
        return choice
    found = json.loads(verdict.read_text(encoding="utf-8"))
    value, low, high = found["int8 - fp32"]["ndcg@5"]
    shipped = "int8" if found["within_noise"] else "fp32"
    console.print(f"shipping {shipped}: int8 - fp32 NDCG@5 {value:+.4f} [{low:+.4f}, {high:+.4f}] on "
                  f"{found['queries']} validation queries (--ship fp32|int8 overrides)")
    return shipped


def _queries_as_log(config) -> Path:
    """The dataset's search terms as a log, beside any real one: every training query's top-K joins the pool
    (evaluation queries are excluded later).

    Rewritten only when its content changes, so its fingerprint (and augmentation) stays put across reruns.
    """
    import json

    from reranker_core.files import atomic_write

    path = RUNS / "query-log.jsonl"
    lines = "".join(json.dumps({"user_query": j.query}) + "\n" for j in load_data(config).judgments)
    if not path.is_file() or path.read_text(encoding="utf-8") != lines:
        atomic_write(path, lambda tmp: tmp.write_text(lines, encoding="utf-8"))
    return path


def _is_local_node(config) -> bool:
    """True when cluster.url is the node `reranker cluster up` runs (loopback, local_node.port)."""
    from urllib.parse import urlsplit

    url = urlsplit(config.cluster.url)
    return url.hostname in ("127.0.0.1", "localhost") and (url.port or 80) == config.local_node.port
