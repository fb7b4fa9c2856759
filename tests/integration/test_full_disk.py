"""A full disk under every step that writes files: one error line naming the output and the fix, nothing
half-written under the final name, and once space is freed the rerun writes what an uninterrupted run writes.

The outputs go to a small tmpfs filled to the last byte (``faults.full_disk``;
RLIMIT_FSIZE where mounting is refused). `augment` and `evaluate` are covered
in ``test_faults.py``, beside their kill cases and reference runs.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from training.ensemble import load_teacher
from training.onnx_scorer import OnnxZipScorer
from training.pairs import read_pairs
from training.student import CrossEncoder

from .conftest import JUDGED_QUERIES
from .faults import full_disk, record, run_cli

pytestmark = pytest.mark.integration

PAIRS = [("cordless drill", "Makita 18V LXT cordless hammer drill"), ("white paint", "paint roller kit 9 in")]


@pytest.fixture(scope="module")
def small_models(opensearch, workdir) -> Path:
    """A 4-step teacher and student in ``workdir/runs`` for the steps that read them."""
    for step in ("train-teacher", "train-student"):
        done = run_cli(workdir, opensearch.url, step, "--max-steps", "4")
        assert done.code == 0, done.err
    return workdir


def _ubi_exports(root: Path) -> tuple[Path, Path]:
    """ubi_queries / ubi_events exports: an impression and a click per judged query."""
    queries, events = root / "ubi-queries.jsonl", root / "ubi-events.jsonl"
    texts = [f"{q} {n}" for n, q in enumerate(JUDGED_QUERIES * 6)]
    queries.write_text("".join(json.dumps({"query_id": f"q{i}", "user_query": t}) + "\n"
                               for i, t in enumerate(texts)), encoding="utf-8")
    lines = []
    for i in range(len(texts)):
        for rank, action in enumerate(("impression", "click")):
            lines.append({"application": "shop", "action_name": action, "query_id": f"q{i}", "client_id": "c1",
                          "session_id": f"s{i}", "timestamp": "2025-02-01T10:00:00Z",
                          "event_attributes": {"object": {"object_id": f"p{(i + rank) % 30}",
                                                          "object_id_field": "product_id"},
                                               "position": {"ordinal": rank}}})
    events.write_text("".join(json.dumps(e) + "\n" for e in lines), encoding="utf-8")
    return queries, events


def _same_bytes(a: Path, b: Path) -> bool:
    return hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


def _same_json(a: Path, b: Path) -> bool:
    return json.loads(a.read_text()) == json.loads(b.read_text())


def _same_pairs(a: Path, b: Path) -> bool:
    def rows(path: Path) -> list[tuple]:
        return sorted((r["query"], r["product_id"], round(float(r["teacher_score"]), 5)) for r in read_pairs([path]))
    return rows(a) == rows(b)


def _same_teacher(a: Path, b: Path) -> bool:
    return load_teacher(a).score(PAIRS) == pytest.approx(load_teacher(b).score(PAIRS), abs=1e-5)


def _same_student(a: Path, b: Path) -> bool:
    return CrossEncoder.load(a).score(PAIRS) == pytest.approx(CrossEncoder.load(b).score(PAIRS), abs=1e-5)


def _same_zip_scores(a: Path, b: Path) -> bool:
    return OnnxZipScorer(a).score(PAIRS[0][0], [PAIRS[0][1]]) == OnnxZipScorer(b).score(PAIRS[0][0], [PAIRS[0][1]])


# step, its arguments with the output at {out}, the output's name, how a rerun must equal the uninterrupted run
CASES: list[tuple[str, tuple[str, ...], str, Callable[[Path, Path], bool], str]] = [
    ("train-teacher", ("train-teacher", "--max-steps", "4", "--output", "{out}"), "teacher", _same_teacher,
     "same scores (1e-5)"),
    ("label", ("label", "runs/teacher", "--output", "{out}"), "pairs.parquet", _same_pairs, "same pairs and scores"),
    ("train-student", ("train-student", "--max-steps", "4", "--output", "{out}"), "student", _same_student,
     "same scores (1e-5)"),
    ("export", ("export", "runs/student", "--output", "{out}"), "student.zip", _same_zip_scores,
     "same onnxruntime scores"),
    ("evaluate-offline", ("evaluate-offline", "runs/student", "--split", "train", "--json", "{out}"),
     "evaluate-offline.json", _same_json, "the same JSON"),
    ("implicit-judgments", ("implicit-judgments", "--events", "ubi-events.jsonl", "--queries", "ubi-queries.jsonl",
                            "--output", "{out}"), "judgments.json", _same_bytes, "byte for byte"),
]


@pytest.mark.parametrize("step, args, name, same, how", CASES, ids=[c[0] for c in CASES])
def test_a_full_disk_fails_in_one_line_leaves_nothing_half_written_and_the_rerun_equals_an_uninterrupted_run(
        opensearch, small_models, tmp_path, step, args, name, same, how):
    root = small_models
    _ubi_exports(root)
    reference = tmp_path / "reference" / name
    done = run_cli(root, opensearch.url, *[a.format(out=reference) for a in args])
    assert done.code == 0, done.err
    with full_disk(tmp_path) as disk:
        target = disk.path / "out" / name
        argv = [a.format(out=target) for a in args]
        line = disk.refused_then_rerun(root, opensearch.url, *argv, target=target)
        assert same(target, reference)
    record(step, str(disk), line,
           f"nothing under the output's name, no temp file; after freeing space the rerun = uninterrupted run ({how})")


def test_simulate_events_on_a_full_disk_keeps_the_indexes_as_an_uninterrupted_run_leaves_them(
        opensearch, client, workdir, products_index, tmp_path):
    """The UBI docs go to the cluster before the sidecar is written: their ids come from the seed, so the
    failed run and the rerun rewrite the same docs and the indexes hold what one uninterrupted run wrote."""
    suffix = tmp_path.name[-8:].lower().replace("_", "-")
    events, queries = f"ubi-events-disk-{suffix}", f"ubi-queries-disk-{suffix}"
    args = ("simulate-events", "--index", products_index, "--events-index", events, "--queries-index", queries,
            "--sessions", "40", "--seed", "1", "--top-k", "5")

    def counts() -> tuple[int, int]:
        client.indices.refresh(index=f"{events},{queries}")
        return client.count(index=events)["count"], client.count(index=queries)["count"]

    def sidecar(path: Path) -> dict:
        return {k: v for k, v in json.loads(path.read_text()).items() if k != "seconds"}

    try:
        reference = tmp_path / "reference.json"
        done = run_cli(workdir, opensearch.url, *args, "--json", str(reference))
        assert done.code == 0, done.err
        expected = counts()
        assert expected[0] > 0
        with full_disk(tmp_path) as disk:
            target = disk.path / "simulation.json"
            line = disk.refused_then_rerun(workdir, opensearch.url, *args, "--json", str(target), target=target)
            assert counts() == expected  # the same docs, none twice
            assert sidecar(target) == sidecar(reference)
        record("simulate-events", str(disk), line,
               "no sidecar under its name, no temp file; the UBI indexes hold the same docs (seeded ids); after "
               "freeing space the rerun = uninterrupted run (same docs and sidecar but its timing)")
    finally:
        for index in (events, queries):
            client.indices.delete(index=index, ignore_unavailable=True)
