"""Judgments and query-level splits shared by teacher, student and evaluation.

Graded human labels become soft targets in [0, 1]; splits are decided per query
by a hash, so no query appears in two splits and re-runs give the same split.
"""
from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from reranker_plugin.errors import RerankerError

SPLITS = ("train", "validation", "test")


class DataError(RerankerError):
    """A dataset file is missing, malformed or wrongly encoded."""

    exit_code = 2


@dataclass(frozen=True)
class Judgment:
    """One human-graded (query, product) pair; ``soft_label`` in [0, 1]."""

    query: str
    product_id: str
    product_text: str
    grade: float
    soft_label: float


def split_of(query: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), salt: str = "reranker") -> str:
    """Deterministic split for a query (normalized: case and spaces do not matter)."""
    key = " ".join(query.lower().split())
    bucket = int.from_bytes(hashlib.sha256(f"{salt}:{key}".encode()).digest()[:8], "big") / 2**64
    if bucket < fractions[0]:
        return SPLITS[0]
    return SPLITS[1] if bucket < fractions[0] + fractions[1] else SPLITS[2]


def homedepot_soft_label(relevance: float) -> float:
    """Mean rater grade on 1..3 mapped linearly to [0, 1]."""
    return min(1.0, max(0.0, (relevance - 1.0) / 2.0))


def load_homedepot(path: Path) -> list[Judgment]:
    """Home Depot ``train.csv`` (or its zip): latin-1, columns product_uid, product_title, search_term, relevance."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Home Depot file {path} does not exist", "point --data at train.csv or train.csv.zip")
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                text = zf.read("train.csv").decode("latin-1")
        else:
            text = path.read_bytes().decode("latin-1")
    except (zipfile.BadZipFile, KeyError) as err:
        raise DataError(f"{path} is not a zip holding train.csv", "use the Kaggle train.csv.zip") from err
    reader = csv.DictReader(io.StringIO(text))
    required = {"product_uid", "product_title", "search_term", "relevance"}
    missing = required - set(reader.fieldnames or [])
    if missing:
        raise DataError(f"{path} lacks column(s) {', '.join(sorted(missing))}", f"expected {', '.join(sorted(required))}")
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
        judgments.append(Judgment(query, row["product_uid"], row["product_title"], grade, homedepot_soft_label(grade)))
    return judgments
