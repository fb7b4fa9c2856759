"""Datasets: a catalog of products plus graded (query, product) judgments, and what every format shares.

Every loader returns the same :class:`Dataset`, so teacher, student and
evaluation never care where the data came from. Graded labels become soft
targets in [0, 1] through a grade map kept in config; splits are decided per
query by a hash, so no query appears in two splits and re-runs agree. The
readers below (CSV/TSV, JSONL, Parquet; always UTF-8, streamed) and the row and
grade checks are shared by the format modules beside this one.
"""
from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reranker_core.errors import RerankerError

SPLITS = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
DEFAULT_SALT = "reranker"


class DataError(RerankerError):
    """A dataset file is missing, malformed or wrongly encoded."""

    exit_code = 2


@dataclass(frozen=True)
class Judgment:
    """One human-graded (query, product) pair; ``soft_label`` in [0, 1], ``grade`` as the source wrote it."""

    query: str
    product_id: str
    grade: str
    soft_label: float


@dataclass
class Dataset:
    """A catalog (product id -> text fields) and the judgments that refer to it."""

    name: str
    products: dict[str, dict[str, str]]
    judgments: list[Judgment]
    grade_levels: tuple[float, ...] = field(default=(0.0, 0.5, 1.0))

    def split(self, name: str, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
              salt: str = DEFAULT_SALT) -> list[Judgment]:
        """The judgments whose query falls in split ``name``."""
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}", f"use one of {', '.join(SPLITS)}")
        return [j for j in self.judgments if split_of(j.query, fractions, salt) == name]


def normalize_query(query: str) -> str:
    """Case and whitespace do not make a different query."""
    return " ".join(query.lower().split())


def split_of(query: str, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS, salt: str = DEFAULT_SALT) -> str:
    """Deterministic split for a query (normalized: case and spaces do not matter)."""
    bucket = int.from_bytes(hashlib.sha256(f"{salt}:{normalize_query(query)}".encode()).digest()[:8], "big") / 2**64
    if bucket < fractions[0]:
        return SPLITS[0]
    return SPLITS[1] if bucket < fractions[0] + fractions[1] else SPLITS[2]


def group_by_query(judgments: Iterable[Judgment]) -> dict[str, list[Judgment]]:
    """Judgments grouped per query, in first-seen order."""
    groups: dict[str, list[Judgment]] = {}
    for j in judgments:
        groups.setdefault(j.query, []).append(j)
    return groups


def grade_distribution(soft_label: float, levels: tuple[float, ...]) -> list[float]:
    """Spread a soft label over the two nearest grade levels (a distribution target for the teacher).

    With Home Depot's levels (0, 0.5, 1) a rater mean of 2.33 (soft 0.665) becomes
    [0, 0.67, 0.33]: exactly the share of raters' weight between grades 2 and 3.
    """
    levels = tuple(sorted(levels))
    s = min(max(soft_label, levels[0]), levels[-1])
    dist = [0.0] * len(levels)
    for k in range(len(levels) - 1):
        lo, hi = levels[k], levels[k + 1]
        if lo <= s <= hi:
            w = 0.0 if hi == lo else (s - lo) / (hi - lo)
            dist[k], dist[k + 1] = 1.0 - w, w
            return dist
    dist[0] = 1.0
    return dist


def map_grade(path: Path, line: int | str, grade: str, grade_map: Mapping[str, float]) -> float:
    """Soft label of a categorical grade, or a DataError naming the row and the known grades.

    ``line`` is a row number, or a ready-made location such as ``"line 3"``.
    """
    try:
        return float(grade_map[grade])
    except KeyError:
        where = f"row {line}" if isinstance(line, int) else line
        raise DataError(f"{path} {where}: grade {grade!r} is not in the grade map",
                        f"known grades: {', '.join(grade_map)}; add it under data.grade_map") from None


def _require_columns(path: Path, present: Iterable[str] | None, required: set[str], where: str = "") -> None:
    missing = required - set(present or [])
    if missing:
        at = f"{path} {where}" if where else str(path)
        raise DataError(f"{at} lacks column(s) {', '.join(sorted(missing))}",
                        f"expected {', '.join(sorted(required))}")


# --- Tables: CSV/TSV, JSONL or Parquet, always UTF-8, streamed ------------------------------------------------------

REENCODE_HINT = "re-encode as UTF-8 (iconv -f latin1 -t utf-8 IN > OUT)"
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")
_CSV_FIELD_LIMIT = 2**31 - 1  # long product descriptions exceed csv's 128 KiB default
_PARQUET_BATCH = 8192

Row = dict[str, Any]


def read_table(path: Path) -> Iterator[Row]:
    """Rows of a CSV/TSV, JSONL or Parquet file (chosen by suffix) as dicts, streamed so big files fit in memory."""
    for _, row in _iter_rows(Path(path)):
        yield row


def _iter_rows(path: Path, columns: Sequence[str] | None = None) -> Iterator[tuple[str, Row]]:
    """(location, row) pairs; the location ("line 3", "row 3") goes into error messages.

    Not a generator itself, so a missing file or unknown suffix fails at the call, not at first use.
    ``columns`` only narrows what Parquet reads (absent names are skipped); callers check what they require.
    """
    if not path.is_file():
        raise DataError(f"{path} does not exist", "check the path (data.path / data.catalog)")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return _iter_csv(path)
    if suffix in (".jsonl", ".ndjson"):
        return _iter_jsonl(path)
    if suffix == ".parquet":
        return _iter_parquet(path, columns)
    raise DataError(f"{path}: unsupported file type {suffix or '(no suffix)'}",
                    f"use one of {', '.join(TABLE_SUFFIXES)}")


def _decoded_lines(path: Path, raw_lines: Iterable[bytes]) -> Iterator[str]:
    """Lines decoded one by one, so a wrong encoding is reported with its exact line number."""
    for number, raw in enumerate(raw_lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{path} line {number} is not UTF-8 (byte {raw[err.start]:#04x} at column {err.start + 1})",
                            REENCODE_HINT) from None
        yield text.removeprefix("\ufeff") if number == 1 else text


def _iter_csv(path: Path) -> Iterator[tuple[str, Row]]:
    """CSV rows; comma or tab is read off the header, because WANDS ships tab-separated files named .csv."""
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    with path.open("rb") as f:
        lines = _decoded_lines(path, f)
        header = next(lines, "")
        delimiter = "\t" if header.count("\t") > header.count(",") else ","
        reader = csv.DictReader(_chain_first(header, lines), delimiter=delimiter)
        try:
            for row in reader:
                yield f"line {reader.line_num}", {k: ("" if v is None else v) for k, v in row.items() if k is not None}
        except csv.Error as err:
            raise DataError(f"{path} line {reader.line_num}: not valid CSV ({err})",
                            "quote fields that hold the delimiter or line breaks") from None


def _chain_first(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _iter_jsonl(path: Path) -> Iterator[tuple[str, Row]]:
    """One JSON object per line; blank lines are skipped (editors leave them at the end)."""
    with path.open("rb") as f:
        for number, text in enumerate(_decoded_lines(path, f), start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as err:
                raise DataError(f"{path} line {number}: invalid JSON ({err.msg})",
                                "write one JSON object per line") from None
            if not isinstance(row, dict):
                raise DataError(f"{path} line {number}: expected a JSON object, got {type(row).__name__}",
                                "write one JSON object per line")
            if not valid_unicode(row):
                raise DataError(f"{path} line {number}: a string escapes a lone surrogate (not valid Unicode)",
                                "write \\uD800-\\uDFFF escapes only in pairs, or the characters as UTF-8")
            yield f"line {number}", row


def valid_unicode(value: Any) -> bool:
    """Whether every string in ``value`` (nested lists and dicts too) can be written as UTF-8.

    JSON may escape half of a surrogate pair, and CSV read with ``surrogateescape``
    keeps bad bytes as lone surrogates; such a string can be neither indexed nor saved.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(valid_unicode(k) and valid_unicode(v) for k, v in value.items())
    if isinstance(value, list):
        return all(valid_unicode(v) for v in value)
    return True


def _iter_parquet(path: Path, columns: Sequence[str] | None) -> Iterator[tuple[str, Row]]:
    """Parquet rows in batches, reading only ``columns`` when given (the ESCI products file is large)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:
        raise DataError(f"{path}: reading Parquet needs pyarrow", "pip install 'opensearch-reranker[train]'") from err
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise DataError(f"{path} is not a readable Parquet file ({err})",
                        "rewrite it, or convert it to CSV/JSONL") from None
    names = parquet.schema_arrow.names
    wanted = [c for c in columns if c in names] if columns else None
    number = 0
    for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH, columns=wanted):
        for row in batch.to_pylist():
            number += 1
            yield f"row {number}", {k: _utf8_value(path, number, v) for k, v in row.items()}


def _utf8_value(path: Path, number: int, value: Any) -> Any:
    """Binary Parquet columns must hold UTF-8 too."""
    if not isinstance(value, bytes):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path} row {number}: a binary column is not UTF-8", REENCODE_HINT) from None


def _text(value: Any) -> str:
    """A field as text: missing is empty, lists are joined (bullets, tags), numbers are printed."""
    if value is None or (isinstance(value, float) and value != value):  # None, NaN
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return " ".join(t for t in (_text(v) for v in value) if t)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _unwrap_feed(row: Row) -> Row:
    """A Vespa feed line ``{"put": ..., "fields": {...}}`` (how the ESCI sample ships products) is its fields."""
    if "put" in row and isinstance(row.get("fields"), dict):
        return row["fields"]
    return row


def _id_column(path: Path, where: str, row: Row) -> str:
    """``id``, else ``product_id``: catalogs name their key either way."""
    for name in ("id", "product_id"):
        if name in row:
            return name
    raise DataError(f"{path} {where} has no id or product_id column", "name the product key column id")


def _required_text(path: Path, where: str, row: Row, column: str, what: str = "") -> str:
    """A non-empty, stripped text value, or a DataError naming the row."""
    value = _text(row.get(column)).strip()
    if not value:
        raise DataError(f"{path} {where}: empty {what or column}", "remove or fill the row")
    return value


# --- Grades ---------------------------------------------------------------------------------------------------------

def _check_grade_map(grade_map: Mapping[str, float]) -> dict[str, float]:
    """A grade map with numeric values in [0, 1]; it comes from user config, so check it once here."""
    checked: dict[str, float] = {}
    for grade, value in grade_map.items():
        try:
            soft = float(value)
        except (TypeError, ValueError):
            soft = float("nan")
        if not 0.0 <= soft <= 1.0:
            raise DataError(f"grade map entry {grade!r}: {value!r} is not a number in [0, 1]", "fix data.grade_map")
        checked[str(grade)] = soft
    return checked


def _levels(grade_map: Mapping[str, float]) -> tuple[float, ...]:
    return tuple(sorted(set(grade_map.values())))



def _require_judgments(path: Path, judgments: list[Judgment]) -> None:
    if not judgments:
        raise DataError(f"{path} has no judgment rows", "check that it is the right file and not just a header")


def _known_product(path: Path, where: str, product_id: str, products: Mapping[str, object], catalog: Path) -> str:
    if product_id not in products:
        raise DataError(f"{path} {where}: product {product_id!r} is not in {catalog}",
                        "use judgments and catalog from the same export, or drop the row")
    return product_id
