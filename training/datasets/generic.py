"""Generic format: users' own judgments (query, product_id, grade) and catalog, as CSV/TSV, JSONL or Parquet."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from .base import (DataError, Dataset, Judgment, _check_grade_map, _id_column, _iter_rows, _known_product,
                   _require_columns, _require_judgments, _required_text, _text, _unwrap_feed, map_grade)

MAX_NUMERIC_LEVELS = 10  # more distinct numeric grades than this is a continuous scale, not levels


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
