"""Step reuse: skip finished steps, rerun what a change touches and everything downstream, rerun a killed step."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from reranker_core.steps import Ledger, Step


@dataclass(frozen=True)
class Section:
    value: int


class Job:
    """Three chained steps (a -> b -> c) that count their runs and write one file each."""

    def __init__(self, root: Path) -> None:
        self.root, self.runs = root, []
        (root / "data.txt").write_text("v1")

    def steps(self, a: int = 1, b: int = 1, c: int = 1) -> list[Step]:
        r = self.root
        return [Step("a", (Section(a),), (r / "data.txt",), outputs=(r / "a.out",)),
                Step("b", (Section(b),), after=("a",), outputs=(r / "b.out",)),
                Step("c", (Section(c),), after=("b",), outputs=(r / "c.out",))]

    def run(self, fail_at: str | None = None, **config: int) -> list[str]:
        ledger, ran = Ledger(self.root), []
        for step in self.steps(**config):
            def action(step: Step = step) -> None:
                if step.name == fail_at:
                    raise KeyboardInterrupt  # killed mid-step
                step.outputs[0].write_text("done")
                ran.append(step.name)
            ledger.run(step, action)
        return ran


def test_second_run_skips_everything(tmp_path: Path) -> None:
    job = Job(tmp_path)
    assert job.run() == ["a", "b", "c"]
    assert job.run() == []


def test_changed_section_reruns_its_step_and_everything_downstream(tmp_path: Path) -> None:
    job = Job(tmp_path)
    job.run()
    assert job.run(b=2) == ["b", "c"]
    assert job.run(b=2) == []
    assert job.run(b=2, c=3) == ["c"]


def test_changed_data_file_reruns_the_whole_chain(tmp_path: Path) -> None:
    job = Job(tmp_path)
    job.run()
    (tmp_path / "data.txt").write_text("v2")
    assert job.run() == ["a", "b", "c"]


def test_killed_step_reruns_and_finished_ones_stay(tmp_path: Path) -> None:
    job = Job(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        job.run(fail_at="b")
    assert job.run() == ["b", "c"]


def test_deleted_output_reruns_its_step(tmp_path: Path) -> None:
    job = Job(tmp_path)
    job.run()
    (tmp_path / "c.out").unlink()
    assert job.run() == ["c"]


def test_unreadable_ledger_costs_only_a_rerun(tmp_path: Path) -> None:
    job = Job(tmp_path)
    job.run()
    (tmp_path / "steps.json").write_bytes(b"\xff not json")
    assert job.run() == ["a", "b", "c"]


@dataclass(frozen=True)
class Grown:
    """``Section`` after a release added two settings, both off by default."""

    value: int
    extra: float = 0.0
    switch: bool = False


def test_a_setting_added_off_keeps_the_fingerprint_and_any_value_of_it_changes_it(tmp_path: Path) -> None:
    before, after = Ledger(tmp_path), Ledger(tmp_path)
    old = before.fingerprint(Step("a", (Section(1),)))
    assert after.fingerprint(Step("a", (Grown(1),))) == old  # the old run resumes under the new release
    assert after.fingerprint(Step("a", (Grown(1, extra=0.5),))) != old
    assert after.fingerprint(Step("a", (Grown(1, switch=True),))) != old
    assert after.fingerprint(Step("a", (Grown(2),))) != old
