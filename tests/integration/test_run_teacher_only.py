"""`reranker run` on one's own catalog and query log without judgments, on the real node with tiny real models:
a teacher trained before (--teacher-from) labels the pool, the student learns its scores, the pipeline reranks,
and the run says what it could not evaluate. Without --teacher-from: one line, nothing written."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reranker_plugin.cli import cli
from reranker_plugin.jobs.search import search
from training.datasets import split_of
from training.onnx_scorer import OnnxZipScorer

from .conftest import PRODUCTS, REUSED, RUN_QUERIES, grade, main_job_project

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]
LOGGED = [*RUN_QUERIES, "cordless hammer drill", "toilet flapper", "garden hose reel", "led light bulb"]


@pytest.fixture
def project(tmp_path, minilm_tokenizer, client, monkeypatch):
    """A catalog and a query log (no judgments), judgments elsewhere for the teacher, tiny models, unique names."""
    with (tmp_path / "products.csv").open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("id", "title"), *((f"p{i}", t) for i, t in enumerate(PRODUCTS))])
    (tmp_path / "queries.jsonl").write_text("".join(json.dumps({"user_query": q}) + "\n" for q in LOGGED),
                                            encoding="utf-8")
    with (tmp_path / "teacher-judgments.csv").open("w", newline="", encoding="utf-8") as fh:  # the teacher's only
        writer = csv.writer(fh)
        writer.writerow(["query", "product_id", "grade"])
        for query in RUN_QUERIES:
            writer.writerows([query, f"p{i}", grade(query, t)] for i, t in enumerate(PRODUCTS) if i % 3 == 0)
    monkeypatch.chdir(tmp_path)
    with main_job_project(client, tmp_path, minilm_tokenizer, "own-t", data={"catalog": "products.csv"},
                          teacher={"views": []}, evaluate={"max_queries": None}) as config:
        yield tmp_path, config["deploy"]  # data.catalog serves train-teacher; run takes --catalog


def _cli(url: str, *args: str):
    return CliRunner().invoke(cli, ["--url", url, *args], catch_exceptions=False)


def test_run_without_judgments_on_a_given_teacher_deploys_a_reranking_student(opensearch, client, project):
    root, deploy = project
    own = ("run", "--catalog", "products.csv", "--queries", "queries.jsonl")
    refused = _cli(opensearch.url, *own)
    lines = [line for line in refused.output.splitlines() if line.strip()]
    assert refused.exit_code != 0 and len(lines) == 1 and "--teacher-from" in lines[0], refused.output
    assert not (root / "runs").exists() and not client.indices.exists(index=deploy["index"])  # nothing written

    taught = _cli(opensearch.url, "train-teacher", "--data", "teacher-judgments.csv", "--kind", "generic",
                  "--output", "my-teacher")
    assert taught.exit_code == 0, taught.output
    result = _cli(opensearch.url, *own, "--teacher-from", "my-teacher")
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "no judgments: NDCG" in out and "(no judged test split)" in out  # what it could not evaluate
    assert not (root / "runs/student-human").exists() and not (root / "runs/pairs/judged-train.parquet").exists()

    student = json.loads((root / "runs/student/reranker.json").read_text())
    assert student["sources"] == ["augmented"] and student["base_model"] == str(Path("my-teacher") / "cross_encoder")
    mined = json.loads((root / "runs/pairs/augmented/report.json").read_text())
    assert mined["queries"] == sum(split_of(q) == "train" for q in LOGGED)  # held-out queries are not mined
    found = json.loads((root / "runs/evaluate.json").read_text())
    held_out = sum(split_of(q) != "train" for q in LOGGED)
    assert 0 < found["queries"] <= held_out and set(found["systems"]) == {"bm25", deploy["pipeline"]}
    for system in found["systems"].values():
        value, low, high = system["kendall_tau"]
        assert -1 <= low <= value <= high <= 1

    scorer = OnnxZipScorer(root / "runs/student.zip")  # fp32 ships: no judged validation split for an int8 verdict
    for query in ("cordless drill", "garden hose"):
        plain = search(client, deploy["index"], query, ("title",), 10, None)
        reranked = search(client, deploy["index"], query, ("title",), 10, deploy["pipeline"])
        assert plain and {h.doc_id for h in reranked} == {h.doc_id for h in plain}
        local = dict(zip((h.doc_id for h in plain), scorer.score(query, [h.text for h in plain])))
        for hit in reranked:  # the student's logits, not BM25's scores
            assert hit.score == pytest.approx(local[hit.doc_id], abs=1e-4)

    again = _cli(opensearch.url, *own, "--teacher-from", "my-teacher")
    assert again.exit_code == 0 and " ".join(again.output.split()).count(REUSED) == 3  # augment, student, export

    retaught = _cli(opensearch.url, "train-teacher", "--data", "teacher-judgments.csv", "--kind", "generic",
                    "--output", "my-teacher", "--max-steps", "2", "--restart")  # another teacher, same folder
    assert retaught.exit_code == 0, retaught.output
    other = _cli(opensearch.url, *own, "--teacher-from", "my-teacher")
    assert other.exit_code == 0 and REUSED not in " ".join(other.output.split())  # its identity is fingerprinted
    rescored = json.loads((root / "runs/pairs/augmented/report.json").read_text())
    assert rescored["pairs_total"] == mined["pairs_total"]  # the same pool, scored again by the new teacher
