"""Index a catalog into the real node: idempotent upserts, per-row failures by id, clear cluster errors."""
from __future__ import annotations

import uuid

import pytest

from reranker_core.errors import ClusterError
from reranker_core.template import RENDERED_FIELD, ProductTemplate
from reranker_plugin.jobs.catalog import index_catalog
from reranker_plugin.node.assets import load_json

pytestmark = pytest.mark.integration

TEMPLATE = ProductTemplate(fields=("title", "brand", "color"))


def catalog(title_of_p2: str = "Ryobi ONE+ 18V drill kit") -> list[tuple[str, dict[str, str]]]:
    return [
        ("p0", {"title": "DEWALT 20V MAX cordless drill", "brand": "DEWALT", "color": "yellow"}),
        ("p1", {"title": "Makita 18V LXT hammer drill", "brand": "Makita"}),
        ("p2", {"title": title_of_p2, "brand": "Ryobi", "color": "green", "bullets": "two batteries"}),
        ("p3", {"title": "Behr interior white paint 1 gal", "brand": "Behr", "category": "Paint"}),
        ("p4", {"title": "garden hose 50 ft", "product_class": "Hoses"}),
    ]


@pytest.fixture
def index_name(client):
    name = f"catalog-test-{uuid.uuid4().hex[:8]}"
    yield name
    client.indices.delete(index=name, ignore_unavailable=True)


def test_reindexing_updates_in_place_without_duplicates(client, index_name):
    calls: list[tuple[int, int]] = []
    first = index_catalog(client, index_name, catalog(), TEMPLATE, batch_size=2,
                          progress=lambda done, total: calls.append((done, total)))
    assert (first.indexed, first.failed, first.index) == (5, [], index_name)
    assert calls[-1] == (5, 5) and (2, 5) in calls
    assert client.count(index=index_name)["count"] == 5
    p0 = client.get(index=index_name, id="p0")["_source"]
    assert p0["product_id"] == "p0" and p0[RENDERED_FIELD] == "DEWALT 20V MAX cordless drill | DEWALT | yellow"
    mapping = client.indices.get_mapping(index=index_name)[index_name]["mappings"]["properties"]
    assert mapping[RENDERED_FIELD]["type"] == "text" and mapping["product_id"]["type"] == "keyword"

    generator_calls: list[tuple[int, int]] = []
    second = index_catalog(client, index_name, (row for row in catalog("Ryobi ONE+ 18V brushless drill kit")),
                           TEMPLATE, progress=lambda done, total: generator_calls.append((done, total)))
    assert (second.indexed, second.failed) == (5, [])
    assert generator_calls == [(5, 0)]  # a generator has no length: total unknown
    assert client.count(index=index_name)["count"] == 5
    p2 = client.get(index=index_name, id="p2")["_source"]
    assert p2["title"] == "Ryobi ONE+ 18V brushless drill kit"
    assert p2[RENDERED_FIELD] == "Ryobi ONE+ 18V brushless drill kit | Ryobi | green"
    hits = client.search(index=index_name, body={"query": {"match": {RENDERED_FIELD: "brushless"}}})["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["p2"]


def test_refused_rows_are_reported_by_id_and_the_rest_is_indexed(client, index_name):
    body = load_json("products-index.json")
    body["mappings"]["properties"]["price"] = {"type": "float"}
    client.indices.create(index=index_name, body=body)
    rows = catalog()
    rows[1][1]["price"] = "nineteen dollars"  # mapping conflict: not a number
    rows[3][1]["price"] = "12.5"
    rows.append(("", {"title": "a product without id"}))

    report = index_catalog(client, index_name, rows, TEMPLATE)
    assert report.indexed == 5 - 1
    failed = dict(report.failed)
    assert set(failed) == {"p1", ""}
    assert "price" in failed["p1"] and "mapper_parsing_exception" in failed["p1"]
    assert failed[""] == "empty product id"
    assert client.count(index=index_name)["count"] == 4
    assert not client.exists(index=index_name, id="p1")


def test_bad_index_name_is_a_cluster_error(client):
    with pytest.raises(ClusterError, match=r"cannot create index 'Bad Index'.*lowercase"):
        index_catalog(client, "Bad Index", catalog(), TEMPLATE)


def test_create_index_block_is_named_as_a_block_not_a_missing_permission(client, index_name):
    """What a node past its high disk watermark answers (HTTP 403): no role can grant it, so say what can."""
    client.cluster.put_settings(body={"transient": {"cluster.blocks.create_index": True}})
    try:
        with pytest.raises(ClusterError) as caught:
            index_catalog(client, index_name, catalog(), TEMPLATE)
    finally:
        client.cluster.put_settings(body={"transient": {"cluster.blocks.create_index": None}})
    line = str(caught.value)
    assert f"PUT /{index_name}" in line and "create-index blocked" in line, line
    assert "disk" in caught.value.fix and "role" not in caught.value.fix
    assert not client.indices.exists(index=index_name)
    assert index_catalog(client, index_name, catalog(), TEMPLATE).indexed == 5  # block lifted: it works
