"""Search an index with and without the rerank pipeline, for side-by-side comparison."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError, TransportError

from reranker_core.errors import ClusterError, ConfigError


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


def read_body(path: Path, query: str | None, size: int | None) -> tuple[dict[str, Any], str]:
    """The search body in ``path`` (with ``size`` when given) and the query text the reranker needs: ``query``,
    else the body's ``ext.rerank.query_context.query_text``, else its first ``match`` / ``multi_match`` text."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(f"--body {path} does not exist", "pass the path of a JSON search body") from err
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ConfigError(f"--body {path} is not readable JSON ({err})",
                          'write a JSON object such as {"query": {"match": {"title": "drill"}}}') from err
    if not isinstance(body, dict):
        raise ConfigError(f"--body {path} holds a JSON {type(body).__name__}, not an object",
                          'write a JSON object such as {"query": {"match": {"title": "drill"}}}')
    if size is not None:
        body["size"] = size
    text = query or _body_query_text(body)
    if not text:
        raise ConfigError(f"--body {path} holds no query text for the reranker",
                          "pass QUERY, or set ext.rerank.query_context.query_text in the body")
    return body, text


def _body_query_text(body: dict[str, Any]) -> str | None:
    """The rerank query text a body states, or the first match / multi_match query text in it."""
    stated = body.get("ext", {}).get("rerank", {}).get("query_context", {}).get("query_text")
    if isinstance(stated, str) and stated:
        return stated

    def walk(node: Any) -> str | None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "multi_match" and isinstance(value, dict) and isinstance(value.get("query"), str):
                    return value["query"]
                if key in ("match", "match_phrase") and isinstance(value, dict):
                    for clause in value.values():
                        if isinstance(clause, str):
                            return clause
                        if isinstance(clause, dict) and isinstance(clause.get("query"), str):
                            return clause["query"]
                found = walk(value)
                if found:
                    return found
        elif isinstance(node, list):
            for value in node:
                found = walk(value)
                if found:
                    return found
        return None

    return walk(body.get("query"))


def search(client: OpenSearch, index: str, query: str, fields: tuple[str, ...], size: int,
           pipeline: str | None, body: dict[str, Any] | None = None) -> list[ScoredHit]:
    """Top ``size`` hits of ``body`` (default: BM25 over ``fields``); ``pipeline=None`` bypasses any default
    pipeline (``_none``)."""
    try:
        result = send(client, index, body if body is not None else bm25_query(query, fields, size), query, pipeline)
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
