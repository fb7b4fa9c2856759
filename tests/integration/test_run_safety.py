"""`reranker run` on a cluster that is not the local node: plan first, --yes to go on; never into someone's index.

The real 9200 node is made to look non-local without touching it: the config
puts the local node on another port (so `run` does not start one) and its home
in an empty folder (so no cluster UUID is recorded for it). A refused run must
have changed nothing: the index, the pipelines and the models it would touch
are checked before and after.
"""
from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator

import pytest
import yaml
from click.testing import CliRunner

from reranker_core.config import ClusterConfig, Config, DeployConfig, LocalNodeConfig
from reranker_core.errors import UnconfirmedChange
from reranker_plugin.cli import cli
from reranker_plugin.jobs.catalog import CREATED_BY, ensure_products_index, index_owner
from reranker_plugin.jobs.run_plan import confirm_run, plan_run
from reranker_plugin.mlcommons.client import MLCommons
from reranker_plugin.mlcommons.pipeline import get_pipeline, render_pipeline
from reranker_plugin.node.identity import record_cluster_uuid
from reranker_plugin.node.assets import load_json
from reranker_plugin.node.local import LocalNode

from .conftest import PRODUCTS

pytestmark = pytest.mark.integration
FOREIGN_MAPPING = {"mappings": {"properties": {"title": {"type": "text"}}}}
NOT_A_MODEL = "model-that-does-not-exist"


@pytest.fixture
def names(client) -> Iterator[dict[str, str]]:
    """Unique index, pipeline and model names; whatever a test left under them is removed afterwards."""
    suffix = uuid.uuid4().hex[:8]
    found = {"index": f"safety-{suffix}", "pipeline": f"safety-{suffix}", "model": f"safety-{suffix}"}
    yield found
    client.indices.delete(index=found["index"], ignore_unavailable=True)
    for variant in ("", "-fp32", "-int8", "-human"):
        client.search_pipeline.delete(id=found["pipeline"] + variant, ignore=[404])


@pytest.fixture
def project(tmp_path, monkeypatch, names) -> dict:
    """A project folder whose config makes the test node look like someone else's cluster."""
    (tmp_path / "catalog.jsonl").write_text("".join(json.dumps({"id": f"p{i}", "title": t}) + "\n"
                                                    for i, t in enumerate(PRODUCTS)), encoding="utf-8")
    with (tmp_path / "judgments.csv").open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["query", "product_id", "grade"], ["cordless drill", "p0", 1.0]])
    config = {"data": {"kind": "generic", "path": "judgments.csv", "catalog": "catalog.jsonl"},
              "local_node": {"home": str(tmp_path / "no-local-node"), "port": 9300},
              "deploy": {"index": names["index"], "pipeline": names["pipeline"], "model_name": names["model"],
                         "default_pipeline": True}}
    (tmp_path / "reranker.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return config


def run(opensearch, *args: str):
    return CliRunner().invoke(cli, ["--url", opensearch.url, "run", *args], catch_exceptions=False)


def state(client, names: dict[str, str]) -> dict:
    """What `run` would change: the index (exists, documents, mapping, settings), its pipelines, its models."""
    index = names["index"]
    exists = bool(client.indices.exists(index=index))
    return {
        "index": exists and {"count": client.count(index=index)["count"],
                             "mapping": client.indices.get_mapping(index=index)[index],
                             "default_pipeline": client.indices.get_settings(index=index, flat_settings=True)
                             [index]["settings"].get("index.search.default_pipeline")},
        "pipelines": {v: get_pipeline(client, names["pipeline"] + v) for v in ("", "-fp32", "-int8", "-human")},
        "models": sorted(m.model_id for m in MLCommons(client).list_models() if m.name.startswith(names["model"])),
    }


def last_error(result) -> str:
    return result.stderr.strip().splitlines()[-1]


def test_without_yes_the_plan_is_printed_and_nothing_changes(opensearch, client, project, names):
    client.search_pipeline.put(id=names["pipeline"], body=render_pipeline(NOT_A_MODEL, ("title",)))
    before = state(client, names)
    result = run(opensearch)
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert f"{opensearch.url} is not the local node" in out
    assert f"create index {names['index']!r}" in out
    assert f"register and deploy model {names['model']!r}" in out and f"{names['model']}-human" in out
    assert f"replace search pipeline {names['pipeline']!r} (now model {NOT_A_MODEL})" in out
    assert f"undeploy model {NOT_A_MODEL} once" in out
    assert f"create search pipeline '{names['pipeline']}-human'" in out
    assert f"(only one of '{names['model']}-fp32' / '{names['model']}-int8', picked after export)" in out
    assert f"make {names['pipeline']!r} the default search pipeline of {names['index']!r}" in out
    assert last_error(result) == (f"error: {opensearch.url} is not the local node: nothing was changed — "
                                  "read the plan above, then rerun with --yes")
    assert state(client, names) == before


def test_an_index_reranker_did_not_create_is_refused_even_with_yes(opensearch, client, project, names):
    client.indices.create(index=names["index"], body=FOREIGN_MAPPING)
    client.index(index=names["index"], id="theirs", body={"title": "someone else's document"}, refresh=True)
    before = state(client, names)
    result = run(opensearch, "--yes")
    assert result.exit_code == 1, result.output
    assert f"write the catalog into index {names['index']!r}, which reranker did not create" in result.stdout
    line = last_error(result)
    assert f"index {names['index']!r}" in line and "was not created by reranker" in line and "--overwrite" in line
    assert state(client, names) == before
    assert before["index"]["count"] == 1 and before["index"]["default_pipeline"] is None


def test_overwrite_without_yes_still_changes_nothing(opensearch, client, project, names):
    client.indices.create(index=names["index"], body=FOREIGN_MAPPING)
    before = state(client, names)
    result = run(opensearch, "--overwrite")
    assert result.exit_code == 1 and "rerun with --yes" in last_error(result)
    assert state(client, names) == before


# ------------------------------------------------ the gate itself, both ways
def config_for(opensearch, names, home, local: bool, client) -> Config:
    """The test node as seen by a config where it is (``local``) or is not the recorded local node."""
    config = Config(cluster=ClusterConfig(url=opensearch.url), local_node=LocalNodeConfig(home=str(home)),
                    deploy=DeployConfig(index=names["index"], pipeline=names["pipeline"], model_name=names["model"]))
    if local:
        record_cluster_uuid(LocalNode(config.local_node).layout.root, client.info()["cluster_uuid"])
    return config


def gate(client, config, yes: bool = False, overwrite: bool = False) -> list[str]:
    said: list[str] = []
    confirm_run(plan_run(client, config, {config.deploy.pipeline: config.deploy.model_name}), yes, overwrite,
                said.append)
    return said


def test_the_catalog_indexer_marks_its_index_and_yes_lets_the_plan_through(opensearch, client, names, tmp_path):
    assert ensure_products_index(client, names["index"])
    assert index_owner(client, names["index"]) == CREATED_BY
    config = config_for(opensearch, names, tmp_path, local=False, client=client)
    with pytest.raises(UnconfirmedChange, match="--yes"):
        gate(client, config)
    said = gate(client, config, yes=True)
    assert f"  - index the catalog into index {names['index']!r} (created by reranker; same ids are replaced)" in said


def test_on_the_local_node_no_plan_is_needed_but_a_foreign_index_is_still_refused(opensearch, client, names,
                                                                                   tmp_path):
    config = config_for(opensearch, names, tmp_path, local=True, client=client)
    assert gate(client, config) == []  # nothing to confirm: the index does not exist yet
    client.indices.create(index=names["index"], body=FOREIGN_MAPPING)
    with pytest.raises(UnconfirmedChange, match="was not created by reranker"):
        gate(client, config, yes=True)
    assert gate(client, config, overwrite=True) == []


def test_an_unmarked_catalog_index_from_an_older_reranker_is_ours_only_on_the_local_node(opensearch, client, names,
                                                                                         tmp_path):
    body = load_json("products-index.json")
    del body["mappings"]["_meta"]  # as created before indices were marked
    client.indices.create(index=names["index"], body=body)
    assert index_owner(client, names["index"]) == ""
    assert gate(client, config_for(opensearch, names, tmp_path / "local", local=True, client=client)) == []
    with pytest.raises(UnconfirmedChange, match="was not created by reranker"):
        gate(client, config_for(opensearch, names, tmp_path / "other", local=False, client=client), yes=True)
