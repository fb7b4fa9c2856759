"""Rerank search pipelines: render from ``opensearch/rerank-pipeline.json``, put, read, attach."""
from __future__ import annotations

import warnings
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError, OpenSearchWarning, TransportError

from reranker_core.errors import ClusterError

from ..node.assets import load_json


def render_pipeline(model_id: str, document_fields: tuple[str, ...]) -> dict[str, Any]:
    """The pipeline body for ``model_id`` reranking on ``document_fields``."""
    values: dict[str, Any] = {"${model_id}": model_id, "${document_fields}": list(document_fields)}

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fill(v) for v in node]
        return values.get(node, node) if isinstance(node, str) else node

    return fill(load_json("rerank-pipeline.json"))


def get_pipeline(client: OpenSearch, name: str) -> dict[str, Any] | None:
    try:
        return client.search_pipeline.get(id=name)[name]
    except NotFoundError:
        return None
    except TransportError as err:
        raise ClusterError(f"reading search pipeline {name!r} failed: {err.error}", "check the cluster") from err


def put_pipeline(client: OpenSearch, name: str, body: dict[str, Any]) -> None:
    try:
        client.search_pipeline.put(id=name, body=body)
    except TransportError as err:
        raise ClusterError(f"creating search pipeline {name!r} failed: {err.info or err.error}",
                           "is neural-search installed on every node?") from err


def pipeline_model_id(body: dict[str, Any] | None) -> str | None:
    """Model id used by the first rerank processor of a pipeline body."""
    for processor in (body or {}).get("response_processors", []):
        rerank = processor.get("rerank", {})
        if "ml_opensearch" in rerank:
            return rerank["ml_opensearch"].get("model_id")
    return None


def pipelines_by_model(client: OpenSearch) -> dict[str, list[str]]:
    """Model id -> names of the search pipelines whose rerank processor uses it."""
    try:
        bodies = client.search_pipeline.get()
    except NotFoundError:  # no pipeline at all
        return {}
    except TransportError as err:
        raise ClusterError(f"listing search pipelines failed: {err.error}", "check the cluster") from err
    found: dict[str, list[str]] = {}
    for name, body in sorted(bodies.items()):
        model_id = pipeline_model_id(body)
        if model_id:
            found.setdefault(model_id, []).append(name)
    return found


def set_default_pipeline(client: OpenSearch, index: str, name: str) -> None:
    """Make ``name`` the index's default search pipeline, so plain searches are reranked."""
    try:
        client.indices.put_settings(index=index, body={"index.search.default_pipeline": name})
    except NotFoundError as err:
        raise ClusterError(f"index {index!r} does not exist", "create and fill it before attaching a pipeline") from err
    except TransportError as err:
        raise ClusterError(f"setting the default pipeline on {index!r} failed: {err.error}", "check the index") from err


def list_pipelines(client: OpenSearch) -> dict[str, dict[str, Any]]:
    """Every search pipeline on the cluster: name -> body (empty when there is none)."""
    try:
        return dict(sorted(client.search_pipeline.get().items()))
    except NotFoundError:  # no pipeline at all
        return {}
    except TransportError as err:
        raise ClusterError(f"listing search pipelines failed: {err.error}", "check the cluster") from err


def default_pipeline_indices(client: OpenSearch) -> dict[str, list[str]]:
    """Pipeline name -> the indices (hidden and closed ones too) that use it as their default search pipeline."""
    try:
        with warnings.catch_warnings():  # "*" with hidden indices reaches ML Commons' system indices: only read
            warnings.simplefilter("ignore", OpenSearchWarning)
            settings = client.indices.get_settings(index="*", name="index.search.default_pipeline",
                                                   params={"expand_wildcards": "all"})
    except NotFoundError:
        return {}
    except TransportError as err:
        raise ClusterError(f"reading the indices' default pipelines failed: {err.error}", "check the cluster") from err
    found: dict[str, list[str]] = {}
    for index, body in sorted(settings.items()):
        name = body.get("settings", {}).get("index", {}).get("search", {}).get("default_pipeline")
        if name and name != "_none":
            found.setdefault(name, []).append(index)
    return found


def clear_default_pipeline(client: OpenSearch, index: str) -> None:
    """Remove ``index.search.default_pipeline`` from ``index``: plain searches are no longer reranked."""
    try:
        client.indices.put_settings(index=index, body={"index.search.default_pipeline": None})
    except TransportError as err:
        raise ClusterError(f"removing the default pipeline of {index!r} failed: {err.error}",
                           "check the index") from err


def delete_pipeline(client: OpenSearch, name: str) -> None:
    """Delete search pipeline ``name``."""
    try:
        client.search_pipeline.delete(id=name)
    except NotFoundError as err:
        raise ClusterError(f"search pipeline {name!r} does not exist", "see `reranker pipeline list`") from err
    except TransportError as err:
        raise ClusterError(f"deleting search pipeline {name!r} failed: {err.error}", "check the cluster") from err
