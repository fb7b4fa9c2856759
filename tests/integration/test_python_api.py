"""The Python API under the CLI, called directly (no click anywhere) on the real node with tiny real models.

A cluster step and the training steps run as plain functions on the same small generic dataset `reranker run`'s
test uses; then the main job itself runs as ``run_main_job``: nothing of click is in the call stack, so if it
still chained click commands (``click_ctx.invoke``) it would fail with click's "no active context" error.
"""
from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from reranker_core.config import load_config, override
from reranker_core.output import Output
from reranker_core.errors import RerankerError
from reranker_plugin.jobs.api import evaluate_offline, index_products, label_pairs
from reranker_plugin.jobs.main_job import REUSED, run_main_job
from reranker_plugin.jobs.serving import delete_model, pipeline_uses, served_models
from training.api import export_model, fit_student, fit_teacher
from training.datasets import split_of
from training.models import read_meta

from .conftest import PRODUCTS
from .test_run import QUERIES, workspace  # noqa: F401  (the fixture: dataset, tiny models, unique names)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]


class Recorder(Output):
    """Keeps what a step says, and the click context seen at each step's start (there must be none)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.headings: list[str] = []
        self.contexts: list[object] = []

    def say(self, message: object) -> None:
        if isinstance(message, str):
            self.lines.append(message)

    def heading(self, title: str) -> None:
        self.headings.append(title)
        self.contexts.append(click.get_current_context(silent=True))


def _config(root: Path, url: str):
    config = load_config(root / "reranker.yaml")
    return override(config, cluster=override(config.cluster, url=url))


def test_a_cluster_step_and_the_training_steps_are_plain_functions(opensearch, client, workspace):  # noqa: F811
    root, settings = workspace
    config, out = _config(root, opensearch.url), Recorder()

    indexed = index_products(config, client, out=out)
    client.indices.refresh(index=settings["deploy"]["index"])
    assert indexed.indexed == len(PRODUCTS) and not indexed.failed
    assert client.count(index=settings["deploy"]["index"])["count"] == len(PRODUCTS)
    assert f"{len(PRODUCTS)} products indexed into {settings['deploy']['index']!r}; 0 failed" in out.lines

    teacher = fit_teacher(config, out=out)
    assert teacher.path == Path("runs/teacher") and teacher.steps == 3
    assert any(line.startswith("teacher saved to runs/teacher: 3 steps") for line in out.lines)
    pairs = label_pairs(config, teacher.path, out=out)
    judged = {q for q in QUERIES if split_of(q) == "train"}
    assert pairs == Path("runs/pairs/judged-train.parquet") and pairs.is_file()

    student = fit_student(config, pairs=(pairs,), curve_points=2, out=out)
    meta = read_meta(student.path)
    assert student.steps == 2 and meta["base_model"] == str(Path("runs/teacher") / "cross_encoder")
    assert meta["sources"] == ["judged"] and len(meta["curve"]) == 2 and student.queries == len(judged)
    exported = export_model(config, student.path, out=out)
    assert exported.zip == (root / "runs/student.zip").resolve() and exported.max_abs_diff < 1e-4
    assert exported.int8_zip is None and not (root / "runs/student-int8.zip").exists()


def test_the_main_job_is_a_python_function_that_chains_no_click_command(opensearch, client, workspace):  # noqa: F811
    root, settings = workspace
    out = Recorder()
    report = run_main_job(_config(root, opensearch.url), ship="fp32", out=out)
    assert set(out.contexts) == {None}  # not one step ran under a click context
    assert out.headings == ["cluster up", "index catalog", "train teacher", "label judged pairs", "augment",
                            "train student", "train human-label student", "export", "deploy fp32", "deploy int8",
                            "deploy human", "evaluate", "done"]
    pipeline = settings["deploy"]["pipeline"]
    assert report.shipped == "fp32" and report.pipelines == {
        "fp32": pipeline, "int8": f"{pipeline}-int8", "human": f"{pipeline}-human"}
    assert report.evaluation == json.loads((root / "runs/evaluate.json").read_text())
    assert set(report.evaluation["systems"]) == {"random", "bm25", pipeline, f"{pipeline}-int8", f"{pipeline}-human",
                                                 "teacher (offline)"}
    assert REUSED not in out.lines and set(report.timings) == set(out.headings) - {"done"}

    again = Recorder()
    run_main_job(_config(root, opensearch.url), ship="fp32", out=again)
    assert again.lines.count(REUSED) == 6  # teacher, label, augment, both students, export: the ledger holds

    # the other verbs' work, called the same way
    config = _config(root, opensearch.url)
    use = {u.name: u for u in pipeline_uses(client)}[pipeline]
    assert use.model_id and pipeline in {s.model.model_id: s.pipelines for s in served_models(client)}[use.model_id]
    with pytest.raises(RerankerError, match="serves search pipeline"):
        delete_model(client, use.model_id)
    offline = evaluate_offline(config, [root / "runs/student.zip"], split=config.evaluate.split,
                               json_path=root / "runs/offline.json", out=again)
    assert offline == json.loads((root / "runs/offline.json").read_text()) and len(offline["systems"]) == 2
