"""COEC / CTR implicit judgments: the SRW rank normalisation, the leakage guard, export, soft-label blending."""
from __future__ import annotations

import json

import pytest

from training.datasets import DataError, Judgment, split_of
from training.implicit import (blend_soft_labels, engaged_products, export_judgments, implicit_judgments,
                               read_implicit_labels)
from training.ubievents import JoinedEvent, UbiEvent

FRACTIONS, SALT = (0.8, 0.1, 0.1), "reranker"


def queries_in(split: str, n: int) -> list[str]:
    found = [q for q in (f"query {i}" for i in range(1000)) if split_of(q, FRACTIONS, SALT) == split]
    return found[:n]


TRAIN = queries_in("train", 2)
HELD_OUT = queries_in("validation", 1) + queries_in("test", 1)


def shown(query: str, product: str, rank: int, clicked: bool = False) -> list[JoinedEvent]:
    events = [JoinedEvent(query, UbiEvent("impression", "id", product, "product_id", rank))]
    if clicked:
        events.append(JoinedEvent(query, UbiEvent("click", "id", product, "product_id", rank)))
    return events


def test_coec_is_clicks_over_the_clicks_expected_at_the_ranks_shown():
    a, b = TRAIN
    events = (shown(a, "p1", 0, True) + shown(a, "p2", 1) + shown(b, "p3", 0) + shown(b, "p4", 1, True)
              + shown(b, "p4", 1) + shown(a, "p2", 1, True)
              + [JoinedEvent(a, UbiEvent("add_to_cart", "id", "p1", None, 0)),
                 JoinedEvent(a, UbiEvent("click", "id", None, None, None)),
                 *shown(a, "p9", 25, True)])
    result = implicit_judgments(events, FRACTIONS, SALT, max_rank=20)
    # rank 0: 1 click / 2 impressions; rank 1: 2 clicks / 4 impressions
    assert result.rank_ctr[0] == 0.5 and result.rank_ctr[1] == 0.5 and result.rank_ctr[5] == 0.0
    got = {(j.query, j.product_id): (j.impressions, j.clicks, j.expected_clicks, j.ctr, j.coec)
           for j in result.judgments}
    assert got == {(a, "p1"): (1, 1, 0.5, 1.0, 2.0), (a, "p2"): (2, 1, 1.0, 0.5, 1.0),
                   (b, "p3"): (1, 0, 0.5, 0.0, 0.0), (b, "p4"): (2, 1, 1.0, 0.5, 1.0)}
    assert dict(result.ignored_events) == {"action add_to_cart": 1, "no object_id or position": 1,
                                           "position >= max_rank 20": 2}
    assert engaged_products(result.judgments) == {a: {"p1": 2.0, "p2": 1.0}, b: {"p4": 1.0}}
    assert result.judgments[0].soft_label == pytest.approx(2 / 3)


def test_no_validation_or_test_query_contributes_an_event_or_a_judgment():
    events = shown(TRAIN[0], "p1", 0, True) + shown(TRAIN[0], "p2", 1)
    for query in HELD_OUT:  # held-out queries whose clicks would change the rank CTRs if they were counted
        events += shown(query, "p7", 1, True) + shown(query.upper() + " ", "p8", 0)
    result = implicit_judgments(events, FRACTIONS, SALT)
    assert {j.query for j in result.judgments} == {TRAIN[0]}
    assert (result.excluded_eval_events, result.excluded_eval_queries) == (6, 2)
    assert result.rank_ctr[1] == 0.0  # a held-out click at rank 1 would have made it 0.5
    assert result.events_used == 3


def test_the_export_is_an_srw_import_body_labelled_simulated_with_its_sidecar(tmp_path):
    a, b = TRAIN
    result = implicit_judgments(shown(a, "p1", 0, True) + shown(b, "p2", 0), FRACTIONS, SALT)
    path, side = export_judgments(tmp_path / "out" / "judgments.json", result, "hd-clicks", "coec",
                                  {"simulated": True, "simulation": {"seed": 3}})
    body = json.loads(path.read_text())
    assert body["type"] == "IMPORT_JUDGMENT" and body["name"] == "simulated-hd-clicks"
    assert body["description"].startswith("SIMULATED clicks: implicit judgments (COEC")
    assert body["judgmentRatings"] == [{"query": a, "ratings": [{"docId": "p1", "rating": "2.000"}]},
                                       {"query": b, "ratings": [{"docId": "p2", "rating": "0.000"}]}]
    sidecar = json.loads(side.read_text())
    assert sidecar["simulated"] is True and sidecar["simulation"] == {"seed": 3} and sidecar["pairs"] == 2
    assert sidecar["rank_ctr"][:2] == [0.5, 0.0]
    assert read_implicit_labels(path) == {(a, "p1"): pytest.approx(2 / 3), (b, "p2"): 0.0}


def test_unreadable_judgment_lists_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="judgments.json does not exist — run `reranker implicit-judgments`"):
        read_implicit_labels(tmp_path / "judgments.json")
    (tmp_path / "judgments.json").write_text('{"judgmentRatings": [{"query": "q"}]}')
    (tmp_path / "judgments.sidecar.json").write_text('{"metric": "coec"}')
    with pytest.raises(DataError, match="is not a judgment list written by `reranker implicit-judgments`"):
        read_implicit_labels(tmp_path / "judgments.json")


def test_blending_moves_only_judged_pairs_with_an_implicit_label_by_the_weight():
    human = [Judgment("Cordless  Drill", "p1", "3", 1.0), Judgment("cordless drill", "p2", "1", 0.0)]
    implicit = {("cordless drill", "p1"): 0.5}
    assert blend_soft_labels(human, implicit, 0.0) == human
    blended = blend_soft_labels(human, implicit, 0.25)
    assert [j.soft_label for j in blended] == [0.875, 0.0]
    with pytest.raises(ValueError, match="weight must be in"):
        blend_soft_labels(human, implicit, 1.5)


def test_the_teacher_blends_an_exported_list_by_its_configured_weight_and_knows_it_is_simulated(tmp_path):
    from reranker_core.config import ConfigError, TeacherConfig
    from training.implicit import with_implicit_labels

    a, b = TRAIN
    result = implicit_judgments(shown(a, "p1", 0, True) + shown(b, "p2", 0), FRACTIONS, SALT)
    path, _ = export_judgments(tmp_path / "judgments.json", result, "x", "coec", {"simulated": True})
    human = [Judgment(a, "p1", "1", 0.0), Judgment(b, "p3", "3", 1.0)]
    assert with_implicit_labels(human, 0.0, str(path)) == (human, 0, False)  # the default: off, nothing read
    blended, matched, simulated = with_implicit_labels(human, 0.3, str(path))
    assert (matched, simulated) == (1, True)
    assert [j.soft_label for j in blended] == [pytest.approx(0.3 * 2 / 3), 1.0]
    assert TeacherConfig().implicit_weight == 0.0
    with pytest.raises(ConfigError, match="teacher.implicit_weight is set but teacher.implicit_judgments is not"):
        TeacherConfig(implicit_weight=0.5)
    with pytest.raises(ConfigError, match="teacher.implicit_weight is 2"):
        TeacherConfig(implicit_weight=2, implicit_judgments=str(path))


def test_simulated_events_without_their_sidecar_are_still_labelled_simulated(tmp_path):
    from reranker_plugin.jobs.api import simulation_record

    assert "not found: parameters unknown" in simulation_record(tmp_path / "none.json", "ubi_events")["note"]
    (tmp_path / "sim.json").write_text(json.dumps({"events_index": "other", "seed": 1}))
    assert "describes index 'other', not 'ubi_events'" in simulation_record(tmp_path / "sim.json", "ubi_events")["note"]
    assert simulation_record(tmp_path / "sim.json", None)["seed"] == 1  # read from a file: cannot be checked
