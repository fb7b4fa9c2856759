"""`reranker run`, the main job, end to end on the real node with tiny real models: then step reuse."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from reranker_plugin.cli import cli
from training.datasets import split_of

from .conftest import PRODUCTS, REUSED, main_job_project, write_graded_judgments
from .conftest import RUN_QUERIES as QUERIES

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture
def workspace(tmp_path, minilm_tokenizer, client, monkeypatch):
    """A generic dataset over the 30 test products, a tiny cross-encoder, a config with unique cluster names."""
    assert {split_of(q) for q in QUERIES} == {"train", "validation", "test"}
    (tmp_path / "catalog.jsonl").write_text("".join(json.dumps({"id": f"p{i}", "title": t}) + "\n"
                                                    for i, t in enumerate(PRODUCTS)), encoding="utf-8")
    write_graded_judgments(tmp_path / "judgments.csv")
    data = {"kind": "generic", "path": str(tmp_path / "judgments.csv"), "catalog": str(tmp_path / "catalog.jsonl")}
    with main_job_project(client, tmp_path, minilm_tokenizer, "run-test", data=data, student={"human_weight": 0.5},
                          evaluate={"max_queries": None}) as config:
        monkeypatch.chdir(tmp_path)  # runs/ and steps.json land here
        yield tmp_path, config


def _run(opensearch) -> str:
    result = CliRunner().invoke(cli, ["--url", opensearch.url, "run"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_main_job_runs_end_to_end_then_reuses_and_reruns_only_what_changed(opensearch, workspace):
    root, config = workspace
    out = _run(opensearch)
    assert REUSED not in out
    results = json.loads((root / "runs/evaluate.json").read_text())
    pipeline = config["deploy"]["pipeline"]
    verdict = json.loads((root / "runs/student-int8.json").read_text())
    other = "fp32" if verdict["within_noise"] else "int8"  # the main pipeline serves int8 when it is within noise
    assert f"shipping {'int8' if other == 'fp32' else 'fp32'}" in out
    assert set(results["systems"]) == {"random", "bm25", pipeline, f"{pipeline}-{other}", f"{pipeline}-human",
                                       "teacher (offline)"}
    assert results["queries"] == sum(split_of(q) == "test" for q in QUERIES)
    assert f"{pipeline} - bm25" in results["differences"] and f"{pipeline} - {pipeline}-human" in results["differences"]
    student = json.loads((root / "runs/student/reranker.json").read_text())
    human = json.loads((root / "runs/student-human/reranker.json").read_text())
    assert student["base_model"] == human["base_model"] == str(Path("runs/teacher") / "cross_encoder")
    assert student["sources"] == ["augmented", "judged"] and human["sources"] == ["human"]
    assert student["layers"] == human["layers"] == 1  # the teacher's 2 layers cut to student.layers
    assert human["steps"] == student["steps"] == 2  # the baseline gets as many optimizer steps as the student
    assert [p["step"] for p in student["curve"]] == [1, 2]  # validation measured while it trained
    mined = json.loads((root / "runs/pairs/augmented/report.json").read_text())
    assert mined["queries"] == sum(split_of(q) == "train" for q in QUERIES)  # every training query's top-K is mined

    assert _run(opensearch).count(REUSED) == 6  # teacher, label, augment, both students, export

    config["student"]["human_weight"] = 1.0
    (root / "reranker.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    out = _run(opensearch)
    assert out.count(REUSED) == 3  # teacher, label and augment stay; both students and the export rerun
    assert "student saved to" in out


def _rows(path: Path) -> list[dict]:
    from training.pairs import read_pairs

    return read_pairs([path])


def test_a_teacher_retrained_in_the_same_folder_rescores_the_mined_pairs(opensearch, workspace):
    """Parts are matched to the teacher by content, not by folder: stale scores are never reused silently."""
    root, config = workspace

    def cli_ok(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--url", opensearch.url, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    (root / "log.jsonl").write_text("".join(json.dumps({"query": q}) + "\n" for q in QUERIES), encoding="utf-8")
    cli_ok("index-catalog")
    cli_ok("train-teacher", "--max-steps", "2")
    cli_ok("augment", "runs/teacher", "--log", "log.jsonl")
    first = {(r["query"], r["product_id"]): r["teacher_score"] for r in _rows(root / "runs/pairs/augmented")}
    cli_ok("augment", "runs/teacher", "--log", "log.jsonl")  # same teacher: everything reused
    assert {(r["query"], r["product_id"]): r["teacher_score"] for r in _rows(root / "runs/pairs/augmented")} == first

    cli_ok("train-teacher", "--max-steps", "3")  # another teacher, same folder and name
    refused = CliRunner().invoke(cli, ["--url", opensearch.url, "augment", "runs/teacher", "--log", "log.jsonl"])
    assert refused.exit_code != 0 and "different log, index, template or teacher" in refused.output
    cli_ok("augment", "runs/teacher", "--log", "log.jsonl", "--replace-stale")
    second = {(r["query"], r["product_id"]): r["teacher_score"] for r in _rows(root / "runs/pairs/augmented")}
    assert second.keys() == first.keys()
    assert sum(abs(second[k] - first[k]) > 1e-7 for k in first) > len(first) / 2  # re-scored, not reused


def test_main_job_killed_mid_step_resumes_with_finished_steps_reused(opensearch, workspace):
    from .faults import kill_at_progress, record, run_cli

    root, _ = workspace
    ledger = root / "runs/steps.json"
    point = kill_at_progress(root, opensearch.url, ("run",), 0.5, "training student", timeout=600)
    done = json.loads(ledger.read_text())["done"]
    rerun = run_cli(root, opensearch.url, "run", timeout=900)
    assert rerun.code == 0, rerun.err[-2000:]
    out = " ".join(rerun.out.split())
    assert out.count(REUSED) == len(done) and "train teacher" in done  # what finished is reused, nothing else
    assert json.loads((root / "runs/evaluate.json").read_text())["queries"] > 0
    record("run (main job)", f"SIGKILL {point}, after {len(done)} finished step(s)", "nothing (killed); the rerun exits 0",
           f"rerun reuses the {len(done)} finished step(s) and completes the rest")
