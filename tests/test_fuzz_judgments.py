"""Fuzzed relevance judgments (generic format, CSV and JSONL): every row is loaded as written, or the file is
rejected with one DataError line naming the file, the row and a fix — never another exception, never a row dropped.
"""
from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.datasets import DataError, load_dataset

FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CATALOG = "id,title\np0,cordless drill\np1,white paint\np2,garden hose\n"

query_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                     min_size=1, max_size=30).filter(lambda s: s.strip())
good_row = st.fixed_dictionaries({
    "query": query_text, "product_id": st.sampled_from(["p0", "p1", "p2"]),
    "grade": st.floats(0, 1).map(lambda g: repr(round(g, 3)))})
# (what is wrong, the row): each must be refused with the file and row named
bad_row = st.one_of(
    st.builds(lambda r: ("empty query", {**r, "query": "  "}), good_row),
    st.builds(lambda r: ("unknown product", {**r, "product_id": "p404"}), good_row),
    st.builds(lambda r, g: ("grade outside [0, 1]", {**r, "grade": g}), good_row, st.sampled_from(["1.5", "-0.1"])),
    st.builds(lambda r, g: ("grade not a number", {**r, "grade": g}), good_row, st.sampled_from(["great", "", "n/a"])),
)
rows_with_at_most_one_defect = st.tuples(st.lists(good_row, min_size=1, max_size=12), st.none() | bad_row,
                                         st.lists(good_row, max_size=4))


def _load(judgments: bytes, suffix: str):
    with tempfile.TemporaryDirectory() as tmp:
        path, catalog = Path(tmp) / f"judgments{suffix}", Path(tmp) / "catalog.csv"
        path.write_bytes(judgments)
        catalog.write_text(CATALOG, encoding="utf-8")
        try:
            return path, load_dataset("generic", path, None, catalog), None
        except DataError as err:
            return path, None, err


def _check(path: Path, dataset, err, before: list[dict], bad, where: str | None) -> None:
    if bad is None:
        assert err is None, f"good file refused: {err}"
        got = [(j.query, j.product_id, j.soft_label) for j in dataset.judgments]
        assert got == [(r["query"].strip(), r["product_id"], float(r["grade"])) for r in before]
        return
    assert dataset is None and err is not None, f"{bad[0]} was accepted"
    message = str(err)
    assert "\n" not in message and str(path) in message and err.fix, message
    if where:
        assert where in message, message


@FUZZ
@given(parts=rows_with_at_most_one_defect)
def test_jsonl_judgments_load_exactly_or_name_the_bad_line(parts):
    before, bad, after = parts
    rows = before + ([bad[1]] if bad else []) + after
    body = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode("utf-8")
    path, dataset, err = _load(body, ".jsonl")
    _check(path, dataset, err, before + (after if bad is None else []), bad, f"line {len(before) + 1}:")


@FUZZ
@given(parts=rows_with_at_most_one_defect)
def test_csv_judgments_load_exactly_or_name_the_bad_line(parts):
    before, bad, after = parts
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, ["query", "product_id", "grade"], quoting=csv.QUOTE_ALL)
    writer.writeheader()
    writer.writerows(before + ([bad[1]] if bad else []) + after)
    path, dataset, err = _load(text.getvalue().encode("utf-8"), ".csv")
    _check(path, dataset, err, before + (after if bad is None else []), bad, None)  # quoted line breaks shift lines


@FUZZ
@given(parts=st.tuples(st.lists(good_row, max_size=8),
                       st.sampled_from([b"{\"query\": \"dri", b"[1, 2]", b"\"drill\"",
                                        b"{\"query\": \"caf\xe9\", \"product_id\": \"p0\", \"grade\": \"1\"}",
                                        b"{\"query\": \"drill \\ud800\", \"product_id\": \"p0\", \"grade\": \"1\"}"])))
def test_broken_jsonl_lines_are_named(parts):
    before, broken = parts
    body = b"\n".join([*(json.dumps(r).encode() for r in before), broken])
    path, dataset, err = _load(body, ".jsonl")
    _check(path, dataset, err, before, ("broken line", None), f"line {len(before) + 1}")


def test_missing_column_is_named_once():
    path, dataset, err = _load(b"query,product\ndrill,p0\n", ".csv")
    assert dataset is None and "lacks column" in str(err) and "grade" in str(err)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("generic", Path("/nonexistent/judgments.csv"), None, Path("/nonexistent/catalog.csv"))
