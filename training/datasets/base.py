"""Datasets: a catalog of products plus graded (query, product) judgments.

Every loader returns the same :class:`Dataset`, so teacher, student and
evaluation never care where the data came from. Graded labels become soft
targets in [0, 1] through a grade map kept in config; splits are decided per
query by a hash, so no query appears in two splits and re-runs agree.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reranker_core.errors import RerankerError

SPLITS = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
DEFAULT_SALT = "reranker"

# Grade -> soft label, per published dataset. Home Depot grades are numbers (mean of 1..3 raters).
ESCI_GRADES = {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}
WANDS_GRADES = {"Exact": 1.0, "Partial": 0.5, "Irrelevant": 0.0}


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


def homedepot_soft_label(relevance: float) -> float:
    """Mean rater grade on 1..3 mapped linearly to [0, 1]."""
    return min(1.0, max(0.0, (relevance - 1.0) / 2.0))


def load_homedepot(path: Path) -> Dataset:
    """Home Depot ``train.csv`` (or its zip): latin-1, columns product_uid, product_title, search_term, relevance."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Home Depot file {path} does not exist", "point data.path at train.csv or train.csv.zip")
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                text = zf.read("train.csv").decode("latin-1")
        else:
            text = path.read_bytes().decode("latin-1")
    except (zipfile.BadZipFile, KeyError) as err:
        raise DataError(f"{path} is not a zip holding train.csv", "use the Kaggle train.csv.zip") from err
    reader = csv.DictReader(io.StringIO(text))
    _require_columns(path, reader.fieldnames, {"product_uid", "product_title", "search_term", "relevance"})
    products: dict[str, dict[str, str]] = {}
    judgments = []
    for line, row in enumerate(reader, start=2):
        query = (row["search_term"] or "").strip()
        if not query:
            raise DataError(f"{path} line {line}: empty search_term", "remove or fill the row")
        try:
            grade = float(row["relevance"])
        except ValueError as err:
            raise DataError(f"{path} line {line}: relevance {row['relevance']!r} is not a number",
                            "grades are means of 1..3") from err
        products[row["product_uid"]] = {"title": row["product_title"]}
        judgments.append(Judgment(query, row["product_uid"], row["relevance"], homedepot_soft_label(grade)))
    return Dataset("homedepot", products, judgments, (0.0, 0.5, 1.0))


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
            yield f"line {number}", row


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

MAX_NUMERIC_LEVELS = 10  # more distinct numeric grades than this is a continuous scale, not levels


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


def _generic_soft_label(path: Path, where: str, grade: str, grade_map: Mapping[str, float]) -> float:
    """A grade in the map takes its value; any other grade must be a number in [0, 1], used as is."""
    if grade in grade_map:
        return grade_map[grade]
    try:
        value = float(grade)
    except ValueError:
        if grade_map:
            return map_grade(path, where, grade, grade_map)  # raises, listing the known grades
        raise DataError(f"{path} {where}: grade {grade!r} is not a number and there is no grade map",
                        "use numbers in [0, 1], or map categories to numbers in data.grade_map") from None
    if not 0.0 <= value <= 1.0:
        raise DataError(f"{path} {where}: grade {grade} is outside [0, 1]",
                        "scale grades to [0, 1], or map them in data.grade_map")
    return value


def _generic_levels(grade_map: Mapping[str, float], judgments: Iterable[Judgment]) -> tuple[float, ...]:
    """The grade scale: the map's values plus the numeric grades seen and the ends of their [0, 1] scale.

    Numeric grades with more than MAX_NUMERIC_LEVELS distinct values are a continuous score, not levels:
    they get 0, 0.5, 1.
    """
    numeric = {j.soft_label for j in judgments if j.grade not in grade_map}
    if len(numeric) > MAX_NUMERIC_LEVELS:
        numeric = {0.5}
    levels = set(grade_map.values()) | numeric | ({0.0, 1.0} if numeric else set())
    if len(levels) < 2:
        levels |= {0.0, 1.0}
    return tuple(sorted(levels))


def _require_judgments(path: Path, judgments: list[Judgment]) -> None:
    if not judgments:
        raise DataError(f"{path} has no judgment rows", "check that it is the right file and not just a header")


def _known_product(path: Path, where: str, product_id: str, products: Mapping[str, object], catalog: Path) -> str:
    if product_id not in products:
        raise DataError(f"{path} {where}: product {product_id!r} is not in {catalog}",
                        "use judgments and catalog from the same export, or drop the row")
    return product_id


# --- Generic format: users' own judgments and catalog ---------------------------------------------------------------

GENERIC_COLUMNS = {"query", "product_id", "grade"}


def read_catalog(path: Path) -> dict[str, dict[str, str]]:
    """Product id -> text fields, from CSV/TSV, JSONL or Parquet.

    The key column is ``id`` (or ``product_id``); every other column is a text field. JSONL lines in Vespa
    feed form are unwrapped. Duplicate ids are an error: which text would the model read?
    """
    path = Path(path)
    products: dict[str, dict[str, str]] = {}
    for where, row in _iter_rows(path):
        row = _unwrap_feed(row)
        key = _id_column(path, where, row)
        product_id = _required_text(path, where, row, key)
        if product_id in products:
            raise DataError(f"{path} {where}: duplicate product id {product_id!r}", "make product ids unique")
        products[product_id] = {name: _text(value) for name, value in row.items() if name != key}
    if not products:
        raise DataError(f"{path} has no products", "check that it is the right file and not just a header")
    return products


def load_generic(judgments_path: Path, catalog_path: Path, grade_map: Mapping[str, float] | None = None) -> Dataset:
    """Users' own data: judgments (columns query, product_id, grade) plus a catalog (see :func:`read_catalog`).

    Either file is CSV/TSV, JSONL or Parquet, by suffix, UTF-8. A grade found in ``grade_map`` takes its
    value; any other grade must be a number in [0, 1] and is the soft label itself.
    """
    judgments_path, catalog_path = Path(judgments_path), Path(catalog_path)
    grades = _check_grade_map(grade_map or {})
    products = read_catalog(catalog_path)
    judgments = []
    for where, row in _iter_rows(judgments_path):
        _require_columns(judgments_path, row.keys(), GENERIC_COLUMNS, where)
        query = _required_text(judgments_path, where, row, "query")
        product_id = _known_product(judgments_path, where, _required_text(judgments_path, where, row, "product_id"),
                                    products, catalog_path)
        grade = _required_text(judgments_path, where, row, "grade")
        judgments.append(Judgment(query, product_id, grade, _generic_soft_label(judgments_path, where, grade, grades)))
    _require_judgments(judgments_path, judgments)
    return Dataset("generic", products, judgments, _generic_levels(grades, judgments))


# --- WANDS (Wayfair) ------------------------------------------------------------------------------------------------

WANDS_FILES = ("product.csv", "query.csv", "label.csv")
WANDS_PRODUCT_FIELDS = {
    "product_name": "title",
    "product_description": "description",
    "product_class": "product_class",
    "category hierarchy": "category",
    "product_features": "features",
}
_WANDS_HINT = "point data.path at the WANDS dataset/ folder (github.com/wayfair/WANDS)"


def load_wands(directory: Path, grade_map: Mapping[str, float] | None = None) -> Dataset:
    """WANDS: tab-separated ``product.csv``, ``query.csv`` and ``label.csv`` in ``directory``.

    The product name becomes ``title`` so the default template (fields: [title]) works unchanged.
    """
    directory = Path(directory)
    for name in WANDS_FILES:
        if not (directory / name).is_file():
            raise DataError(f"WANDS folder {directory} lacks {name}", _WANDS_HINT)
    grades = _check_grade_map(grade_map or WANDS_GRADES)
    products = _wands_products(directory / "product.csv")
    queries = _wands_queries(directory / "query.csv")
    path = directory / "label.csv"
    judgments = []
    for where, row in _iter_rows(path):
        _require_columns(path, row.keys(), {"query_id", "product_id", "label"}, where)
        query_id = _required_text(path, where, row, "query_id")
        if query_id not in queries:
            raise DataError(f"{path} {where}: query_id {query_id!r} is not in query.csv",
                            "use label.csv and query.csv from the same WANDS release")
        product_id = _known_product(path, where, _required_text(path, where, row, "product_id"), products,
                                    directory / "product.csv")
        grade = _required_text(path, where, row, "label")
        judgments.append(Judgment(queries[query_id], product_id, grade, map_grade(path, where, grade, grades)))
    _require_judgments(path, judgments)
    return Dataset("wands", products, judgments, _levels(grades))


def _wands_products(path: Path) -> dict[str, dict[str, str]]:
    """product_id -> the text fields models may read, renamed to the template's vocabulary."""
    products: dict[str, dict[str, str]] = {}
    for where, row in _iter_rows(path):
        _require_columns(path, row.keys(), {"product_id", "product_name"}, where)
        product_id = _required_text(path, where, row, "product_id")
        if product_id in products:
            raise DataError(f"{path} {where}: duplicate product_id {product_id!r}", "make product ids unique")
        products[product_id] = {name: _text(row.get(column)) for column, name in WANDS_PRODUCT_FIELDS.items()}
    return products


def _wands_queries(path: Path) -> dict[str, str]:
    """query_id -> query text."""
    queries: dict[str, str] = {}
    for where, row in _iter_rows(path):
        _require_columns(path, row.keys(), {"query_id", "query"}, where)
        queries[_required_text(path, where, row, "query_id")] = _required_text(path, where, row, "query")
    return queries


# --- ESCI (Amazon Shopping Queries) ---------------------------------------------------------------------------------

# Template field -> column names: the sample's JSONL first, the release's Parquet second.
ESCI_PRODUCT_FIELDS = {
    "title": ("title", "product_title"),
    "description": ("description", "product_description"),
    "bullets": ("bullets", "product_bullet_point"),
    "brand": ("brand", "product_brand"),
    "color": ("color", "product_color"),
}
_ESCI_HINT = "download shopping_queries_dataset_*.parquet from https://github.com/amazon-science/esci-data"


def load_esci(directory: Path, grade_map: Mapping[str, float] | None = None) -> Dataset:
    """ESCI: the release's examples + products Parquet files, or a judgments CSV + products JSONL (the sample).

    Only judged products are kept; an id listed in several locales keeps the text of the locale it was judged in.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"ESCI folder {directory} does not exist", "point data.path at the folder of ESCI files")
    judgments_path, products_path = _esci_files(directory)
    grades = _check_grade_map(grade_map or ESCI_GRADES)
    judgments, wanted = _esci_judgments(judgments_path, grades)
    products = _esci_products(products_path, wanted)
    for product_id, (where, _) in wanted.items():
        _known_product(judgments_path, where, product_id, products, products_path)
    return Dataset("esci", products, judgments, _levels(grades))


def _esci_files(directory: Path) -> tuple[Path, Path]:
    """(judgments, products) found by name: Parquet of the release first, else the sample's CSV and JSONL."""
    judgments = _one_file(directory, "*examples*.parquet") or _one_file(directory, "*.csv", skip="sources")
    products = _one_file(directory, "*products*.parquet") or _one_file(directory, "*.jsonl")
    if judgments is None:
        raise DataError(f"ESCI folder {directory} has no judgments file "
                        "(shopping_queries_dataset_examples.parquet or a .csv)", _ESCI_HINT)
    if products is None:
        raise DataError(f"ESCI folder {directory} has no products file "
                        "(shopping_queries_dataset_products.parquet or a .jsonl)", _ESCI_HINT)
    return judgments, products


def _one_file(directory: Path, pattern: str, skip: str | None = None) -> Path | None:
    """The single file matching ``pattern`` (None if none); several is ambiguous, so an error."""
    found = sorted(p for p in directory.glob(pattern) if p.is_file() and not (skip and skip in p.name))
    if len(found) > 1:
        raise DataError(f"{directory} holds several {pattern} files: {', '.join(p.name for p in found)}",
                        "keep only the one to load")
    return found[0] if found else None


def _esci_judgments(path: Path, grades: Mapping[str, float]) -> tuple[list[Judgment], dict[str, tuple[str, str]]]:
    """Judgments, and for each judged product the first row naming it and its locale."""
    judgments = []
    wanted: dict[str, tuple[str, str]] = {}
    for where, row in _iter_rows(path, columns=("query", "product_id", "product_locale", "esci_label")):
        _require_columns(path, row.keys(), {"query", "product_id", "esci_label"}, where)
        query = _required_text(path, where, row, "query")
        product_id = _required_text(path, where, row, "product_id")
        grade = _required_text(path, where, row, "esci_label")
        judgments.append(Judgment(query, product_id, grade, map_grade(path, where, grade, grades)))
        wanted.setdefault(product_id, (where, _text(row.get("product_locale")).strip()))
    _require_judgments(path, judgments)
    return judgments, wanted


def _esci_products(path: Path, wanted: Mapping[str, tuple[str, str]]) -> dict[str, dict[str, str]]:
    """Text fields of the judged products, in the locale they were judged in."""
    columns = ["id", "product_id", "locale", "product_locale"]
    columns += [c for names in ESCI_PRODUCT_FIELDS.values() for c in names]
    products: dict[str, dict[str, str]] = {}
    for where, row in _iter_rows(path, columns=columns):
        row = _unwrap_feed(row)
        product_id = _text(row.get(_id_column(path, where, row))).strip()
        if product_id not in wanted or product_id in products:
            continue
        locale, judged_locale = _text(row.get("locale", row.get("product_locale"))).strip(), wanted[product_id][1]
        if locale and judged_locale and locale != judged_locale:
            continue
        products[product_id] = {name: _first_text(row, names) for name, names in ESCI_PRODUCT_FIELDS.items()}
    return products


def _first_text(row: Row, names: Sequence[str]) -> str:
    return next((_text(row[n]) for n in names if n in row), "")


# --- Dispatch -------------------------------------------------------------------------------------------------------

DATASET_KINDS = ("homedepot", "wands", "esci", "generic")


def load_dataset(kind: str, path: Path, grade_map: Mapping[str, float] | None = None,
                 catalog: Path | None = None) -> Dataset:
    """The loader for ``data.kind``. Home Depot grades are rater means, so it ignores ``grade_map``."""
    if kind == "homedepot":
        return load_homedepot(path)
    if kind == "wands":
        return load_wands(path, grade_map)
    if kind == "esci":
        return load_esci(path, grade_map)
    if kind == "generic":
        if catalog is None:
            raise DataError("data kind 'generic' needs a catalog file",
                            "set data.catalog to the products CSV/JSONL/Parquet")
        return load_generic(path, catalog, grade_map)
    raise DataError(f"unknown data kind {kind!r}", f"use one of {', '.join(DATASET_KINDS)}")
