"""UBI 1.x ``ubi_events`` read as a stream of events, each joined to its search in ``ubi_queries``.

Behaviour logs are as messy as query logs (a tracker bug writes ``"ordinal":
"3"``, an exporter cuts a line), so the reader never raises for one bad
event: every record comes back as an :class:`EventLine` holding the event or
the reason it has none, and the caller counts them in a
:class:`~training.querylog.MalformedReport` with its malformed-fraction limit.
An event is joined to its query text through ``query_id``; an event whose
``query_id`` has no ``ubi_queries`` doc is counted malformed too (it cannot be
attributed to a query, so it is reported rather than silently dropped).

Files: JSONL or NDJSON (optionally gzipped; an OpenSearch export's ``_source``
wrapper is looked through) and Parquet (nested ``event_attributes`` structs).
The index is read by :mod:`reranker_plugin.jobs.ubi_events` with the same
record parser, so every source gives the same lines.
"""
from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.datasets import DataError, valid_unicode
from training.querylog import JSONL_SUFFIXES, MalformedReport, _format_suffix, _open_binary

EVENT_SUFFIXES = (*JSONL_SUFFIXES, ".parquet")
#: What the malformed-fraction error tells the user to do.
EVENT_FIX = "fix the export (UBI 1.x fields: action_name, query_id, event_attributes) or raise " \
            "clicks.max_malformed_fraction"


@dataclass(frozen=True)
class UbiEvent:
    """The UBI event fields implicit judgments need; ``object_id`` / ``position`` are None for page-level events."""

    action_name: str
    query_id: str
    object_id: str | None = None
    object_id_field: str | None = None
    position: int | None = None
    client_id: str | None = None
    timestamp: str | int | float | None = None
    application: str | None = None


@dataclass(frozen=True)
class EventLine:
    """One record: ``event`` when it was usable, else ``error`` says why not (``line_no`` counts from 1)."""

    line_no: int
    event: UbiEvent | None
    error: str | None


@dataclass(frozen=True)
class JoinedEvent:
    """An event with the ``user_query`` of the search it followed."""

    query: str
    event: UbiEvent


def parse_event(line_no: int, record: Any) -> EventLine:
    """A UBI 1.x event record as an :class:`EventLine`; the error names the field and, if known, the query_id."""
    if not isinstance(record, dict):
        return EventLine(line_no, None, f"not a JSON object ({type(record).__name__})")
    if isinstance(record.get("_source"), dict):
        record = record["_source"]
    if not valid_unicode(record):
        return EventLine(line_no, None, "a string is not valid Unicode")
    query_id = record.get("query_id")
    where = f" (query_id {query_id})" if isinstance(query_id, str) and query_id.strip() else ""
    action = record.get("action_name")
    if not isinstance(action, str) or not action.strip():
        return EventLine(line_no, None, _problem("action_name", action) + where)
    if not isinstance(query_id, str) or not query_id.strip():
        return EventLine(line_no, None, _problem("query_id", query_id) + f" ({action.strip()} event)")
    attributes = record.get("event_attributes")
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, dict):
        return EventLine(line_no, None, "event_attributes is not an object" + where)
    obj = attributes.get("object") or {}
    position = attributes.get("position") or {}
    if not isinstance(obj, dict) or not isinstance(position, dict):
        return EventLine(line_no, None, "event_attributes.object / .position is not an object" + where)
    object_id = obj.get("object_id")
    if isinstance(object_id, int) and not isinstance(object_id, bool):
        object_id = str(object_id)  # catalogs with numeric ids: the index stores the keyword text
    if object_id is not None and (not isinstance(object_id, str) or not object_id.strip()):
        return EventLine(line_no, None, _problem("event_attributes.object.object_id", object_id) + where)
    ordinal = position.get("ordinal")
    if ordinal is not None and (not isinstance(ordinal, int) or isinstance(ordinal, bool) or ordinal < 0):
        return EventLine(line_no, None, f"event_attributes.position.ordinal {ordinal!r} is not an integer >= 0"
                         + where)
    timestamp = record.get("timestamp")
    if timestamp is not None and (isinstance(timestamp, bool) or not isinstance(timestamp, (str, int, float))):
        return EventLine(line_no, None, "timestamp is neither a date string nor epoch millis" + where)
    return EventLine(line_no, UbiEvent(
        action_name=action.strip().lower(), query_id=query_id.strip(),
        object_id=object_id.strip() if object_id else None,
        object_id_field=_text_or_none(obj.get("object_id_field")), position=ordinal,
        client_id=_text_or_none(record.get("client_id")), timestamp=timestamp,
        application=_text_or_none(record.get("application"))), None)


def _problem(name: str, value: Any) -> str:
    if value is None:
        return f"missing {name}"
    if isinstance(value, str):
        return f"empty {name}"
    return f"{name} is not a string ({type(value).__name__})"


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def iter_event_file(path: Path) -> Iterator[EventLine]:
    """The events of a JSONL (optionally .gz) or Parquet ``ubi_events`` export, streamed.

    Not a generator itself: a missing file, an unknown format or an unreadable
    Parquet file fails here, before any line is read.
    """
    return (parse_event(n, record) if error is None else EventLine(n, None, error)
            for n, record, error in iter_records(Path(path), "UBI events file"))


def iter_records(path: Path, what: str) -> Iterator[tuple[int, Any, str | None]]:
    """``(line_no, record, error)`` of a JSONL / Parquet file; the error is set when the line is no JSON."""
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist", "check the path")
    suffix = _format_suffix(path)
    if suffix in JSONL_SUFFIXES:
        return _jsonl_records(path)
    if suffix == ".parquet":
        return _parquet_records(path, what)
    raise DataError(f"{what} {path}: unsupported file type {suffix or '(no suffix)'}",
                    f"use one of {', '.join(EVENT_SUFFIXES)} (JSONL optionally gzipped), or read the index")


def _jsonl_records(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    with _open_binary(path) as stream:
        for line_no, raw in enumerate(stream, start=1):
            if line_no == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if not raw.strip():
                continue
            try:
                yield line_no, json.loads(raw.decode("utf-8")), None
            except UnicodeDecodeError:
                yield line_no, None, "not UTF-8"
            except json.JSONDecodeError as err:
                yield line_no, None, f"invalid JSON ({err.msg})"


def _parquet_records(path: Path, what: str) -> Iterator[tuple[int, Any, str | None]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:
        raise DataError(f"{path}: reading Parquet needs pyarrow", "pip install 'opensearch-reranker[train]', "
                        "or export the events as JSONL") from err
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise DataError(f"{what} {path} is not a readable Parquet file ({err})".replace("\n", " "),
                        "re-export it, or export as JSONL") from None
    return _parquet_rows(parquet)


def _parquet_rows(parquet: Any) -> Iterator[tuple[int, Any, str | None]]:
    line_no = 0
    for batch in parquet.iter_batches(batch_size=8192):
        for row in batch.to_pylist():
            line_no += 1
            yield line_no, _drop_nulls(row), None


def _drop_nulls(value: Any) -> Any:
    """Parquet structs hold every field, absent ones as null: drop them so null means 'not given', as in JSON."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    return value


def query_texts_from_file(path: Path, report: MalformedReport | None = None) -> dict[str, str]:
    """``query_id`` -> ``user_query`` from a ``ubi_queries`` export (JSONL / Parquet); bad docs go to ``report``."""
    texts: dict[str, str] = {}
    for line_no, record, error in iter_records(Path(path), "UBI queries file"):
        if error is None:
            error = add_query_doc(texts, record.get("_source", record) if isinstance(record, dict) else record)
        if report is not None:
            report.add(path, _Counted(line_no, error))
    return texts


@dataclass(frozen=True)
class _Counted:
    line_no: int
    error: str | None


def add_query_doc(texts: dict[str, str], source: Any) -> str | None:
    """Record one ``ubi_queries`` doc's ``query_id`` -> ``user_query``; returns why it is unusable, else None.

    The first doc of a ``query_id`` wins: UBI writes one per search, so a second is a replay.
    """
    if not isinstance(source, dict):
        return f"not a JSON object ({type(source).__name__})"
    query_id, query = source.get("query_id"), source.get("user_query")
    if not isinstance(query_id, str) or not query_id.strip():
        return _problem("query_id", query_id)
    if not isinstance(query, str) or not query.strip() or not valid_unicode(query):
        return _problem("user_query", query) + f" (query_id {query_id})"
    texts.setdefault(query_id.strip(), query.strip())
    return None


def join_events(lines: Iterable[EventLine], queries: Mapping[str, str], source: Path | str,
                report: MalformedReport) -> Iterator[JoinedEvent]:
    """Good events with their query text; every line is counted in ``report``, an unknown query_id as malformed."""
    for line in lines:
        if line.event is not None and line.event.query_id not in queries:
            line = EventLine(line.line_no, None, f"query_id {line.event.query_id} has no ubi_queries doc "
                                                 f"({line.event.action_name} event)")
        report.add(source, line)
        if line.event is not None:
            yield JoinedEvent(queries[line.event.query_id], line.event)


def event_report() -> MalformedReport:
    """A report worded for UBI events (its limit error names clicks.max_malformed_fraction)."""
    return MalformedReport(what="UBI events", fix=EVENT_FIX)
