"""WANDS (Wayfair ANnotation DataSet): tab-separated product, query and label files."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .base import (DataError, Dataset, Judgment, _check_grade_map, _iter_rows, _known_product, _levels,
                   _require_columns, _require_judgments, _required_text, _text, map_grade)

WANDS_GRADES = {"Exact": 1.0, "Partial": 0.5, "Irrelevant": 0.0}

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
