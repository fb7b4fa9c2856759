"""UBI events on the real node: reading ubi_events joined to ubi_queries, simulated sessions written in UBI's
schema, implicit judgments from them, and the CLI — with no validation / test query getting an event."""
from __future__ import annotations

import csv
import json
import uuid

import pytest
from click.testing import CliRunner

from reranker_core.errors import ClusterError
from reranker_plugin.cli import cli
from reranker_plugin.jobs.simulate import SimulationPlan, simulate_events
from reranker_plugin.jobs.ubi_events import EventSource, iter_ubi_events, read_joined_events, ubi_query_texts
from training.clicksim import SIMULATED_APPLICATION, ClickModel
from training.datasets import DataError, Dataset, Judgment, split_of
from training.implicit import implicit_judgments
from training.ubievents import UbiEvent

from .conftest import PRODUCTS, fill_index

pytestmark = pytest.mark.integration

FRACTIONS, SALT = (0.8, 0.1, 0.1), "reranker"
TRAIN_QUERIES = ["white paint", "drill bits", "pipe wrench", "ceiling fan", "toilet flapper"]
HELD_OUT_QUERIES = ["cordless drill", "garden hose", "light bulb", "paint roller", "shower head"]


def event(query_id, action, object_id, ordinal, **extra):
    return {"application": "shop", "action_name": action, "query_id": query_id, "client_id": "c1",
            "session_id": "s1", "timestamp": "2025-02-01T10:00:00Z", "message_type": "INFO",
            "event_attributes": {"object": {"object_id": object_id, "object_id_field": "product_id"},
                                 "position": {"ordinal": ordinal}}, **extra}


def test_real_ubi_events_come_back_joined_to_their_queries_and_bad_ones_counted(client, ubi_indexes):
    fill_index(client, ubi_indexes["queries"], "ubi-queries-index.json", [
        {"query_id": "q1", "user_query": "white paint", "timestamp": "2025-02-01T09:59:59Z", "client_id": "c1"},
        {"query_id": "q2", "user_query": "drill bits", "timestamp": "2025-02-01T09:59:59Z"},
        {"query_id": "q3", "timestamp": "2025-02-01T09:59:59Z"}])
    docs = [event("q1", "impression", "p9", 0), event("q1", "click", "p9", 0), event("q2", "impression", "p6", 0),
            event("q1", "impression", "p10", 1, timestamp="2025-02-01T10:00:01Z"),
            event("q2", "click", "p7", "1"),          # the mapping coerces "1"; the reader reports the string
            event("q-gone", "click", "p1", 0),        # no ubi_queries doc
            {"action_name": "click", "timestamp": "2025-02-01T10:00:02Z"}]  # no query_id
    fill_index(client, ubi_indexes["events"], "ubi-events-index.json", docs)
    lines = list(iter_ubi_events(client, ubi_indexes["events"], batch_size=2))
    assert len(lines) == len(docs)  # nothing lost, paged over several pages
    assert lines[0].event == UbiEvent("impression", "q1", "p9", "product_id", 0, "c1", "2025-02-01T10:00:00Z", "shop")
    assert ubi_query_texts(client, ubi_indexes["queries"]) == {"q1": "white paint", "q2": "drill bits"}
    read = read_joined_events(client, EventSource(events_index=ubi_indexes["events"],
                                                  queries_index=ubi_indexes["queries"]), max_malformed=0.5)
    assert sorted((j.query, j.event.action_name, j.event.object_id) for j in read.events) == [
        ("drill bits", "impression", "p6"), ("white paint", "click", "p9"), ("white paint", "impression", "p10"),
        ("white paint", "impression", "p9")]
    assert (read.report.total, read.report.malformed) == (7, 3)
    assert sorted(s.split(": ", 1)[1] for s in read.report.samples) == [
        "event_attributes.position.ordinal '1' is not an integer >= 0 (query_id q2)", "missing query_id (click event)",
        "query_id q-gone has no ubi_queries doc (click event)"]
    assert (read.query_report.total, read.query_report.malformed) == (3, 1)
    source = EventSource(events_index=ubi_indexes["events"], queries_index=ubi_indexes["queries"])
    with pytest.raises(DataError, match=r"3 of 7 UBI events are malformed \(42.9% > 40.0%\); first: ubi-events-test"):
        read_joined_events(client, source, max_malformed=0.4)
    with pytest.raises(DataError, match=r"1 of 3 UBI query docs are malformed .*:3: missing user_query \(query_id q3"):
        read_joined_events(client, source, max_malformed=0.1)


def test_a_missing_events_index_fails_before_reading_with_the_fix(client):
    name = f"ubi-events-missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ClusterError, match=f"UBI index '{name}' does not exist — .*simulate-events.*--events FILE"):
        iter_ubi_events(client, name)


def small_dataset() -> Dataset:
    """Train and held-out queries, each with a few judged products of the test index."""
    assert {split_of(q, FRACTIONS, SALT) for q in TRAIN_QUERIES} == {"train"}
    assert "train" not in {split_of(q, FRACTIONS, SALT) for q in HELD_OUT_QUERIES}
    products = {f"p{i}": {"title": t} for i, t in enumerate(PRODUCTS)}
    judgments = [Judgment(q, f"p{(7 * n + k) % len(PRODUCTS)}", "x", k / 2)
                 for n, q in enumerate(TRAIN_QUERIES + HELD_OUT_QUERIES) for k in range(3)]
    judgments += [Judgment("white paint", "p9", "3", 1.0), Judgment("white paint", "p14", "1", 0.0)]
    return Dataset("small", products, judgments)


def test_simulated_sessions_are_ubi_docs_for_training_queries_only(client, products_index, ubi_indexes, tmp_path):
    model = ClickModel(eta=1.0, unjudged_attractiveness=0.2)
    summary = simulate_events(client, products_index, ("title",), small_dataset(), FRACTIONS, SALT, model,
                              SimulationPlan(sessions=60, max_queries=None, top_k=5, seed=3),
                              ubi_indexes["events"], ubi_indexes["queries"], tmp_path / "sim.json")
    assert json.loads((tmp_path / "sim.json").read_text()) == summary
    assert summary["simulated"] is True and summary["seed"] == 3
    assert summary["click_model"]["eta"] == 1.0 and summary["click_model"]["unjudged_attractiveness"] == 0.2
    queries = [h["_source"] for h in client.search(index=ubi_indexes["queries"], size=1000)["hits"]["hits"]]
    events = [h["_source"] for h in client.search(index=ubi_indexes["events"], size=10000)["hits"]["hits"]]
    assert len(queries) == 60 and len(events) == summary["events"] > 60
    # UBI schema: every query doc and event has the fields UBI and SRW read, and every event names its search
    query_ids = {q["query_id"] for q in queries}
    assert all({"query_id", "user_query", "client_id", "timestamp", "query_response_hit_ids"} <= set(q)
               for q in queries)
    assert all(e["query_id"] in query_ids and e["action_name"] in ("impression", "click")
               and e["application"] == SIMULATED_APPLICATION
               and e["event_attributes"]["object"]["object_id_field"] == "product_id"
               and isinstance(e["event_attributes"]["position"]["ordinal"], int) for e in events)
    mapped = client.indices.get_mapping(index=ubi_indexes["events"])[ubi_indexes["events"]]["mappings"]
    assert mapped["properties"]["event_attributes"]["properties"]["position"]["properties"]["ordinal"]["type"] == \
        "integer"
    # no leakage: every simulated search is a training query, and so is every event's
    assert {split_of(q["user_query"], FRACTIONS, SALT) for q in queries} == {"train"}
    assert {q["user_query"] for q in queries} <= set(TRAIN_QUERIES)
    read = read_joined_events(client, EventSource(events_index=ubi_indexes["events"],
                                                  queries_index=ubi_indexes["queries"]), max_malformed=0.0)
    assert read.report.malformed == 0 and len(read.events) == len(events)
    result = implicit_judgments(read.events, FRACTIONS, SALT, max_rank=5)
    assert result.judgments and result.excluded_eval_events == 0
    assert {j.query for j in result.judgments} <= set(TRAIN_QUERIES)
    assert sum(j.clicks for j in result.judgments) == summary["clicks"]
    # the same seed again rewrites the same docs: no duplicated events to inflate clicks
    simulate_events(client, products_index, ("title",), small_dataset(), FRACTIONS, SALT, model,
                    SimulationPlan(sessions=60, max_queries=None, top_k=5, seed=3),
                    ubi_indexes["events"], ubi_indexes["queries"], tmp_path / "sim.json")
    assert client.count(index=ubi_indexes["events"])["count"] == summary["events"]
    assert client.count(index=ubi_indexes["queries"])["count"] == 60


def write_csv(path, header, rows):
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def test_the_cli_simulates_then_exports_simulated_judgments_without_held_out_queries(
        opensearch, client, products_index, ubi_indexes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dataset = small_dataset()
    write_csv(tmp_path / "catalog.csv", ["id", "title"], [[p, f["title"]] for p, f in dataset.products.items()])
    write_csv(tmp_path / "judgments.csv", ["query", "product_id", "grade"],
              [[j.query, j.product_id, j.soft_label] for j in dataset.judgments])
    (tmp_path / "reranker.yaml").write_text(json.dumps({
        "data": {"kind": "generic", "path": "judgments.csv", "catalog": "catalog.csv"},
        "clicks": {"events_index": ubi_indexes["events"], "queries_index": ubi_indexes["queries"], "sessions": 40,
                   "max_queries": None, "top_k": 5, "seed": 1}}), encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(cli, ["--url", opensearch.url, "simulate-events", "--index", products_index])
    assert result.exit_code == 0, result.output
    assert "SIMULATED: 40 sessions" in result.output
    assert json.loads((tmp_path / "runs/clicks/simulation.json").read_text())["seed"] == 1
    result = runner.invoke(cli, ["--url", opensearch.url, "implicit-judgments", "--name", "hd"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("SIMULATED (")
    body = json.loads((tmp_path / "runs/clicks/judgments.json").read_text())
    sidecar = json.loads((tmp_path / "runs/clicks/judgments.sidecar.json").read_text())
    assert body["name"] == "simulated-hd" and body["type"] == "IMPORT_JUDGMENT"
    assert {r["query"] for r in body["judgmentRatings"]} <= set(TRAIN_QUERIES)
    assert sidecar["simulated"] is True and sidecar["simulation"]["seed"] == 1
    # bad events file: one line naming it and the fix, non-zero exit, the earlier list untouched
    before = (tmp_path / "runs/clicks/judgments.json").read_bytes()
    (tmp_path / "bad.jsonl").write_text('{"action_name": "click"}\nnot json\n', encoding="utf-8")
    result = runner.invoke(cli, ["--url", opensearch.url, "implicit-judgments", "--events", "bad.jsonl"])
    assert result.exit_code != 0
    assert "2 of 2 UBI events are malformed" in result.output and "bad.jsonl:1" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert (tmp_path / "runs/clicks/judgments.json").read_bytes() == before


def test_a_refused_write_rolls_back_and_says_which_mapping_to_fix(client, products_index, ubi_indexes, tmp_path):
    # an events index whose query_id is numeric refuses every simulated event; the query docs went in first
    client.indices.create(index=ubi_indexes["events"], body={"mappings": {"properties": {"query_id": {
        "type": "integer"}}}})
    with pytest.raises(ClusterError, match=r"simulated UBI docs were refused \(first: .*— check the UBI index "
                                           r"mappings"):
        simulate_events(client, products_index, ("title",), small_dataset(), FRACTIONS, SALT, ClickModel(),
                        SimulationPlan(sessions=10, max_queries=None, top_k=3, seed=0),
                        ubi_indexes["events"], ubi_indexes["queries"], tmp_path / "sim.json")
    client.indices.refresh(index=f"{ubi_indexes['events']},{ubi_indexes['queries']}")
    assert client.count(index=ubi_indexes["queries"])["count"] == 0  # rolled back
    assert client.count(index=ubi_indexes["events"])["count"] == 0
    assert not (tmp_path / "sim.json").exists()  # no sidecar for a simulation that is not in the index


def test_simulated_sessions_never_mix_into_an_index_of_real_behaviour(client, products_index, ubi_indexes, tmp_path):
    fill_index(client, ubi_indexes["queries"], "ubi-queries-index.json",
         [{"query_id": "real-1", "user_query": "white paint", "application": "shop", "timestamp": "2025-01-01"}])
    with pytest.raises(ClusterError, match=f"'{ubi_indexes['queries']}' holds 1 docs that are not simulated .* — "
                                           "pass another --events-index"):
        simulate_events(client, products_index, ("title",), small_dataset(), FRACTIONS, SALT, ClickModel(),
                        SimulationPlan(sessions=5, max_queries=None, top_k=3, seed=0),
                        ubi_indexes["events"], ubi_indexes["queries"], tmp_path / "sim.json")
    assert not client.indices.exists(index=ubi_indexes["events"])  # refused before anything was created
    assert client.count(index=ubi_indexes["queries"])["count"] == 1
