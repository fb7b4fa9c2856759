"""Query logs read as a stream: every line comes back with its query or the reason it has none.

Logs are large and messy (a crashed writer leaves half a line, an old exporter
writes latin-1), so one bad line must not stop augmentation. The reader never
raises for a bad line; the caller counts and samples them in a
:class:`MalformedReport` and refuses only when too much of the log is bad,
which means a wrong query field or encoding rather than noise.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from training.datasets import DataError, normalize_query, valid_unicode

FALLBACK_QUERY_FIELDS = ("query", "search_term")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
CSV_DELIMITERS = {".csv": ",", ".tsv": "\t"}
SAMPLE_SIZE = 5
_CSV_FIELD_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class LogLine:
    """One log line: ``query`` when it held one, else ``error`` says why not."""

    line_no: int
    query: str | None
    error: str | None


def iter_log_file(path: Path, query_field: str = "user_query") -> Iterator[LogLine]:
    """The lines of a JSONL or CSV/TSV query log (optionally .gz), streamed.

    The query is read from ``query_field``, else ``query``, else ``search_term``, so UBI
    ``ubi_queries`` exports (``user_query``) and plain logs both work. Blank lines are skipped.
    Not a generator itself: a missing file or unknown format fails here, before any line is read.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"query log {path} does not exist", "check the log paths in the augment config")
    suffix = _format_suffix(path)
    fields = tuple(dict.fromkeys((query_field, *FALLBACK_QUERY_FIELDS)))
    if suffix in JSONL_SUFFIXES:
        return _jsonl_log(path, fields)
    if suffix in CSV_DELIMITERS:
        return _csv_log(path, fields, CSV_DELIMITERS[suffix])
    raise DataError(f"query log {path}: unsupported file type {suffix or '(no suffix)'}",
                    f"use one of {', '.join(JSONL_SUFFIXES + tuple(CSV_DELIMITERS))}, optionally gzipped")


def iter_log_queries(paths: Iterable[Path], report: MalformedReport,
                     query_field: str = "user_query") -> Iterator[str]:
    """The good queries of several logs in order, every line counted into ``report``."""
    for path in paths:
        for line in iter_log_file(path, query_field):
            report.add(path, line)
            if line.query is not None:
                yield line.query


def _format_suffix(path: Path) -> str:
    """``queries.jsonl.gz`` is JSONL: the suffix under ``.gz`` decides."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else path.open("rb")


def _jsonl_log(path: Path, fields: tuple[str, ...]) -> Iterator[LogLine]:
    with _open_binary(path) as stream:
        for line_no, raw in enumerate(stream, start=1):
            if line_no == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if raw.strip():
                yield _json_line(line_no, raw, fields)


def _json_line(line_no: int, raw: bytes, fields: tuple[str, ...]) -> LogLine:
    """Parse one JSONL line; an OpenSearch export's ``_source`` wrapper is looked through."""
    try:
        record: Any = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return LogLine(line_no, None, "not UTF-8")
    except json.JSONDecodeError as err:
        return LogLine(line_no, None, f"invalid JSON ({err.msg})")
    if not isinstance(record, dict):
        return LogLine(line_no, None, f"not a JSON object ({type(record).__name__})")
    if isinstance(record.get("_source"), dict):
        record = record["_source"]
    return _query_line(line_no, record, fields)


def _query_line(line_no: int, record: Mapping[str, Any], fields: tuple[str, ...]) -> LogLine:
    """The first present query field, which must be a non-empty string."""
    name = next((f for f in fields if record.get(f) is not None), None)
    if name is None:
        return LogLine(line_no, None, f"no {' / '.join(fields)} field")
    value = record[name]
    if not isinstance(value, str):
        return LogLine(line_no, None, f"{name} is not a string")
    if not valid_unicode(value):  # valid JSON may escape a lone surrogate; no index or file can take it
        return LogLine(line_no, None, f"{name} is not valid Unicode")
    query = value.strip()
    if not query:
        return LogLine(line_no, None, f"empty {name}")
    return LogLine(line_no, query, None)


def _csv_log(path: Path, fields: tuple[str, ...], delimiter: str) -> Iterator[LogLine]:
    """CSV rows; bad bytes are kept as surrogates so one bad row is reported, not fatal to the file."""
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    with _open_binary(path) as stream:
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
        reader = csv.reader(text, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return
        column = next((f for f in fields if f in header), None)
        if column is None:
            raise DataError(f"query log {path}: the CSV header has none of {', '.join(fields)}",
                            "name the query column user_query, or set the query field option")
        yield from _csv_rows(reader, header.index(column), column)


def _csv_rows(reader: Any, index: int, column: str) -> Iterator[LogLine]:
    while True:
        before = reader.line_num
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            yield LogLine(reader.line_num, None, f"bad CSV ({err})")
            if reader.line_num == before:
                return  # the reader cannot move on: stop rather than loop
            continue
        if not row:
            continue
        if index >= len(row):
            yield LogLine(reader.line_num, None, f"no {column} value")
        elif not valid_unicode(row):
            yield LogLine(reader.line_num, None, "not UTF-8")
        else:
            yield _query_line(reader.line_num, {column: row[index]}, (column,))


class NumberedLine(Protocol):
    """What :class:`MalformedReport` counts: a log line or a UBI event line (``error`` None when it was good)."""

    @property
    def line_no(self) -> int: ...

    @property
    def error(self) -> str | None: ...


class QueryCounter:
    """Frequencies of normalized queries, keeping how each was first written (what a teacher should read)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._raw: dict[str, str] = {}

    def add(self, query: str) -> str | None:
        """Count ``query``; returns its normalized form, or None when it normalizes to nothing."""
        key = normalize_query(query)
        if not key:
            return None
        self._counts[key] += 1
        self._raw.setdefault(key, query)
        return key

    def raw(self, normalized: str) -> str:
        """The first-seen spelling of a normalized query."""
        return self._raw[normalized]

    def items(self) -> list[tuple[str, int]]:
        """(normalized query, frequency), most frequent first, ties by query so output is reproducible."""
        return sorted(self._counts.items(), key=lambda item: (-item[1], item[0]))

    @property
    def total(self) -> int:
        """All counted occurrences."""
        return sum(self._counts.values())

    def __len__(self) -> int:
        return len(self._counts)


@dataclass
class MalformedReport:
    """Lines read and lines skipped, with the first few reasons as ``path:line: reason`` to show the user."""

    total: int = 0
    malformed: int = 0
    samples: list[str] = field(default_factory=list)
    what: str = "query log lines"
    fix: str = "fix the log (query field, encoding) or raise augment.max_malformed_fraction"

    def add(self, path: Path | str, line: NumberedLine) -> None:
        """Count one line, sampling it when it is malformed."""
        self.total += 1
        if line.error is not None:
            self.malformed += 1
            if len(self.samples) < SAMPLE_SIZE:
                self.samples.append(f"{path}:{line.line_no}: {line.error}")

    @property
    def fraction(self) -> float:
        return self.malformed / self.total if self.total else 0.0

    def check(self, max_fraction: float) -> None:
        """Raise when more than ``max_fraction`` of the lines are malformed: then the log, not noise, is wrong."""
        if self.fraction > max_fraction:
            first = self.samples[0] if self.samples else "none sampled"
            raise DataError(f"{self.malformed} of {self.total} {self.what} are malformed "
                            f"({self.fraction:.1%} > {max_fraction:.1%}); first: {first}", self.fix)
