"""Read live query logs from User Behavior Insights' ``ubi_queries`` index.

UBI (the OpenSearch plugin, or any client writing its schema) stores one doc
per search with the raw text in ``user_query``. Mining queries from it gives
the same ``LogLine`` stream as a query-log file, so the rest of the pipeline
does not care where queries came from. Reading uses a point in time with
``search_after`` sorted by ``timestamp`` then ``_shard_doc``: a stable order
over a frozen snapshot (line numbers are reproducible, new writes don't shift
pages) and bounded memory whatever the index size.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

from reranker_core.errors import ClusterError
from training.querylog import LogLine

from ..connection import cluster_call

UBI_QUERIES = "ubi_queries"
KEEP_ALIVE = "2m"
SORT = [{"timestamp": {"order": "asc", "missing": "_last", "unmapped_type": "date"}}, {"_shard_doc": "asc"}]


def iter_ubi_queries(client: OpenSearch, index: str = UBI_QUERIES, batch_size: int = 1000) -> Iterator[LogLine]:
    """One ``LogLine`` per UBI query doc, oldest first; a doc without a usable ``user_query`` is an error line.

    Not a generator itself, like ``training.querylog.iter_log_file``: a missing
    index or unreachable cluster fails here, before any line is read.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    check_index(client, index)
    return _pages(client, index, batch_size)


def _pages(client: OpenSearch, index: str, batch_size: int) -> Iterator[LogLine]:
    for line_no, source, doc_id in iter_sources(client, index, ["user_query", "query_id"], batch_size, "queries"):
        yield to_log_line(line_no, source, doc_id)


def iter_sources(client: OpenSearch, index: str, fields: list[str], batch_size: int,
                 what: str) -> Iterator[tuple[int, dict[str, Any], str | None]]:
    """``(line_no, _source, _id)`` of every doc, oldest first, paged over a point in time (see the module doc)."""
    pit_id = _open_pit(client, index)
    try:
        line_no = 0
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {"size": batch_size, "pit": {"id": pit_id, "keep_alive": KEEP_ALIVE},
                                    "sort": SORT, "_source": fields}
            if after is not None:
                body["search_after"] = after
            page = _search(client, index, body, what)
            pit_id = page.get("pit_id") or pit_id  # the cluster may hand back a new id; use the latest
            hits = page["hits"]["hits"]
            for hit in hits:
                line_no += 1
                yield line_no, hit.get("_source") or {}, hit.get("_id")
            if len(hits) < batch_size:
                return
            after = hits[-1]["sort"]
    finally:
        _close_pit(client, pit_id)


def to_log_line(line_no: int, source: dict[str, Any], doc_id: str | None = None) -> LogLine:
    """A UBI query doc as a log line; the error names the doc so it can be found and fixed."""
    query = source.get("user_query")
    if isinstance(query, str) and query.strip():
        return LogLine(line_no=line_no, query=query.strip(), error=None)  # as the file reader: normalized later
    where = f" (query_id {source['query_id']})" if source.get("query_id") else f" (doc {doc_id})" if doc_id else ""
    problem = ("missing user_query" if query is None else "empty user_query" if isinstance(query, str)
               else "user_query is not a string")
    return LogLine(line_no=line_no, query=None, error=problem + where)


MISSING_FIX = ("enable User Behavior Insights (it writes ubi_queries), create the index from "
               "opensearch/ubi-queries-index.json, or pass a query log file instead")


def _missing(index: str, fix: str = MISSING_FIX) -> ClusterError:
    return ClusterError(f"UBI index {index!r} does not exist", fix)


def check_index(client: OpenSearch, index: str, fix: str = MISSING_FIX) -> None:
    """A one-line ClusterError naming ``index`` and ``fix`` unless the index exists."""
    with cluster_call(f"check UBI index {index!r}", "check the index name (lowercase, no spaces) and the cluster"):
        found = client.indices.exists(index=index)
    if not found:
        raise _missing(index, fix)



def _open_pit(client: OpenSearch, index: str) -> str:
    with cluster_call(f"open a point in time on {index!r}", "check the index name and the cluster",
                      missing=_missing(index)):
        return client.create_pit(index=index, params={"keep_alive": KEEP_ALIVE})["pit_id"]


def _search(client: OpenSearch, index: str, body: dict[str, Any], what: str = "queries") -> dict[str, Any]:
    with cluster_call(f"read UBI {what} from {index!r}",
                      "its timestamp must be a date field (see opensearch/ubi-queries-index.json)"):
        return client.search(body=body)


def _close_pit(client: OpenSearch, pit_id: str) -> None:
    try:
        client.delete_pit(body={"pit_id": [pit_id]})
    except TransportError:  # it expires after KEEP_ALIVE anyway; never mask the real outcome
        pass
