"""Fault campaign on the real node: the CLI killed mid-step, a full disk, a cluster that cannot be reached.

Each case checks what the user sees (exit code, one line) and what is left: a
rerun of the same command converges to the result of an uninterrupted run, no
half-written file is taken for a finished one, no orphan model stays deployed.
"""
from __future__ import annotations

import csv
import hashlib
import json
import time
from pathlib import Path

import pytest

from reranker_core.model_zip import validate_zip
from training.ensemble import load_teacher
from training.pairs import read_pairs
from reranker_plugin.mlcommons.client import MLCommons
from reranker_plugin.mlcommons.pipeline import get_pipeline, pipeline_model_id
from training.onnx_scorer import OnnxZipScorer
from training.student import CrossEncoder

from .conftest import PRODUCTS
from .faults import full_disk, kill_at_progress, kill_when, record, run_cli, trained_teacher

pytestmark = pytest.mark.integration

PAIRS = [("cordless drill", "Makita 18V LXT cordless hammer drill"), ("white paint", "paint roller kit 9 in")]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _student_scores(path: Path) -> list[float]:
    return CrossEncoder.load(path).score(PAIRS)


def test_train_student_killed_mid_run_resumes_and_a_rerun_equals_an_uninterrupted_run(opensearch, workdir):
    reference = run_cli(workdir, opensearch.url, "train-student", "--output", "runs/reference")
    assert reference.code == 0, reference.err
    point = kill_at_progress(workdir, opensearch.url, ("train-student",), 0.5, "training student")
    assert not (workdir / "runs/student/reranker.json").exists()  # nothing that looks finished
    checkpoint = (workdir / "runs/student.checkpoint").is_dir()  # written every 50 steps
    rerun = run_cli(workdir, opensearch.url, "train-student")
    assert rerun.code == 0, rerun.err
    assert ("resumed at step" in rerun.out + rerun.err) == checkpoint
    assert not (workdir / "runs/student.checkpoint").exists()  # spent once the output is written
    assert _student_scores(workdir / "runs/student") == pytest.approx(_student_scores(workdir / "runs/reference"),
                                                                      abs=1e-5)
    record("train-student", f"SIGKILL {point}", "nothing (killed); the rerun exits 0",
           ("the checkpoint of the last 50 steps; the rerun resumes from it" if checkpoint
            else "no checkpoint yet (killed before step 50)") + "; rerun = uninterrupted run (1e-5)")


def test_export_killed_leaves_no_partial_zip_and_disk_full_keeps_the_previous_zip(opensearch, workdir):
    if not (workdir / "runs/student/reranker.json").exists():
        assert run_cli(workdir, opensearch.url, "train-student").code == 0
    target, reference = workdir / "runs/student.zip", workdir / "runs/student-reference.zip"
    assert run_cli(workdir, opensearch.url, "export", "runs/student", "--output", str(reference)).code == 0
    target.unlink(missing_ok=True)
    point = kill_at_progress(workdir, opensearch.url, ("export", "runs/student"), 0.5, "exporting")
    assert not target.exists()  # killed with the zip staged, before the final write
    done = run_cli(workdir, opensearch.url, "export", "runs/student")
    assert done.code == 0, done.err
    validate_zip(target)
    before = _sha(target)
    local = OnnxZipScorer(target).score(PAIRS[0][0], [PAIRS[0][1]])
    assert local == OnnxZipScorer(reference).score(PAIRS[0][0], [PAIRS[0][1]])
    same_bytes = before == _sha(reference)
    record("export", f"SIGKILL {point}", "nothing (killed); the rerun exits 0",
           "no zip; the rerun's zip scores as the uninterrupted run's"
           + (" (byte for byte)" if same_bytes else " (same scores; the zips' bytes differ)"))

    full = run_cli(workdir, opensearch.url, "export", "runs/student", file_size_limit=200_000)
    assert full.code == 1 and "Traceback" not in full.err, full.err
    assert "File too large" in full.last_line and "untouched" in full.last_line
    assert _sha(target) == before and OnnxZipScorer(target).score(PAIRS[0][0], [PAIRS[0][1]]) == local
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".student.zip.")]  # no temp file left
    record("export", "disk full (200 kB file limit) while writing the zip", full.last_line,
           "the previous zip, byte for byte; no temp file")


def test_train_student_on_a_full_disk_keeps_the_previous_checkpoint(opensearch, workdir):
    if not (workdir / "runs/student/reranker.json").exists():
        assert run_cli(workdir, opensearch.url, "train-student").code == 0
    before = _student_scores(workdir / "runs/student")
    full = run_cli(workdir, opensearch.url, "train-student", "--max-steps", "3", file_size_limit=100_000)
    assert full.code == 1 and "Traceback" not in full.err, full.err
    assert "runs/student" in full.last_line and "disk" in full.last_line
    assert _student_scores(workdir / "runs/student") == before
    record("train-student", "disk full (100 kB file limit) while saving the checkpoint", full.last_line,
           "the previous checkpoint, unchanged")


def test_deploy_killed_during_chunk_upload_then_rerun_converges(opensearch, client, workdir, tiny_zip,
                                                                products_index, unique_names):
    ml = MLCommons(client)
    args = ("deploy", str(tiny_zip), "--name", unique_names["model"], "--index", products_index, "--field", "title",
            "--pipeline", unique_names["pipeline"])

    def uploading() -> bool:
        client.indices.refresh(index=".plugins-ml-model", ignore_unavailable=True)
        return any(m.name == unique_names["model"] for m in ml.list_models())

    kill_when(workdir, opensearch.url, args, ready=uploading)
    half = [m for m in ml.list_models() if m.name == unique_names["model"]]
    assert get_pipeline(client, unique_names["pipeline"]) is None  # nothing serves the half model
    done = run_cli(workdir, opensearch.url, *args)
    assert done.code == 0, done.err
    client.indices.refresh(index=".plugins-ml-model", ignore_unavailable=True)
    served = pipeline_model_id(get_pipeline(client, unique_names["pipeline"]))
    models = {m.model_id: m.state for m in ml.list_models() if m.name == unique_names["model"]}
    assert models[served] == "DEPLOYED"
    assert {m.model_id for m in half} <= set(models)  # a young half upload may be another deploy's: left alone
    time.sleep(2.5)
    again = run_cli(workdir, opensearch.url, *args, "--timeout", "2")  # now it is older than the deploy timeout
    assert again.code == 0, again.err
    client.indices.refresh(index=".plugins-ml-model", ignore_unavailable=True)
    models = [m for m in ml.list_models() if m.name == unique_names["model"]]
    assert [m.model_id for m in models] == [served] and models[0].state == "DEPLOYED"  # the half one is gone
    record("deploy", f"SIGKILL during chunk upload (model {half[0].state if half else 'not listed yet'})",
           "nothing (killed); the rerun exits 0",
           "rerun uploads its own model and leaves the half one (younger than the deploy timeout, it could be "
           "another deploy's); the next deploy after the timeout deletes it; one model deployed, the pipeline on it")


def test_deploy_killed_after_upload_then_rerun_converges(opensearch, client, workdir, tiny_zip, products_index,
                                                         unique_names):
    ml = MLCommons(client)
    args = ("deploy", str(tiny_zip), "--name", unique_names["model"], "--index", products_index, "--field", "title",
            "--pipeline", unique_names["pipeline"])
    phase: list[str] = []

    def uploaded() -> bool:
        client.indices.refresh(index=".plugins-ml-model", ignore_unavailable=True)
        states = [m.state for m in ml.list_models() if m.name == unique_names["model"]]
        if states and states[0] != "REGISTERING":
            phase.append(states[0])
            return True
        return False

    kill_when(workdir, opensearch.url, args, ready=uploaded)
    done = run_cli(workdir, opensearch.url, *args)
    assert done.code == 0, done.err
    client.indices.refresh(index=".plugins-ml-model", ignore_unavailable=True)
    models = [m for m in ml.list_models() if m.name == unique_names["model"]]
    assert len(models) == 1 and models[0].state == "DEPLOYED"
    assert pipeline_model_id(get_pipeline(client, unique_names["pipeline"])) == models[0].model_id
    record("deploy", f"SIGKILL after the upload (model {phase[0]})", "nothing (killed); the rerun exits 0",
           "rerun reuses the uploaded model; one model deployed, the pipeline on it")


def test_index_catalog_killed_mid_bulk_then_rerun_indexes_every_product_once(opensearch, client, tmp_path):
    index = f"faults-catalog-{int(time.time() * 1000)}"
    catalog = tmp_path / "catalog.csv"
    with catalog.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "title"])
        writer.writerows([f"p{i}", f"{PRODUCTS[i % len(PRODUCTS)]} model {i}"] for i in range(20_000))
    args = ("index-catalog", str(catalog), "--index", index)
    try:
        point = kill_at_progress(tmp_path, opensearch.url, args, 0.5, "indexing into")
        client.indices.refresh(index=index)
        partial = client.count(index=index)["count"]
        done = run_cli(tmp_path, opensearch.url, *args)
        assert done.code == 0, done.err
        client.indices.refresh(index=index)
        assert client.count(index=index)["count"] == 20_000
        assert client.get(index=index, id="p19999")["_source"]["title"].endswith("model 19999")
        assert 0 < partial < 20_000
        record("index-catalog", f"SIGKILL {point} ({partial} of 20,000 indexed)", "nothing (killed); the rerun "
               "exits 0", "rerun indexes every product exactly once (ids are the _id)")
    finally:
        client.indices.delete(index=index, ignore_unavailable=True)


@pytest.mark.parametrize("url, cause", [("http://127.0.0.1:9", "closed port"),
                                        ("https://127.0.0.1:{port}", "TLS to a plain-HTTP node")])
def test_unreachable_or_misconfigured_cluster_is_one_line(opensearch, workdir, url, cause):
    port = opensearch.url.rsplit(":", 1)[-1].rstrip("/")
    done = run_cli(workdir, url.format(port=port), "models", "list", timeout=120)
    assert done.code == 1 and "Traceback" not in done.err, done.err
    assert len(done.err.strip().splitlines()) == 1 and "127.0.0.1" in done.last_line
    record("any cluster command", cause, done.last_line, "nothing written")


def test_evaluate_offline_killed_leaves_no_partial_results(opensearch, workdir):
    if not (workdir / "runs/student/reranker.json").exists():
        assert run_cli(workdir, opensearch.url, "train-student").code == 0
    args = ("evaluate-offline", "runs/student", "--split", "train")
    reference = workdir / "runs/evaluate-offline-reference.json"
    assert run_cli(workdir, opensearch.url, *args, "--json", str(reference)).code == 0
    results = workdir / "runs/evaluate-offline.json"
    results.unlink(missing_ok=True)
    point = kill_at_progress(workdir, opensearch.url, args, 0.5, "scoring with")
    assert not results.exists()  # killed while scoring: nothing written yet
    done = run_cli(workdir, opensearch.url, *args)
    assert done.code == 0, done.err
    data = json.loads(results.read_text())
    assert data["queries"] > 0 and len(data["systems"]) == 2  # random order and the student
    assert data == json.loads(reference.read_text())
    record("evaluate-offline", f"SIGKILL {point}", "nothing (killed); the rerun exits 0",
           "no results file; rerun = uninterrupted run (the same JSON)")


# ------------------------------------------------- teacher, label, augment, evaluate
def _rows(path: Path) -> list[tuple]:
    return sorted((r["query"], r["product_id"], round(float(r["teacher_score"]), 5)) for r in read_pairs([path]))


def test_train_teacher_killed_then_rerun_equals_an_uninterrupted_run(opensearch, workdir):
    reference = run_cli(workdir, opensearch.url, "train-teacher", "--output", "runs/teacher-reference")
    assert reference.code == 0, reference.err
    target = workdir / "runs/teacher-killed"
    checkpoint = target.with_name(f"{target.name}.checkpoint")
    point = kill_at_progress(workdir, opensearch.url, ("train-teacher", "--output", str(target)), 0.5,
                             "training teacher", ready=lambda: (checkpoint / "state.json").is_file())
    assert not (target / "reranker.json").exists()
    saved = json.loads((checkpoint / "state.json").read_text())["step"]
    rerun = run_cli(workdir, opensearch.url, "train-teacher", "--output", str(target))  # resuming is the default
    assert rerun.code == 0, rerun.err
    assert saved > 0 and f"resumed at step {saved}" in " ".join(rerun.out.split())
    assert not checkpoint.exists()
    expected = load_teacher(workdir / "runs/teacher-reference").score(PAIRS)
    assert load_teacher(target).score(PAIRS) == pytest.approx(expected, abs=1e-5)
    record("train-teacher", f"SIGKILL {point} (checkpoint at step {saved})",
           "nothing (killed); the rerun (resuming by default) exits 0",
           "no teacher until the rerun; rerun = uninterrupted run (1e-5)")


def test_label_killed_or_on_a_full_disk_never_leaves_a_partial_pairs_file(opensearch, workdir):
    teacher = trained_teacher(workdir, opensearch.url)
    reference = workdir / "runs/pairs/reference.parquet"
    assert run_cli(workdir, opensearch.url, "label", str(teacher), "--output", str(reference)).code == 0
    target = workdir / "runs/pairs/judged-train.parquet"
    target.unlink(missing_ok=True)
    point = kill_at_progress(workdir, opensearch.url, ("label", str(teacher), "--output", str(target)), 0.5,
                             "labeling judged pairs")
    assert not target.exists()  # killed mid-labeling: no pairs file yet
    assert run_cli(workdir, opensearch.url, "label", str(teacher), "--output", str(target)).code == 0
    assert _rows(target) == _rows(reference)
    record("label", f"SIGKILL {point}", "nothing (killed); the rerun exits 0",
           "no pairs file; rerun = uninterrupted run")

    before = _sha(target)
    full = run_cli(workdir, opensearch.url, "label", str(teacher), "--output", str(target), file_size_limit=2_000)
    assert full.code == 1 and "Traceback" not in full.err, full.err
    assert "File too large" in full.last_line or "disk" in full.last_line
    assert _sha(target) == before
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no temp file left
    record("label", "disk full (2 kB file limit) while writing the pairs", full.last_line,
           "the previous pairs file, byte for byte; no temp file")


def test_augment_killed_then_resumed_writes_each_pair_once(opensearch, workdir, products_index):
    teacher = trained_teacher(workdir, opensearch.url)
    words = sorted({w.lower() for title in PRODUCTS for w in title.split() if w.isalpha() and len(w) > 3})
    log = workdir / "augment-log.jsonl"
    queries = [f"{a} {b}" for a in words for b in words if a < b][:400]
    log.write_text("".join(json.dumps({"user_query": q}) + "\n" for q in queries), encoding="utf-8")
    common = ("augment", str(teacher), "--log", str(log), "--index", products_index, "--top-k", "5")
    reference = run_cli(workdir, opensearch.url, *common, "--output", "runs/augment-reference")
    assert reference.code == 0, reference.err
    target = workdir / "runs/augment-killed"
    point = kill_at_progress(workdir, opensearch.url, (*common, "--output", str(target)), 0.25, "mining and labeling",
                             ready=lambda: any(target.glob("part-*.parquet")))
    parts_at_kill = len(list(target.glob("part-*.parquet")))
    rerun = run_cli(workdir, opensearch.url, *common, "--output", str(target))
    assert rerun.code == 0, rerun.err
    got, expected = _rows(target), _rows(workdir / "runs/augment-reference")
    assert got == expected and len(set(got)) == len(got)  # every pair, once, same scores
    record("augment", f"SIGKILL {point} ({parts_at_kill} part(s) written)",
           "nothing (killed); the rerun resumes and exits 0",
           f"finished parts kept; rerun = uninterrupted run ({len(got)} pairs, none twice)")

    with full_disk(workdir / "runs/augment-disk") as disk:
        argv = (*common, "--output", str(disk.path / "augmented"))
        line = disk.refused_then_rerun(workdir, opensearch.url, *argv)
        assert _rows(disk.path / "augmented") == expected
    record("augment", str(disk), line,
           "no part half-written, no temp file; after freeing space the rerun = uninterrupted run")


def test_evaluate_killed_leaves_no_partial_results(opensearch, client, workdir, tiny_zip, products_index,
                                                   unique_names):
    assert run_cli(workdir, opensearch.url, "deploy", str(tiny_zip), "--name", unique_names["model"], "--index",
                   products_index, "--field", "title", "--pipeline", unique_names["pipeline"]).code == 0
    args = ("evaluate", "--index", products_index, "--pipeline", unique_names["pipeline"], "--split", "train")
    reference = run_cli(workdir, opensearch.url, *args, "--json", "runs/evaluate-reference.json")
    assert reference.code == 0, reference.err
    results = workdir / "runs/evaluate-killed.json"
    point = kill_at_progress(workdir, opensearch.url, (*args, "--json", str(results)), 0.5, "searching")
    assert not results.exists()  # killed mid-search: nothing written yet
    done = run_cli(workdir, opensearch.url, *args, "--json", str(results))
    assert done.code == 0, done.err

    expected = json.loads((workdir / "runs/evaluate-reference.json").read_text())["systems"]
    assert json.loads(results.read_text())["systems"] == expected
    record("evaluate", f"SIGKILL {point}", "nothing (killed); the rerun exits 0",
           "no results file; rerun = uninterrupted run")

    with full_disk(workdir / "runs/evaluate-disk") as disk:
        argv = (*args, "--json", str(disk.path / "evaluate.json"))
        line = disk.refused_then_rerun(workdir, opensearch.url, *argv, target=disk.path / "evaluate.json")
        assert json.loads((disk.path / "evaluate.json").read_text())["systems"] == expected
    record("evaluate", str(disk), line,
           "no results file, no temp file; after freeing space the rerun = uninterrupted run")
