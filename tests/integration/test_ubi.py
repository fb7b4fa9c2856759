"""Read User Behavior Insights query docs from a real index: order, paging, malformed docs, missing index."""
from __future__ import annotations

import uuid

import pytest

from reranker_core.errors import ClusterError
from reranker_plugin.jobs.ubi import iter_ubi_queries
from reranker_plugin.node.assets import load_json
from training.querylog import LogLine

pytestmark = pytest.mark.integration

# Written out of time order on purpose: the reader must return them oldest first.
DOCS = [
    {"query_id": "q3", "user_query": "white paint", "timestamp": "2025-01-03T10:00:00Z", "client_id": "c1",
     "application": "shop", "query_response_id": "r3", "query_response_hit_ids": ["p9", "p10"]},
    {"query_id": "q1", "user_query": "  cordless drill ", "timestamp": "2025-01-01T10:00:00Z", "client_id": "c1",
     "application": "shop", "query_response_id": "r1"},
    {"query_id": "q-missing", "timestamp": "2025-01-02T10:00:00Z", "client_id": "c2", "application": "shop"},
    {"query_id": "q2", "user_query": "garden hose", "timestamp": "2025-01-01T12:00:00Z", "client_id": "c2"},
    {"query_id": "q-blank", "user_query": "   ", "timestamp": "2025-01-04T10:00:00Z"},
    {"query_id": "q5", "user_query": "pipe wrench", "timestamp": "2025-01-05T10:00:00Z"},
    {"query_id": "q-no-time", "user_query": "toilet flapper"},
]


@pytest.fixture
def ubi_index(client):
    name = f"ubi-queries-test-{uuid.uuid4().hex[:8]}"
    client.indices.create(index=name, body=load_json("ubi-queries-index.json"))
    lines = []
    for doc in DOCS:
        lines += [{"index": {"_index": name}}, doc]
    assert not client.bulk(body=lines, refresh=True)["errors"]
    yield name
    client.indices.delete(index=name, ignore_unavailable=True)


def test_ubi_queries_come_back_oldest_first_with_malformed_docs_as_errors(client, ubi_index):
    lines = list(iter_ubi_queries(client, ubi_index, batch_size=2))  # several pages
    assert [line.line_no for line in lines] == list(range(1, len(DOCS) + 1))
    assert all(isinstance(line, LogLine) for line in lines)
    assert [line.query for line in lines] == ["cordless drill", "garden hose", None, "white paint", None,
                                              "pipe wrench", "toilet flapper"]
    assert lines[2].error == "missing user_query (query_id q-missing)"
    assert lines[4].error == "empty user_query (query_id q-blank)"
    assert all(line.error is None for line in lines if line.query is not None)
    assert list(iter_ubi_queries(client, ubi_index, batch_size=1000)) == lines  # stable across reads and page sizes


def test_missing_ubi_index_fails_before_iteration_with_the_fix(client):
    name = f"ubi-queries-missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ClusterError, match=f"UBI index '{name}' does not exist.*User Behavior Insights.*log file"):
        iter_ubi_queries(client, name)
