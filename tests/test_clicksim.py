"""The position-based click model and simulated sessions: stated parameters, grades drive clicks, UBI docs."""
from __future__ import annotations

import pytest

from training.clicksim import SIMULATED_APPLICATION, ClickModel, simulate
from training.ubievents import parse_event


def test_click_probability_is_examination_times_attractiveness_from_the_grade():
    model = ClickModel(eta=1.0, attractiveness_min=0.1, attractiveness_max=0.9, unjudged_attractiveness=0.2)
    assert model.click_probability(0, 1.0) == pytest.approx(0.9)
    assert model.click_probability(1, 0.5) == pytest.approx(0.5 * 0.5)
    assert model.click_probability(3, None) == pytest.approx(0.25 * 0.2)
    assert model.describe()["unjudged_attractiveness"] == 0.2 and "PBM" in model.describe()["model"]
    with pytest.raises(ValueError):
        ClickModel(attractiveness_max=1.5)


def test_noise_mixes_attractiveness_toward_one_value_so_clicks_follow_position_alone_at_1():
    def model(noise: float) -> ClickModel:
        return ClickModel(eta=1.0, attractiveness_min=0.1, attractiveness_max=0.9, unjudged_attractiveness=0.2,
                          noise=noise)

    assert model(0.0).click_probability(0, 1.0) == pytest.approx(0.9)
    assert model(0.5).click_probability(0, 1.0) == pytest.approx(0.5 * 0.9 + 0.5 * 0.5)
    assert model(0.5).click_probability(1, None) == pytest.approx(0.5 * (0.5 * 0.2 + 0.5 * 0.5))
    flat = model(1.0)
    assert [flat.attractiveness(s) for s in (None, 0.0, 0.5, 1.0)] == pytest.approx([0.5] * 4)
    assert model(0.3).describe()["noise"] == 0.3 and "noise" in model(0.3).describe()["attractiveness"]
    with pytest.raises(ValueError):
        model(1.5)


def test_sessions_are_reproducible_ubi_docs_and_grades_drive_clicks():
    pages = {"drill": ["good", "bad", "unjudged"], "paint": ["p1"], "rare": []}
    labels = {("drill", "good"): 1.0, ("drill", "bad"): 0.0, ("paint", "p1"): 0.5}
    model = ClickModel(eta=0.0)  # every rank examined: clicks then follow attractiveness alone
    log = simulate(pages, {"drill": 3, "paint": 1, "rare": 5}, labels, model, sessions=400, seed=7)
    assert log == simulate(pages, {"drill": 3, "paint": 1, "rare": 5}, labels, model, sessions=400, seed=7)
    assert set(log.sessions_per_query) == {"drill", "paint"}  # a query with an empty page gets no session
    assert log.sessions_per_query["drill"] > 2 * log.sessions_per_query["paint"]  # drawn by frequency
    query_ids = {d["query_id"] for d in log.queries}
    assert len(query_ids) == len(log.queries) == 400
    assert all(d["application"] == SIMULATED_APPLICATION for d in log.queries + log.events)
    parsed = [parse_event(n, e) for n, e in enumerate(log.events, start=1)]
    assert all(p.error is None and p.event.query_id in query_ids for p in parsed)
    clicks = {pid: sum(1 for p in parsed if p.event.action_name == "click" and p.event.object_id == pid)
              for pid in ("good", "bad", "unjudged")}
    shown = log.sessions_per_query["drill"]
    assert clicks["good"] / shown == pytest.approx(0.95, abs=0.05)
    assert clicks["bad"] / shown == pytest.approx(0.05, abs=0.05)
    assert clicks["unjudged"] / shown == pytest.approx(0.1, abs=0.06)
    impressions = [p.event for p in parsed if p.event.action_name == "impression"]
    assert {e.position for e in impressions if e.object_id == "unjudged"} == {2}


def test_the_cascade_model_clicks_at_most_once_per_session_scanning_top_down():
    pages = {"drill": ["good", "bad", "unjudged"]}
    labels = {("drill", "good"): 1.0, ("drill", "bad"): 0.0}
    model = ClickModel(kind="cascade")
    log = simulate(pages, {"drill": 1}, labels, model, sessions=300, seed=1)
    clicks = [e for e in log.events if e["action_name"] == "click"]
    per_session = {}
    for e in clicks:
        per_session[e["query_id"]] = per_session.get(e["query_id"], 0) + 1
    assert max(per_session.values()) == 1
    first = sum(1 for e in clicks if e["event_attributes"]["object"]["object_id"] == "good")
    assert first / 300 == pytest.approx(0.95, abs=0.04)  # the first result ends most sessions
    assert model.describe()["model"] == "cascade (CM)" and model.describe()["kind"] == "cascade"
    with pytest.raises(ValueError, match="click model 'dbn' is unknown"):
        ClickModel(kind="dbn")
