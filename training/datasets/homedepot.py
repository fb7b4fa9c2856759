"""Home Depot (Kaggle *Home Depot Product Search Relevance*): rater means on 1..3 over product titles."""
from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

from .base import DataError, Dataset, Judgment, _require_columns


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
