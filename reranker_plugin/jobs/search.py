"""Search an index with and without the rerank pipeline, for side-by-side comparison."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError, TransportError

from reranker_core.errors import ClusterError


@dataclass(frozen=True)
class ScoredHit:
    """One hit as every scorer reports it."""

    doc_id: str
    score: float
    text: str


def bm25_query(query: str, fields: tuple[str, ...], size: int) -> dict[str, Any]:
    """The first-stage query: BM25 ``multi_match`` over the product text fields."""
    return {"size": size, "query": {"multi_match": {"query": query, "fields": list(fields)}}}


def send(client: OpenSearch, index: str, body: dict[str, Any], query: str, pipeline: str | None) -> dict[str, Any]:
    """Run ``body`` through ``pipeline`` with the query text the reranker needs, or, for ``None``,
    through no pipeline at all (``_none`` bypasses an index's default pipeline)."""
    if pipeline:
        body = {**body, "ext": {"rerank": {"query_context": {"query_text": query}}}}
    return client.search(index=index, body=body, params={"search_pipeline": pipeline or "_none"})


def search(client: OpenSearch, index: str, query: str, fields: tuple[str, ...], size: int,
           pipeline: str | None) -> list[ScoredHit]:
    """Top ``size`` hits; ``pipeline=None`` bypasses any default pipeline (``_none``)."""
    try:
        result = send(client, index, bm25_query(query, fields, size), query, pipeline)
    except NotFoundError as err:
        raise ClusterError(f"index or pipeline not found ({err.error})",
                           f"check --index {index!r} and the pipeline name") from err
    except TransportError as err:
        if "Model not ready" in str(err.info or err.error):
            raise ClusterError(f"pipeline {pipeline!r} points at a model that is not deployed (after a node restart?)",
                               "run `reranker cluster up` (it redeploys pipeline models) or `reranker deploy`") from err
        raise ClusterError(f"search on {index!r} failed: {err.info or err.error}", "check the cluster") from err
    return [
        ScoredHit(hit["_id"], float(hit["_score"]), " ".join(str(hit["_source"].get(f, "")) for f in fields).strip())
        for hit in result["hits"]["hits"]
    ]
