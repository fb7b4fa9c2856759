"""`reranker run` without judgments: a teacher already trained (teacher.from_path, --teacher-from) labels the
pool, and the student learns from its scores alone.

There are no human labels, so there is no teacher to train, no judged pairs to label, no human-label student and
no judged validation split (so no int8 verdict: fp32 ships). The steps left: index the catalog, mine the logged
queries' BM25 top-K and score it with the given teacher, train the student (margin-MSE on those scores), export,
deploy, and measure what can be measured (:mod:`.agreement`). Each step is fingerprinted like the main job's; the
teacher enters by content (``teacher_fingerprint``), so another teacher in the same folder reruns everything
after indexing.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from opensearchpy import OpenSearch

from reranker_core.config import Config, override
from reranker_core.output import QUIET, Output
from reranker_core.steps import Step
from training.api import export_model, fit_student

from .api import augment_pool, deploy_model, index_products

StepRunner = Callable[[Step | str, Callable[[], object]], None]


def teacher_only_steps(config: Config, client: OpenSearch, step: StepRunner, report, *, logs: Sequence[Path],
                       restart: bool = False, out: Output = QUIET) -> None:
    """Run the steps through ``step`` (the main job's: headings, reuse, timings), filling ``report``."""
    from training.ensemble import teacher_fingerprint

    from .agreement import teacher_agreement

    teacher_dir = Path(config.teacher.from_path)
    config = dataclasses.replace(config, teacher=override(config.teacher, output=str(teacher_dir)))  # student init
    teacher_id = teacher_fingerprint(teacher_dir)
    out.say(f"no judgments: the student learns from teacher {teacher_id} ({teacher_dir}) alone")
    catalog, pool = Path(config.data.catalog), Path(config.augment.output)
    student_dir = Path(config.student.output)
    zip_path = student_dir.with_suffix(".zip")
    augmented = Step("augment", (config.augment, config.deploy.index, config.template, teacher_id),
                     (catalog, *logs), outputs=(pool / "report.json",))
    student = Step("train student", (config.student, teacher_id), after=(augmented.name,), outputs=(student_dir,))
    exported = Step("export", (), after=(student.name,), outputs=(zip_path,))

    step("index catalog", lambda: index_products(config, client, catalog=catalog, out=out))
    step(augmented, lambda: augment_pool(config, teacher_dir, client, logs=logs, replace_stale=True, out=out))
    distilled = dataclasses.replace(config, student=override(config.student, loss="margin_mse"))
    step(student, lambda: fit_student(distilled, pairs=(pool,), restart=restart, out=out))
    step(exported, lambda: export_model(config, student_dir, zip_path, out=out))
    report.shipped, report.pipelines = "fp32", {"fp32": config.deploy.pipeline}
    deploy = override(config.deploy, undeploy_previous=True)
    step("deploy fp32", lambda: deploy_model(dataclasses.replace(config, deploy=deploy), zip_path, client, out=out))

    def evaluate() -> None:
        report.evaluation = teacher_agreement(config, client, teacher_dir, logs, (config.deploy.pipeline,), out)

    step("evaluate", evaluate)
