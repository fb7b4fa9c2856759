"""`reranker run` as a Python function: node up, index, teacher, label, augment, students, export, deploy,
evaluate — each step a call into :mod:`.api` or ``training.api``, each reused when unchanged.

Each step's inputs are fingerprinted (data files, its config sections, upstream steps) in runs/steps.json
(``reranker_core.steps``): a rerun skips finished steps, a changed section reruns its step and everything after
it, and a killed step runs again. What goes into each fingerprint is part of the on-disk contract: a run made by
an earlier version must still resume, so the :class:`Step` definitions below change only with a reason.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reranker_core.config import Config, override
from reranker_core.errors import ConfigError
from reranker_core.output import QUIET, Output
from reranker_core.steps import Ledger, Step
from training.api import export_model, fit_student, fit_teacher
from training.datasets import load_data

from ..connection import connect
from .api import augment_pool, deploy_model, evaluate_pipelines, implicit_judgments, index_products, label_pairs
from .api import start_local_node
from .own_data import check_queries

RUNS = Path("runs")
PAIRS = RUNS / "pairs"
CURVE_POINTS = 4  # validation measurements while the distilled student trains: has it converged?
HUMAN = "human"  # suffix of the human-label student's checkpoint, zip, model and pipeline
REUSED = "unchanged since its last run; reusing (--restart redoes it)"


@dataclass
class RunReport:
    """What a main job did: the zip it shipped behind deploy.pipeline, each pipeline's variant, the evaluation
    (evaluate.output's content) and each step's seconds."""

    shipped: str = ""
    pipelines: dict[str, str] = field(default_factory=dict)  # variant (int8 / fp32 / human) -> pipeline
    evaluation: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def run_main_job(config: Config, *, logs: Sequence[Path] = (), query_logs: Sequence[Path] = (), ship: str = "auto",
                 restart: bool = False, yes: bool = False, overwrite: bool = False, behaviour: str | None = None,
                 behaviour_queries: Path | None = None, load_first: bool = False, out: Output = QUIET) -> RunReport:
    """The main job on ``config`` (data.* already naming the dataset), writing runs/ in the working directory.

    ``logs`` / ``query_logs``: query logs whose top hits join the pool (checked first; a bad one is named as
    --log / --queries). With teacher.from_path and no judgments (data.path unset) the given teacher labels the
    logged queries' pool and nothing is trained on human labels (:mod:`.teacher_only`). ``ship``: auto, int8 or
    fp32 behind deploy.pipeline. ``restart`` forgets finished steps.
    ``yes`` / ``overwrite``: see :mod:`.run_plan` (a cluster that is not the local node, an index reranker did not
    create). ``behaviour``: 'index' or a ubi_events export: implicit judgments first, then the
    behaviour-aggregated teacher (``behaviour_queries``: a ubi_queries export). ``load_first``: read the dataset
    before touching the cluster (the user's own files: a bad row stops the run there).
    """
    config = with_behaviour(config, behaviour)
    check_queries(tuple(query_logs), config.augment.query_field)
    check_queries(tuple(logs), config.augment.query_field, "--log")
    logs = (*logs, *query_logs)
    teacher_only = bool(config.teacher.from_path) and not config.data.path
    if config.teacher.from_path:
        from .own_data import check_teacher_only

        check_teacher_only(config, logs)
    if teacher_only and ship == "int8":
        raise ConfigError("--ship int8 without judgments: int8 is shipped only once it ranks within noise of fp32 "
                          "on the judged validation split", "drop --ship int8 (fp32 ships), or pass --judgments")
    if load_first and not teacher_only:
        load_data(config)
    report = RunReport()

    def step(spec: Step | str, action: Callable[[], object]) -> None:
        title = spec if isinstance(spec, str) else spec.name
        out.heading(title)
        started = time.monotonic()
        if isinstance(spec, str):  # cluster state: always run (each of these is idempotent and quick)
            action()
        else:
            ledger.run(spec, action, on_skip=lambda: out.say(REUSED))
        report.timings[title] = time.monotonic() - started

    if is_local_node(config):
        step("cluster up", lambda: start_local_node(config, out=out))
    client = connect(config.cluster)
    _confirm(client, config, "fp32" if teacher_only else ship, yes, overwrite, out, teacher_only)  # before any write
    if restart:
        (RUNS / "steps.json").unlink(missing_ok=True)
        shutil.rmtree(Path(config.augment.output), ignore_errors=True)
    ledger = Ledger(RUNS)
    if teacher_only:
        from .teacher_only import teacher_only_steps

        teacher_only_steps(config, client, step, report, logs=logs, restart=restart, out=out)
        return _done(report, out)
    teacher_dir, student_dir = Path(config.teacher.output), Path(config.student.output)
    human_dir = student_dir.with_name(f"{student_dir.name}-{HUMAN}")
    zips = {"fp32": student_dir.with_suffix(".zip"), "int8": student_dir.with_name(f"{student_dir.name}-int8.zip"),
            HUMAN: human_dir.with_suffix(".zip")}
    data_files = tuple(Path(p) for p in (config.data.require_path(), config.data.catalog,
                                         config.teacher.implicit_judgments if behaviour else None) if p)
    log_paths = (*logs, queries_as_log(config))  # every training query's top-K joins the pool
    base = (config.data, config.template)
    # the fingerprints: what each step reads (settings at an off value count as absent: reranker_core.steps)
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

    step("index catalog", lambda: index_products(config, client, out=out))
    if behaviour:  # quick and idempotent; the teacher step retrains when the list's content changes
        step("implicit judgments", lambda: implicit_judgments(
            config, client, events_file=None if behaviour == "index" else Path(behaviour),
            queries_file=behaviour_queries, out=out))
    step(teacher, lambda: fit_teacher(config, out=out))
    step(labeled, lambda: label_pairs(config, teacher_dir, out=out))
    step(augmented, lambda: augment_pool(config, teacher_dir, client, logs=log_paths, replace_stale=True, out=out))
    distilled = dataclasses.replace(config, student=override(config.student, loss="margin_mse"))
    step(student, lambda: fit_student(distilled, pairs=(PAIRS,), curve_points=CURVE_POINTS, restart=restart,
                                      out=out))
    step(human, lambda: fit_student(_human_label(config, human_dir, _steps_of(student_dir)), restart=restart,
                                    out=out))

    def export_both() -> None:
        export_model(config, student_dir, zips["fp32"], int8=True, out=out)
        export_model(config, human_dir, zips[HUMAN], out=out)

    step(exported, export_both)
    report.shipped = shipped = shipped_variant(ship, zips["int8"].with_suffix(".json"), out)
    other = "fp32" if shipped == "int8" else "int8"
    report.pipelines = {shipped: config.deploy.pipeline, other: f"{config.deploy.pipeline}-{other}",
                        HUMAN: f"{config.deploy.pipeline}-{HUMAN}"}
    for variant, pipeline in report.pipelines.items():
        suffix = "" if variant == shipped else f"-{variant}"
        deploy = override(config.deploy, model_name=config.deploy.model_name + suffix, pipeline=pipeline,
                          default_pipeline=None if not suffix else False, undeploy_previous=True)
        step(f"deploy {variant}", lambda deploy=deploy, variant=variant: deploy_model(
            dataclasses.replace(config, deploy=deploy), zips[variant], client, out=out))

    def evaluate() -> None:
        report.evaluation = evaluate_pipelines(config, client, pipelines=tuple(report.pipelines.values()),
                                               offline=(teacher_dir,), out=out)

    step("evaluate", evaluate)
    return _done(report, out)


def _done(report: RunReport, out: Output) -> RunReport:
    """Each step's seconds, then the report."""
    out.heading("done")
    for name, seconds in report.timings.items():
        out.say(f"{name:>28}: {seconds:7.1f}s")
    out.say(f"{'total':>28}: {sum(report.timings.values()):7.1f}s")
    return report



def with_behaviour(config: Config, behaviour: str | None) -> Config:
    """The config with the behaviour-aggregated teacher reading clicks.output, or unchanged without --behaviour."""
    if not behaviour:
        return config
    teacher = dataclasses.replace(config.teacher, behaviour="neighbours", implicit_judgments=config.clicks.output)
    return dataclasses.replace(config, teacher=teacher)


def _human_label(config: Config, output: Path, steps: int) -> Config:
    """The human-label student's config: pointwise on human labels, into ``output``, for ``steps`` steps."""
    return dataclasses.replace(config, student=override(config.student, loss="pointwise", output=str(output),
                                                        max_steps=steps))


def _confirm(client, config: Config, ship: str, yes: bool, overwrite: bool, out: Output,
             teacher_only: bool = False) -> None:
    """Print the plan on a cluster that is not the local node and stop unless ``yes`` (and ``overwrite`` for an
    index reranker did not create) allow it; reads the cluster only. ``teacher_only``: one pipeline, one model."""
    from .run_plan import confirm_run, plan_run

    others = {"auto": ("fp32", "int8"), "int8": ("fp32",), "fp32": ("int8",)}[ship]
    pipeline, model = config.deploy.pipeline, config.deploy.model_name
    models = {pipeline: model, **{f"{pipeline}-{v}": f"{model}-{v}" for v in (*others, HUMAN)}}
    if teacher_only:
        models = {pipeline: model}
    either = tuple(f"{pipeline}-{v}" for v in others) if len(others) > 1 and not teacher_only else ()
    confirm_run(plan_run(client, config, models, either=either), yes, overwrite, out.verbatim)


def _steps_of(student_dir: Path) -> int:
    """Optimizer steps a trained student took: the human-label baseline gets the same number."""
    from training.models import read_meta

    return int(read_meta(student_dir)["steps"])


def shipped_variant(choice: str, verdict: Path, out: Output = QUIET) -> str:
    """``int8`` or ``fp32``: the choice, or with ``auto`` int8 when export found it within noise of fp32."""
    if choice != "auto":
        return choice
    found = json.loads(verdict.read_text(encoding="utf-8"))
    value, low, high = found["int8 - fp32"]["ndcg@5"]
    shipped = "int8" if found["within_noise"] else "fp32"
    out.say(f"shipping {shipped}: int8 - fp32 NDCG@5 {value:+.4f} [{low:+.4f}, {high:+.4f}] on "
            f"{found['queries']} validation queries (--ship fp32|int8 overrides)")
    return shipped


def queries_as_log(config: Config) -> Path:
    """The dataset's search terms as a log, beside any real one: every training query's top-K joins the pool
    (evaluation queries are excluded later).

    Rewritten only when its content changes, so its fingerprint (and augmentation) stays put across reruns.
    """
    from reranker_core.files import atomic_write

    path = RUNS / "query-log.jsonl"
    lines = "".join(json.dumps({"user_query": j.query}) + "\n" for j in load_data(config).judgments)
    if not path.is_file() or path.read_text(encoding="utf-8") != lines:
        atomic_write(path, lambda tmp: tmp.write_text(lines, encoding="utf-8"))
    return path


def is_local_node(config: Config) -> bool:
    """True when cluster.url is the node `reranker cluster up` runs (loopback, local_node.port)."""
    from urllib.parse import urlsplit

    url = urlsplit(config.cluster.url)
    return url.hostname in ("127.0.0.1", "localhost") and (url.port or 80) == config.local_node.port
