"""`reranker train-student` killed mid-run resumes from its checkpoint and ends where an uninterrupted run ends.

The kill point is read from the command's own progress lines (at least 40% of its steps), not from a sleep, so
the case tests a resume past a checkpoint however fast or slow the machine is.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from .faults import kill_at_progress, record, run_cli

pytestmark = pytest.mark.integration
URL = "http://127.0.0.1:9"  # train-student never talks to a cluster
KILL_AT = 0.4
TOLERANCE = 1e-5  # as the teacher's kill test (tests/integration/test_faults.py)


def _kill_past(cwd: Path, args: tuple[str, ...], share: float) -> tuple[int, int]:
    """SIGKILL the CLI once its progress shows ``share`` of its steps done; (steps done, total) at the kill."""
    point = kill_at_progress(cwd, URL, args, share, "training student", timeout=600)
    return point.done, point.total


def _weights(path: Path) -> dict:
    return load_file(path / "model.safetensors")


def _max_difference(a: Path, b: Path) -> float:
    x, y = _weights(a), _weights(b)
    assert x.keys() == y.keys()
    return max((x[k] - y[k]).abs().max().item() for k in x)


def test_train_student_killed_past_40_percent_resumes_to_the_uninterrupted_result(workdir):
    reference = run_cli(workdir, URL, "train-student", "--output", "runs/resume-reference", "--restart")
    assert reference.code == 0, reference.err
    target = workdir / "runs/resume-killed"
    checkpoint = target.with_name(f"{target.name}.checkpoint")

    done, total = _kill_past(workdir, ("train-student", "--output", str(target)), KILL_AT)
    assert not (target / "reranker.json").exists()  # nothing that looks finished
    saved = json.loads((checkpoint / "state.json").read_text())["step"]
    assert 0 < saved <= done < total

    rerun = run_cli(workdir, URL, "train-student", "--output", str(target))  # resuming is the default
    assert rerun.code == 0, rerun.err
    assert f"resumed at step {saved}" in " ".join(rerun.out.split())
    assert not checkpoint.exists()  # removed once the output is written
    reference_dir = workdir / "runs/resume-reference"
    meta, expected = (json.loads((p / "reranker.json").read_text()) for p in (target, reference_dir))
    assert meta["steps"] == expected["steps"] == total
    assert meta["losses"] == pytest.approx(expected["losses"], abs=TOLERANCE)
    assert _max_difference(target, reference_dir) < TOLERANCE

    _kill_past(workdir, ("train-student", "--output", str(target)), KILL_AT)  # again, then start over
    fresh = run_cli(workdir, URL, "train-student", "--output", str(target), "--restart")
    assert fresh.code == 0, fresh.err
    assert "resumed" not in fresh.out and not checkpoint.exists()
    assert _max_difference(target, reference_dir) < TOLERANCE
    record("train-student", f"SIGKILL at step {done} of {total} (checkpoint at step {saved})",
           "nothing (killed); the rerun (resuming by default) exits 0",
           f"rerun resumes at step {saved} = uninterrupted run ({TOLERANCE:g}); --restart starts over")
