"""Read UBI ``ubi_events`` from the index (or an export) joined to ``ubi_queries`` by ``query_id``.

The index is paged like ``ubi_queries`` (point in time, oldest first) and each
doc goes through the same record parser as an exported file
(:func:`training.ubievents.parse_event`), so a bad event gives the same
one-line reason wherever it came from, and the same malformed-fraction limit
applies. Query texts can come from the ``ubi_queries`` index or an export of it,
independently of where the events come from.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from opensearchpy import OpenSearch

from training.querylog import MalformedReport
from training.ubievents import (EventLine, JoinedEvent, add_query_doc, event_report, iter_event_file, join_events,
                                parse_event, query_texts_from_file)

from .ubi import UBI_QUERIES, check_index, iter_sources

UBI_EVENTS = "ubi_events"
EVENT_FIELDS = ["application", "action_name", "query_id", "client_id", "timestamp", "event_attributes.object",
                "event_attributes.position"]
EVENTS_FIX = ("enable User Behavior Insights (it writes ubi_events), create the index from "
              "opensearch/ubi-events-index.json, run `reranker simulate-events`, or pass --events FILE")


def iter_ubi_events(client: OpenSearch, index: str = UBI_EVENTS, batch_size: int = 1000) -> Iterator[EventLine]:
    """One :class:`EventLine` per doc of a ``ubi_events`` index, oldest first; fails before the first line
    when the index is missing or the cluster unreachable."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    check_index(client, index, EVENTS_FIX)
    return (parse_event(n, source) for n, source, _ in iter_sources(client, index, EVENT_FIELDS, batch_size, "events"))


def ubi_query_texts(client: OpenSearch, index: str = UBI_QUERIES, report: MalformedReport | None = None,
                    batch_size: int = 1000) -> dict[str, str]:
    """``query_id`` -> ``user_query`` of every doc of a ``ubi_queries`` index; unusable docs go to ``report``."""
    check_index(client, index)
    texts: dict[str, str] = {}
    for line_no, source, _ in iter_sources(client, index, ["query_id", "user_query"], batch_size, "queries"):
        error = add_query_doc(texts, source)
        if report is not None:
            report.add(index, EventLine(line_no, None, error))
    return texts


@dataclass(frozen=True)
class EventSource:
    """Where events and query texts are read from: files when given, else the named indexes."""

    events_file: Path | None = None
    queries_file: Path | None = None
    events_index: str = UBI_EVENTS
    queries_index: str = UBI_QUERIES

    def describe(self) -> dict[str, str]:
        return {"events": str(self.events_file or f"index {self.events_index}"),
                "queries": str(self.queries_file or f"index {self.queries_index}")}


@dataclass
class ReadEvents:
    """Joined events (a list: COEC needs two passes' worth of counts) and the reports of both reads."""

    events: list[JoinedEvent]
    report: MalformedReport
    query_report: MalformedReport


def read_joined_events(client: OpenSearch | None, source: EventSource, max_malformed: float) -> ReadEvents:
    """Every event joined to its query; raises a one-line DataError when more than ``max_malformed`` of the
    events (or of the query docs) are malformed, naming the first bad line."""
    query_report = MalformedReport(what="UBI query docs", fix="fix the ubi_queries docs (query_id, user_query) or "
                                   "raise clicks.max_malformed_fraction")
    if source.queries_file is not None:
        texts = query_texts_from_file(source.queries_file, query_report)
    else:
        texts = ubi_query_texts(_need(client), source.queries_index, query_report)
    query_report.check(max_malformed)
    report = event_report()
    if source.events_file is not None:
        lines, where = iter_event_file(source.events_file), str(source.events_file)
    else:
        lines, where = iter_ubi_events(_need(client), source.events_index), source.events_index
    events = list(join_events(lines, texts, where, report))
    report.check(max_malformed)
    return ReadEvents(events, report, query_report)


def _need(client: OpenSearch | None) -> OpenSearch:
    if client is None:
        raise ValueError("reading an index needs a client")
    return client
