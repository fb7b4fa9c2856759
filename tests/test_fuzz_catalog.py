"""Fuzzed catalogs (CSV and JSONL, as `index-catalog` and the generic loader read them): every product is read
with its text as written, or the file is refused in one DataError line naming file, row and fix."""
from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.datasets import DataError
from training.datasets.generic import read_catalog

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
product_id = st.text("abcdefghij0123456789-_", min_size=1, max_size=8)
catalog_rows = st.lists(st.fixed_dictionaries({"id": product_id, "title": text, "brand": text}), max_size=15,
                        unique_by=lambda r: r["id"])
defect = st.sampled_from([None, "empty id", "duplicate id"])


def _with_defect(rows: list[dict], kind: str | None) -> tuple[list[dict], int | None]:
    """The rows with one defect inserted, and the 1-based row index that must be named (None: no defect)."""
    if kind is None or not rows:
        return rows, None
    if kind == "empty id":
        return rows + [{"id": "  ", "title": "x", "brand": ""}], len(rows) + 1
    return rows + [dict(rows[0])], len(rows) + 1


def _read(raw: bytes, suffix: str):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"catalog{suffix}"
        path.write_bytes(raw)
        try:
            return path, read_catalog(path), None
        except DataError as err:
            return path, None, err


def _check(path, products, err, rows, bad_row, where):
    if bad_row is None and rows:
        assert err is None, str(err)
        assert products == {r["id"].strip(): {"title": r["title"], "brand": r["brand"]} for r in rows}
        return
    assert products is None and err is not None
    assert "\n" not in str(err) and str(path) in str(err) and err.fix
    if where:
        assert where in str(err)


@FUZZ
@given(rows=catalog_rows, kind=defect)
def test_jsonl_catalog_reads_every_product_or_names_the_row(rows, kind):
    rows, bad = _with_defect(rows, kind)
    path, products, err = _read("\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode(), ".jsonl")
    _check(path, products, err, rows, bad, f"line {bad}:" if bad else None)


@FUZZ
@given(rows=catalog_rows, kind=defect)
def test_csv_catalog_reads_every_product_or_names_the_row(rows, kind):
    rows, bad = _with_defect(rows, kind)
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, ["id", "title", "brand"], quoting=csv.QUOTE_ALL)
    writer.writeheader()
    writer.writerows(rows)
    path, products, err = _read(out.getvalue().encode("utf-8"), ".csv")
    _check(path, products, err, rows, bad, None)  # quoted line breaks make CSV line numbers physical lines
