"""`reranker simulate-events`: simulated UBI sessions over the live index's BM25 pages, training queries only.

Queries come from the judged dataset's training split only (validation and
test queries never get a session, so implicit judgments built on these events
cannot leak into evaluation), drawn by how often each occurs in the data. Each
distinct query is searched once (BM25 over the template's fields, the page
every session of it sees); clicks follow :class:`training.clicksim.ClickModel`
with the human soft label where the pair is judged. Everything is generated
before anything is written, so a failed search writes nothing; if the bulk
write fails half-way, the docs of this run are deleted again by their
``query_id``. Doc ids derive from the seeded ``query_id``, so rerunning a seed
into the same indexes rewrites its docs instead of duplicating them. An index
that already holds real (not simulated) behaviour is refused before anything
is written. The parameters, seed and counts go to a JSON sidecar.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.helpers import bulk

from reranker_core.errors import ClusterError, RerankerError
from reranker_core.files import write_json_atomic
from training.clicksim import SIMULATED_APPLICATION, ClickModel, SimulatedLog, simulate
from training.datasets import Dataset, normalize_query, split_of

from ..connection import cluster_call
from ..node.assets import load_json
from .search import search

MAPPINGS = {"events": "ubi-events-index.json", "queries": "ubi-queries-index.json"}
BULK_CHUNK = 500


@dataclass(frozen=True)
class SimulationPlan:
    """What to simulate: how many sessions over how many training queries, pages of ``top_k``, and the seed."""

    sessions: int = 1000
    max_queries: int | None = 200       # most frequent training queries (None: all)
    top_k: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sessions < 1 or self.top_k < 1 or (self.max_queries is not None and self.max_queries < 1):
            raise ValueError("sessions, top_k and max_queries must be positive")


def training_query_frequencies(dataset: Dataset, fractions: tuple[float, float, float], salt: str,
                               max_queries: int | None) -> dict[str, int]:
    """Normalized training-split query -> how often the dataset holds it (its judged rows), most frequent first."""
    counts: Counter[str] = Counter()
    for j in dataset.judgments:
        key = normalize_query(j.query)
        if key and split_of(key, fractions, salt) == "train":
            counts[key] += 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return dict(ranked[:max_queries] if max_queries else ranked)


def human_labels(dataset: Dataset) -> dict[tuple[str, str], float]:
    """(normalized query, product id) -> mean human soft label (a pair judged twice gets the mean)."""
    sums: dict[tuple[str, str], list[float]] = {}
    for j in dataset.judgments:
        sums.setdefault((normalize_query(j.query), j.product_id), []).append(j.soft_label)
    return {pair: sum(v) / len(v) for pair, v in sums.items()}


def simulate_events(client: OpenSearch, index: str, fields: tuple[str, ...], dataset: Dataset,
                    fractions: tuple[float, float, float], salt: str, model: ClickModel, plan: SimulationPlan,
                    events_index: str, queries_index: str, sidecar: Path) -> dict[str, Any]:
    """Simulate, write ``ubi_queries`` / ``ubi_events`` docs and the sidecar; returns the sidecar's content."""
    started = time.monotonic()
    frequencies = training_query_frequencies(dataset, fractions, salt, plan.max_queries)
    if not frequencies:
        raise RerankerError("the dataset has no training-split query to simulate", "check data.path and the split")
    pages = {q: [hit.doc_id for hit in search(client, index, q, fields, plan.top_k, None)] for q in frequencies}
    log = simulate(pages, frequencies, human_labels(dataset), model, plan.sessions, plan.seed)
    leaked = sorted({d["user_query"] for d in log.queries if split_of(d["user_query"], fractions, salt) != "train"})
    if leaked:  # cannot happen by construction; checked because a leak would silently void every evaluation
        raise RerankerError(f"refusing to write: {len(leaked)} held-out queries got sessions (first {leaked[0]!r})",
                            "this is a bug; report it")
    write_log(client, log, events_index, queries_index)
    summary = {
        "simulated": True, "application": SIMULATED_APPLICATION, "click_model": model.describe(),
        "seed": plan.seed, "sessions": plan.sessions, "top_k": plan.top_k, "max_queries": plan.max_queries,
        "session_sampling": "training-split queries, drawn with probability proportional to their count of judged "
                            "rows in the dataset",
        "dataset": dataset.name, "split_fractions": list(fractions), "split_salt": salt,
        "search_index": index, "search_fields": list(fields), "events_index": events_index,
        "queries_index": queries_index, "queries": len(log.sessions_per_query),
        "queries_without_hits": sorted(q for q, page in pages.items() if not page)[:20],
        "query_docs": len(log.queries), "events": len(log.events),
        "clicks": sum(1 for e in log.events if e["action_name"] == "click"),
        "seconds": round(time.monotonic() - started, 1)}
    write_json_atomic(sidecar, summary)
    return summary


def write_log(client: OpenSearch, log: SimulatedLog, events_index: str, queries_index: str) -> None:
    """Bulk-write the docs (indexes created from the UBI mappings when missing); all or, after a failure, none."""
    targets = ((events_index, "events"), (queries_index, "queries"))
    with cluster_call("check the UBI indexes to write", "check the index names (lowercase, no spaces) and the cluster"):
        missing = [(name, kind) for name, kind in targets if not client.indices.exists(index=name)]
        for target in targets:
            if target not in missing:
                refuse_real_behaviour(client, target[0])
        for name, kind in missing:
            client.indices.create(index=name, body=load_json(MAPPINGS[kind]))
    actions = [{"_index": queries_index, "_id": d["query_id"], "_source": d} for d in log.queries]
    actions += [{"_index": events_index, "_source": d, "_id": event_id(d)} for d in log.events]
    try:
        with cluster_call(f"write simulated UBI docs into {queries_index!r} / {events_index!r}",
                          "check the cluster (disk, permissions) and rerun"):
            _, errors = bulk(client, actions, chunk_size=BULK_CHUNK, raise_on_error=False)
            client.indices.refresh(index=f"{queries_index},{events_index}")  # once: wait_for per chunk took ~1 s each
        if errors:
            first = errors[0].get("index", errors[0])
            raise ClusterError(f"{len(errors)} simulated UBI docs were refused (first: {first.get('error')})"
                               .replace("\n", " "), "check the UBI index mappings (opensearch/ubi-*-index.json)")
    except BaseException:
        _roll_back(client, [d["query_id"] for d in log.queries], events_index, queries_index)
        raise


def refuse_real_behaviour(client: OpenSearch, index: str) -> None:
    """Simulated docs never go into an index holding real users' behaviour: the two could not be told apart
    by anything reading the index without checking ``application``, e.g. augment mining ``ubi_queries``."""
    body = {"query": {"bool": {"must_not": {"term": {"application": SIMULATED_APPLICATION}}}}}
    real = client.count(index=index, body=body)["count"]
    if real:
        raise ClusterError(f"{index!r} holds {real} docs that are not simulated (real UBI data?); "
                           "refusing to mix simulated sessions into it",
                           "pass another --events-index / --queries-index (clicks.events_index / queries_index)")


def event_id(doc: dict[str, Any]) -> str:
    """A simulated event's id from its search, action and rank: rerunning the same seed rewrites, never duplicates."""
    return f"{doc['query_id']}-{doc['action_name']}-{doc['event_attributes']['position']['ordinal']}"


def _roll_back(client: OpenSearch, query_ids: list[str], events_index: str, queries_index: str) -> None:
    """Delete this run's docs by query_id, so a failed write leaves the indexes as they were."""
    for start in range(0, len(query_ids), 1000):
        body = {"query": {"terms": {"query_id": query_ids[start:start + 1000]}}}
        for name in (events_index, queries_index):
            try:
                client.delete_by_query(index=name, body=body, params={"refresh": "true", "conflicts": "proceed"})
            except Exception:  # noqa: BLE001 - the original failure is what the user must see
                pass
