"""The behaviour teacher from real UBI indexes: clicks of held-out queries reach nothing it trains or reads."""
from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from reranker_plugin.cli import cli
from training.datasets import split_of

from .conftest import PRODUCTS, fill_index, save_tiny_bert

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]
TRAIN = ["white paint", "drill bits", "pipe wrench", "ceiling fan", "toilet flapper"]
HELD_OUT = ["cordless drill", "garden hose", "light bulb", "paint roller", "shower head"]


def test_behaviour_teacher_from_the_index_reads_training_clicks_only(client, ubi_indexes, tmp_path, minilm_tokenizer):
    assert {split_of(q) for q in TRAIN} == {"train"} and "train" not in {split_of(q) for q in HELD_OUT}
    save_tiny_bert(tmp_path / "tiny-bert", minilm_tokenizer)
    queries = TRAIN + HELD_OUT
    # query n clicked product n (shown at rank 0) and skipped product n + 10 (rank 1)
    fill_index(client, ubi_indexes["queries"], "ubi-queries-index.json", [
        {"query_id": f"q{n}", "user_query": q, "timestamp": "2025-02-01T09:59:59Z"} for n, q in enumerate(queries)])
    events = []
    for n in range(len(queries)):
        for action, pid, rank in (("impression", n, 0), ("click", n, 0), ("impression", n + 10, 1)):
            events.append({"application": "shop", "action_name": action, "query_id": f"q{n}", "client_id": "c1",
                           "timestamp": "2025-02-01T10:00:00Z", "event_attributes": {
                               "object": {"object_id": f"p{pid}", "object_id_field": "product_id"},
                               "position": {"ordinal": rank}}})
    fill_index(client, ubi_indexes["events"], "ubi-events-index.json", events)
    (tmp_path / "catalog.jsonl").write_text("".join(json.dumps({"id": f"p{i}", "title": t}) + "\n"
                                                    for i, t in enumerate(PRODUCTS)))
    (tmp_path / "judgments.csv").write_text("query,product_id,grade\n" + "".join(
        f"{q},p{(n + k) % 30},{g}\n" for n, q in enumerate(queries) for k, g in ((0, 1.0), (10, 0.0), (20, 0.5))))
    config = {"data": {"kind": "generic", "path": str(tmp_path / "judgments.csv"),
                       "catalog": str(tmp_path / "catalog.jsonl")},
              "template": {"fields": ["title"], "max_tokens": 48},
              "teacher": {"kind": "ensemble", "model": str(tmp_path / "tiny-bert"), "max_steps": 2,
                          "queries_per_batch": 2, "output": str(tmp_path / "teacher"), "behaviour": "neighbours",
                          "implicit_judgments": str(tmp_path / "judgments.json")},
              "clicks": {"events_index": ubi_indexes["events"], "queries_index": ubi_indexes["queries"],
                         "output": str(tmp_path / "judgments.json")}}
    (tmp_path / "reranker.yaml").write_text(yaml.safe_dump(config))

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--config", str(tmp_path / "reranker.yaml"), *args])
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    assert f"{3 * len(HELD_OUT)} events of {len(HELD_OUT)} held-out queries excluded" in run("implicit-judgments")
    out = run("train-teacher")
    assert f"{len(TRAIN)} training queries with clicks, 0 held-out queries dropped" in out
    context = json.loads((tmp_path / "teacher/behaviour.json").read_text())
    assert set(context["engaged"]) == set(TRAIN) == set(context["implicit"])
    clicked = {t for titles in context["engaged"].values() for t in titles}
    assert clicked == {PRODUCTS[n] for n in range(len(TRAIN))}  # no held-out query's click is read

    from training.ensemble import load_teacher

    behaviour = load_teacher(tmp_path / "teacher").scorers[1]
    pairs = [(q, PRODUCTS[0]) for q in queries]
    fed = behaviour.inputs(pairs)
    assert fed[len(TRAIN):] == pairs[len(TRAIN):]  # validation / test queries: the plain input
    assert all(f" | users chose: {PRODUCTS[n]}" in q for n, (q, _) in enumerate(fed[:len(TRAIN)]))
