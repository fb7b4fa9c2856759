"""Search an index with and without the rerank pipeline, for side-by-side comparison."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError, TransportError

from .errors import ClusterError


@dataclass(frozen=True)
class ScoredHit:
    """One hit as every scorer reports it."""

    doc_id: str
    score: float
    text: str


def bm25_query(query: str, fields: tuple[str, ...], size: int) -> dict[str, Any]:
    """The first-stage query: BM25 ``multi_match`` over the product text fields."""
    return {"size": size, "query": {"multi_match": {"query": query, "fields": list(fields)}}}


def search(client: OpenSearch, index: str, query: str, fields: tuple[str, ...], size: int,
           pipeline: str | None) -> list[ScoredHit]:
    """Top ``size`` hits; ``pipeline=None`` bypasses any default pipeline (``_none``)."""
    body = bm25_query(query, fields, size)
    if pipeline:
        body["ext"] = {"rerank": {"query_context": {"query_text": query}}}
    try:
        result = client.search(index=index, body=body, params={"search_pipeline": pipeline or "_none"})
    except NotFoundError as err:
        raise ClusterError(f"index or pipeline not found ({err.error})",
                           f"check --index {index!r} and the pipeline name") from err
    except TransportError as err:
        raise ClusterError(f"search on {index!r} failed: {err.info or err.error}", "check the cluster") from err
    return [
        ScoredHit(hit["_id"], float(hit["_score"]), " ".join(str(hit["_source"].get(f, "")) for f in fields).strip())
        for hit in result["hits"]["hits"]
    ]
