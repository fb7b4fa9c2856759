"""`pipeline list|delete`, `search --body FILE`, `models deploy` and `cluster status --url` against the real node."""
from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner

from reranker_plugin.cli import cli
from reranker_plugin.jobs.search import search
from reranker_plugin.mlcommons.pipeline import get_pipeline
from training.onnx_scorer import OnnxZipScorer

pytestmark = pytest.mark.integration

#: A search pipeline that needs no model: enough to test listing and deleting.
FILTER_PIPELINE = {"request_processors": [{"filter_query": {"query": {"match_all": {}}}}]}


def run_cli(opensearch, *args: str):
    return CliRunner().invoke(cli, ["--url", opensearch.url, *args], catch_exceptions=False)


@pytest.fixture
def plain_pipeline(client):
    """A model-free search pipeline; removed afterwards if a test left it."""
    name = f"test-plain-{uuid.uuid4().hex[:8]}"
    client.search_pipeline.put(id=name, body=FILTER_PIPELINE)
    yield name
    client.search_pipeline.delete(id=name, ignore=[404])


def _default_of(client, index: str) -> str | None:
    settings = client.indices.get_settings(index=index)[index]["settings"]
    return settings.get("index", {}).get("search", {}).get("default_pipeline")


def test_pipeline_list_shows_each_pipeline_and_the_indices_it_is_default_of(opensearch, client, products_index,
                                                                              plain_pipeline):
    client.indices.put_settings(index=products_index, body={"index.search.default_pipeline": plain_pipeline})
    listed = run_cli(opensearch, "pipeline", "list", "--format", "json")
    assert listed.exit_code == 0, listed.output
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows[plain_pipeline] == {"name": plain_pipeline, "model_id": None, "default_of": [products_index]}
    table = run_cli(opensearch, "pipeline", "list")
    assert table.exit_code == 0 and plain_pipeline in table.stdout


def test_pipeline_delete_refuses_an_index_default_unless_forced(opensearch, client, products_index, plain_pipeline):
    client.indices.put_settings(index=products_index, body={"index.search.default_pipeline": plain_pipeline})
    refused = run_cli(opensearch, "pipeline", "delete", plain_pipeline)
    assert refused.exit_code == 1 and refused.stderr.count("\n") == 1
    assert f"default pipeline of {products_index}" in refused.stderr and "--force" in refused.stderr
    assert get_pipeline(client, plain_pipeline) is not None and _default_of(client, products_index) == plain_pipeline

    forced = run_cli(opensearch, "pipeline", "delete", plain_pipeline, "--force")
    assert forced.exit_code == 0, forced.output
    assert get_pipeline(client, plain_pipeline) is None and _default_of(client, products_index) is None
    plain = client.search(index=products_index, body={"query": {"match": {"title": "drill"}}})
    assert plain["hits"]["hits"]  # the index still answers plain searches


def test_pipeline_delete_of_an_unused_pipeline_and_of_a_missing_one(opensearch, client, plain_pipeline):
    assert run_cli(opensearch, "pipeline", "delete", plain_pipeline).exit_code == 0
    assert get_pipeline(client, plain_pipeline) is None
    missing = run_cli(opensearch, "pipeline", "delete", plain_pipeline)
    assert missing.exit_code == 1 and "does not exist" in missing.stderr and missing.stderr.count("\n") == 1


def test_search_body_is_sent_and_reranked_against_the_query_text(opensearch, client, products_index,
                                                                  unique_names, tiny_zip, tmp_path):
    deployed = run_cli(opensearch, "models", "deploy", str(tiny_zip), "--name", unique_names["model"], "--index",
                       products_index, "--field", "title", "--pipeline", unique_names["pipeline"])
    assert deployed.exit_code == 0, deployed.output
    body = {"query": {"match": {"title": "paint"}}, "size": 4}
    path = tmp_path / "body.json"
    path.write_text(json.dumps(body))

    with_body = CliRunner().invoke(cli, ["--url", opensearch.url, "search", "--body", str(path), "--index",
                                         products_index, "--field", "title", "--pipeline", unique_names["pipeline"]])
    assert with_body.exit_code == 0, with_body.output
    shown = " ".join(with_body.stdout.split())
    assert "'paint' on" in shown and "paint" in shown and "drill" not in shown.lower()  # the body's query ran

    plain = search(client, products_index, "paint", ("title",), 10, None, body)
    reranked = search(client, products_index, "paint", ("title",), 10, unique_names["pipeline"], body)
    assert 0 < len(plain) <= 4 and all("paint" in h.text.lower() for h in plain)
    assert {h.doc_id for h in plain} == {h.doc_id for h in reranked}
    local = dict(zip((h.doc_id for h in plain), OnnxZipScorer(tiny_zip).score("paint", [h.text for h in plain])))
    for hit in reranked:  # scored against the query text taken from the body
        assert hit.score == pytest.approx(local[hit.doc_id], abs=1e-4)

    hoses = tmp_path / "hoses.json"  # the body decides the hits; QUERY is only the text the reranker reads
    hoses.write_text(json.dumps({"query": {"match": {"title": "hose"}}}))
    other = run_cli(opensearch, "search", "white paint", "--body", str(hoses), "--index", products_index,
                    "--field", "title", "--pipeline", unique_names["pipeline"])
    shown = " ".join(other.stdout.split())
    assert other.exit_code == 0 and "'white paint' on" in shown and "hose" in shown
    assert "Behr" not in shown and "Glidden" not in shown  # BM25 on "white paint" would have found these


def test_cluster_status_with_url_reports_that_cluster(opensearch):
    result = run_cli(opensearch, "cluster", "status")
    assert result.exit_code == 0, result.output
    assert f"url: {opensearch.url}" in result.stdout and "health:" in result.stdout
    assert "ml" in result.stdout and "pid" not in result.stdout
