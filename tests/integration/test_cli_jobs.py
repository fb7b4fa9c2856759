"""The data-and-cluster commands through the real CLI against the real node: index-catalog and evaluate."""
from __future__ import annotations

import csv
import json
import math
import uuid

import pytest
from click.testing import CliRunner

from reranker_core.config import DeployConfig
from reranker_core.model_zip import validate_zip
from reranker_plugin.cli import cli
from reranker_plugin.jobs.evaluate import evaluate_through_cluster
from reranker_plugin.mlcommons.client import MLCommons
from reranker_plugin.mlcommons.deploy import deploy
from reranker_plugin.node.assets import load_json

from ..conftest import tiny_cross_encoder
from .conftest import PRODUCTS

pytestmark = pytest.mark.integration


def run_cli(opensearch, *args: str):
    return CliRunner().invoke(cli, ["--url", opensearch.url, *args], catch_exceptions=False)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def index_name(client):
    name = f"cli-jobs-test-{uuid.uuid4().hex[:8]}"
    yield name
    client.indices.delete(index=name, ignore_unavailable=True)


# ------------------------------------------------------------------ index-catalog
def test_index_catalog_twice_updates_in_place(opensearch, client, index_name, tmp_path):
    rows = [{"id": f"p{i}", "title": title} for i, title in enumerate(PRODUCTS[:8])]
    catalog = write_jsonl(tmp_path / "catalog.jsonl", rows)

    first = run_cli(opensearch, "index-catalog", str(catalog), "--index", index_name)
    assert first.exit_code == 0, first.output
    assert f"8 products indexed into '{index_name}'; 0 failed" in first.output
    assert client.count(index=index_name)["count"] == 8

    rows[2]["title"] = "Ryobi ONE+ 18V brushless drill kit"
    write_jsonl(catalog, rows)
    second = run_cli(opensearch, "index-catalog", str(catalog), "--index", index_name)
    assert second.exit_code == 0, second.output
    assert client.count(index=index_name)["count"] == 8  # upserted by id, not duplicated
    p2 = client.get(index=index_name, id="p2")["_source"]
    assert (p2["title"], p2["product_id"], p2["product_text"]) == (rows[2]["title"], "p2", rows[2]["title"])


def test_index_catalog_names_rejected_rows_and_indexes_the_rest(opensearch, client, index_name, tmp_path):
    body = load_json("products-index.json")
    body["mappings"]["properties"]["price"] = {"type": "float"}
    client.indices.create(index=index_name, body=body)
    rows = [{"id": "p0", "title": "DEWALT cordless drill", "price": "99.5"},
            {"id": "bad-price-7", "title": "paint roller kit", "price": "cheap"},
            {"id": "p2", "title": "garden hose 50 ft", "price": "24"},
            {"id": "p3", "title": "pipe wrench 14 in", "price": "18.75"}]
    catalog = write_jsonl(tmp_path / "catalog.jsonl", rows)

    result = run_cli(opensearch, "index-catalog", str(catalog), "--index", index_name)
    assert result.exit_code == 1, result.output
    assert "3 products indexed" in result.output and "1 failed" in result.output
    assert "product bad-price-7:" in result.output  # the row, by id, with the cluster's reason
    assert "(first: bad-price-7)" in result.output
    assert client.count(index=index_name)["count"] == 3
    found = client.mget(index=index_name, body={"ids": ["p0", "bad-price-7", "p2", "p3"]})["docs"]
    assert [d["found"] for d in found] == [True, False, True, True]


# ------------------------------------------------------------------ evaluate
# Judged lists (product ids of PRODUCTS); grades are soft labels in [0, 1]. Only the test split is evaluated.
TEST_LISTS = {
    "garden hose": {"p15": "1.0", "p16": "0.6", "p17": "0.3", "p10": "0.0", "p0": "0.1"},
    "paint roller": {"p11": "1.0", "p14": "0.5", "p9": "0.3", "p12": "0.2", "p13": "0.1"},
    "led light bulb": {"p18": "1.0", "p19": "0.4", "p20": "0.2", "p5": "0.0"},
    "shower head": {"p26": "1.0", "p25": "0.3", "p24": "0.1", "p4": "0.0"},
    "hose nozzle": {"p16": "1.0", "p15": "0.5", "p17": "0.2"},
}
OTHER_LISTS = {  # never evaluated: training and validation queries
    "white paint": {"p9": "1.0", "p10": "0.5"},
    "pipe wrench": {"p23": "1.0", "p21": "0.2"},
    "cordless drill": {"p0": "1.0", "p1": "0.8"},
}


@pytest.fixture
def two_pipelines(client, minilm_tokenizer, tmp_path):
    """Two different tiny cross-encoders (seeds 0 and 1) behind two rerank pipelines; removed afterwards."""
    from training.export import export_cross_encoder

    suffix = uuid.uuid4().hex[:8]
    names = [(f"test-model-{suffix}-{seed}", f"test-rerank-{suffix}-{seed}") for seed in (0, 1)]
    zips = []
    for seed in (0, 1):
        path = tmp_path / f"tiny-{seed}.zip"
        export_cross_encoder(tiny_cross_encoder(minilm_tokenizer, seed), minilm_tokenizer, path,
                             [("garden hose", "garden hose 50 ft heavy duty"), ("paint", "paint roller kit 9 in")],
                             max_length=64)
        zips.append(path)
    try:
        yield names, zips
    finally:
        ml = MLCommons(client)
        ours = {model for model, _ in names}
        for model in ml.list_models():
            if model.name in ours:
                ml.delete(model.model_id)
        for _, pipeline in names:
            client.search_pipeline.delete(id=pipeline, ignore=[404])


def test_evaluate_compares_bm25_and_two_pipelines(opensearch, client, index_name, two_pipelines, tmp_path):
    catalog = write_jsonl(tmp_path / "catalog.jsonl", [{"id": f"p{i}", "title": t} for i, t in enumerate(PRODUCTS)])
    judgments = tmp_path / "judgments.csv"
    with judgments.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["query", "product_id", "grade"])
        for lists in (TEST_LISTS, OTHER_LISTS):
            for query, grades in lists.items():
                writer.writerows([query, pid, grade] for pid, grade in grades.items())
    config = tmp_path / "reranker.yaml"
    config.write_text(f"data:\n  kind: generic\n  catalog: {catalog}\ntemplate:\n  fields: [title]\n",
                      encoding="utf-8")

    indexed = run_cli(opensearch, "--config", str(config), "index-catalog", "--data", str(judgments),
                      "--index", index_name)  # the dataset's own catalog, from data.catalog
    assert indexed.exit_code == 0, indexed.output
    assert client.count(index=index_name)["count"] == len(PRODUCTS)

    names, zips = two_pipelines
    pipe_a, pipe_b = (pipeline for _, pipeline in names)
    for (model, pipeline), zip_path in zip(names, zips):
        deploy(client, validate_zip(zip_path),
               DeployConfig(model_name=model, index=index_name, pipeline=pipeline, document_fields=("title",)))

    out = tmp_path / "results" / "eval.json"
    result = run_cli(opensearch, "--config", str(config), "evaluate", "--kind", "generic", "--data", str(judgments),
                     "--index", index_name, "--pipeline", pipe_a, "--pipeline", pipe_b, "--json", str(out))
    assert result.exit_code == 0, result.output
    assert f"{len(TEST_LISTS)} judged lists" in result.output

    results = json.loads(out.read_text())
    systems = results["systems"]
    assert set(systems) == {"random", "bm25", pipe_a, pipe_b} and results["queries"] == len(TEST_LISTS)
    assert set(results["differences"]) == {f"{pipe_a} - bm25", f"{pipe_b} - bm25", f"{pipe_a} - {pipe_b}"}
    assert systems[pipe_a]["ndcg@10"] != systems[pipe_b]["ndcg@10"]
    for metrics in systems.values():
        assert all(v is None or 0.0 <= v <= 1.0 for triple in metrics.values() for v in triple)
        assert all(t[0] is None or t[1] <= t[0] <= t[2] for t in metrics.values())

    labels = {q: {pid: float(g) for pid, g in grades.items()} for q, grades in TEST_LISTS.items()}
    direct = evaluate_through_cluster(client, index_name, labels, ("title",), [None, pipe_a, pipe_b])
    for name, metrics in direct.items():  # the point values are the plain metrics of the same searches
        for key in ("ndcg@5", "ndcg@10", "mrr", "pairwise_accuracy"):
            value = systems[name][key][0]
            assert (value is None and math.isnan(metrics[key])) or value == pytest.approx(metrics[key], abs=1e-6)

    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert sorted(p.name for p in out.parent.iterdir()) == ["eval.json", "eval.png"]
