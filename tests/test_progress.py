"""Progress on long steps when stderr is a log file (``nohup ... &``), not a terminal."""
from __future__ import annotations

import pytest

from reranker_plugin.cli import app


@pytest.fixture
def clock(monkeypatch):
    """A fake monotonic clock the test moves by hand."""
    now = [0.0]
    monkeypatch.setattr(app.time, "monotonic", lambda: now[0])
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    return now


def test_a_log_gets_a_line_a_minute_and_the_last_state(clock, capsys):
    with app.progress_bar("training teacher") as update:  # capsys' stderr is not a terminal
        for step in range(1, 191):
            clock[0] += 1.0  # a step a second
            update(step, 200)
    assert capsys.readouterr().err.splitlines() == [
        "training teacher: 60/200 steps, 1.0 steps/s, 0:01:00 elapsed, eta 0:02:20",
        "training teacher: 120/200 steps, 1.0 steps/s, 0:02:00 elapsed, eta 0:01:20",
        "training teacher: 180/200 steps, 1.0 steps/s, 0:03:00 elapsed, eta 0:00:20",
        "training teacher: 190/200 steps, 1.0 steps/s, 0:03:10 elapsed, eta 0:00:10",
    ]


def test_a_short_step_logs_one_line_and_a_failed_one_none_after_its_error(clock, capsys):
    with app.progress_bar("labeling judged pairs", "pairs") as update:
        clock[0] += 4.0
        update(500, 500)
    assert capsys.readouterr().err.splitlines() == [
        "labeling judged pairs: 500/500 pairs, 125.0 pairs/s, 0:00:04 elapsed, eta 0:00:00"]
    with pytest.raises(RuntimeError), app.progress_bar("scoring", "pairs") as update:
        update(3, 10)
        raise RuntimeError("model broke")
    assert capsys.readouterr().err == ""


def test_a_resumed_step_reports_the_rate_of_this_run_not_of_the_steps_done_before(clock, capsys):
    with app.progress_bar("training teacher") as update:
        for step in range(501, 561):  # resumed at step 500 of 700: two seconds a step from here
            clock[0] += 2.0
            update(step, 700)
    assert capsys.readouterr().err.splitlines() == [
        "training teacher: 530/700 steps, 0.50 steps/s, 0:01:00 elapsed, eta 0:05:40",
        "training teacher: 560/700 steps, 0.50 steps/s, 0:02:00 elapsed, eta 0:04:40",
    ]


def test_reranker_progress_every_s_sets_the_interval_and_a_bad_value_keeps_a_minute(clock, capsys, monkeypatch):
    monkeypatch.setenv("RERANKER_PROGRESS_EVERY_S", "0")  # what the fault tests use to see every update
    with app.progress_bar("exporting", "stages") as update:
        for stage in range(1, 5):
            clock[0] += 1.0
            update(stage, 4)
    assert [line.split(",")[0] for line in capsys.readouterr().err.splitlines()] == [
        f"exporting: {n}/4 stages" for n in range(1, 5)]
    for bad in ("soon", "-1"):
        monkeypatch.setenv("RERANKER_PROGRESS_EVERY_S", bad)
        assert app.log_every_s() == app.LOG_EVERY_S
