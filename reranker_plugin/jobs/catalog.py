"""Index a product catalog so the rerank pipeline reads the same text the models were trained on.

Each product is stored under its own id (``_id`` = product id), so re-running
updates documents instead of duplicating them, with its raw fields plus
``product_text``: the template's rendering (reranker_core/template.py), which is what a
multi-field pipeline reranks on. Products stream through ``streaming_bulk`` in
batches, so memory stays bounded whatever the catalog size; a row the cluster
refuses (e.g. a mapping conflict) is reported by id and the rest is indexed.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from typing import Any

from opensearchpy import OpenSearch, helpers
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import NotFoundError, RequestError, TransportError

from reranker_core.errors import ClusterError
from reranker_core.template import RENDERED_FIELD, ProductTemplate

from ..node.assets import load_json

#: ``_meta.created_by`` of the indices the catalog indexer creates (set in opensearch/products-index.json).
CREATED_BY = "reranker"
#: OpenSearch rejects a whole bulk request (not just the row) for ids longer than this.
MAX_ID_BYTES = 512


@dataclass(frozen=True)
class IndexReport:
    """What one indexing run did: rows accepted, rows refused as (product id, reason), and where."""

    indexed: int
    failed: list[tuple[str, str]]
    index: str


def index_bodies(client: OpenSearch, index: str) -> dict[str, Any] | None:
    """``GET <index>`` (flat settings, mappings), per concrete index; None when absent. This call needs only
    ``indices:admin/get``, which the deploying role has (reading mappings or settings alone needs more)."""
    try:
        return client.indices.get(index=index, flat_settings=True)
    except NotFoundError:
        return None
    except OSConnectionError as err:
        raise ClusterError(f"cannot reach OpenSearch to read index {index!r} ({type(err).__name__})",
                           "start one with `reranker cluster up` or set OPENSEARCH_URL") from err
    except TransportError as err:
        raise ClusterError(f"reading index {index!r} failed: {_reason(err)}", "check the cluster") from err


def index_owner(client: OpenSearch, index: str) -> str | None:
    """Who made ``index``: its mapping's ``_meta.created_by`` (``CREATED_BY`` for ours), ``""`` when unmarked,
    None when absent. `reranker run` writes into an existing index only if it is ours (or with --overwrite)."""
    bodies = index_bodies(client, index)
    if bodies is None:
        return None
    owners = {str(((b.get("mappings") or {}).get("_meta") or {}).get("created_by") or "") for b in bodies.values()}
    return owners.pop() if len(owners) == 1 else ""  # an alias over indices of several owners: not ours


def legacy_products_mapping(client: OpenSearch, index: str) -> bool:
    """True when ``index`` has the catalog indexer's field (``product_text``): made by a reranker from before
    indices were marked."""
    bodies = (index_bodies(client, index) or {}).values()
    return bool(bodies) and all(RENDERED_FIELD in ((b.get("mappings") or {}).get("properties") or {}) for b in bodies)


def ensure_products_index(client: OpenSearch, index: str) -> bool:
    """Create ``index`` with ``opensearch/products-index.json`` unless it exists; True when created.

    The mapping's ``_meta.created_by`` marks it as made by reranker (see :func:`index_owner`).
    """
    try:
        if client.indices.exists(index=index):
            return False
        client.indices.create(index=index, body=load_json("products-index.json"))
        return True
    except RequestError as err:
        if err.error == "resource_already_exists_exception":  # created concurrently: fine
            return False
        raise ClusterError(f"cannot create index {index!r}: {_reason(err)}",
                           "use a lowercase name without spaces or \\/*?\"<>|,# that does not start with _ - +") from err
    except OSConnectionError as err:
        raise ClusterError(f"cannot reach OpenSearch to create index {index!r} ({type(err).__name__})",
                           "start one with `reranker cluster up` or set OPENSEARCH_URL") from err
    except TransportError as err:
        raise ClusterError(f"creating index {index!r} failed: {_reason(err)}", "check the cluster") from err


def product_document(product_id: str, fields: dict[str, str], template: ProductTemplate) -> dict[str, Any]:
    """The stored document: the product's fields, its id, and the rendered text models read."""
    return {**fields, "product_id": product_id, RENDERED_FIELD: template.render(fields)}


def index_catalog(client: OpenSearch, index: str, products: Iterable[tuple[str, dict[str, str]]],
                  template: ProductTemplate, batch_size: int = 500,
                  progress: Callable[[int, int], None] | None = None) -> IndexReport:
    """Upsert ``products`` (id, fields) into ``index``, creating it if missing, then refresh.

    ``progress(done, total)`` is called after each batch and at the end; ``total``
    is ``len(products)`` when it has one, else 0 (unknown, e.g. a generator).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ensure_products_index(client, index)
    total = len(products) if isinstance(products, Sized) else 0
    failed: list[tuple[str, str]] = []
    indexed = done = 0

    def actions() -> Iterator[dict[str, Any]]:
        nonlocal done
        for product_id, fields in products:
            product_id = str(product_id)
            problem = _bad_id(product_id)
            if problem:  # would fail the whole bulk request, not just this row
                failed.append((product_id, problem))
                done += 1
                continue
            yield {"_op_type": "index", "_index": index, "_id": product_id,
                   "_source": product_document(product_id, fields, template)}

    try:
        for ok, item in helpers.streaming_bulk(client, actions(), chunk_size=batch_size, raise_on_error=False,
                                               max_retries=2):
            result = next(iter(item.values()))
            if ok:
                indexed += 1
            else:
                failed.append((str(result.get("_id")), _row_reason(result)))
            done += 1
            if progress and done % batch_size == 0:
                progress(done, total)
        client.indices.refresh(index=index)
    except OSConnectionError as err:
        raise ClusterError(f"lost OpenSearch while indexing into {index!r} after {done} products "
                           f"({type(err).__name__})", "check the cluster and re-run: indexing is idempotent") from err
    except TransportError as err:
        raise ClusterError(f"bulk indexing into {index!r} failed after {done} products: {_reason(err)}",
                           "check the cluster and re-run: indexing is idempotent") from err
    if progress:
        progress(done, total)
    return IndexReport(indexed=indexed, failed=failed, index=index)


def _bad_id(product_id: str) -> str | None:
    if not product_id.strip():
        return "empty product id"
    if len(product_id.encode("utf-8")) > MAX_ID_BYTES:
        return f"product id longer than {MAX_ID_BYTES} bytes"
    return None


def _row_reason(result: dict[str, Any]) -> str:
    error = result.get("error")
    if isinstance(error, dict):
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict) and cause.get("reason"):
            text += f" ({cause['reason']})"
        return text
    return str(error or f"status {result.get('status')}")


def _reason(err: TransportError) -> str:
    info = err.info if isinstance(err.info, dict) else {}
    root = info.get("error", {})
    if isinstance(root, dict) and root.get("reason"):
        return str(root["reason"])
    return str(err.error)
