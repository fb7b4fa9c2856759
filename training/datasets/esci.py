"""ESCI (Amazon Shopping Queries): the release's Parquet files, or the sample's judgments CSV + products JSONL."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from .base import (DataError, Dataset, Judgment, Row, _check_grade_map, _id_column, _iter_rows, _known_product, _levels,
                   _require_columns, _require_judgments, _required_text, _text, _unwrap_feed, map_grade)

ESCI_GRADES = {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}

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
