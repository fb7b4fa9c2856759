"""Streaming query-log reader: good and malformed lines, CSV and JSONL, counting and the malformed threshold."""
from __future__ import annotations

import gzip
import json
import re

import pytest

from training.datasets import DataError
from training.querylog import LogLine, MalformedReport, QueryCounter, iter_log_file, iter_log_queries


def ubi(query: object, **extra: object) -> bytes:
    """One UBI ubi_queries document as a JSONL line."""
    doc = {"query_id": "q-1", "timestamp": "2025-01-01T00:00:00Z", "client_id": "c-1", "user_query": query, **extra}
    return (json.dumps(doc) + "\n").encode("utf-8")


def test_jsonl_good_and_malformed_lines(tmp_path):
    path = tmp_path / "ubi_queries.jsonl"
    path.write_bytes(b"".join([
        ubi("Cordless Drill"),
        b'{"user_query": "drill bits", \n',             # cut off by a crashed writer
        b"\n",                                           # blank: skipped, not counted
        b'["not", "an", "object"]\n',
        ubi("   "),
        ubi(42),
        b'{"timestamp": "2025-01-01"}\n',
        b'{"query": "fallback field"}\n',
        b'{"search_term": "home depot style"}\n',
        b'{"_source": {"user_query": "exported hit"}}\n',
        '{"user_query": "caf\xe9 table"}\n'.encode("latin-1"),
        ubi("café table"),
    ]))
    lines = list(iter_log_file(path))
    assert [line.line_no for line in lines] == [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert [line.query for line in lines if line.error is None] == [
        "Cordless Drill", "fallback field", "home depot style", "exported hit", "café table"]
    errors = {line.line_no: line.error for line in lines if line.error}
    assert errors[2].startswith("invalid JSON")
    assert errors[4] == "not a JSON object (list)"
    assert errors[5] == "empty user_query" and errors[6] == "user_query is not a string"
    assert errors[7] == "no user_query / query / search_term field"
    assert errors[11] == "not UTF-8"
    assert all((line.query is None) == (line.error is not None) for line in lines)


def test_custom_query_field_comes_first(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"q": "mine", "query": "other"}\n{"query": "only fallback"}\n', encoding="utf-8")
    assert [line.query for line in iter_log_file(path, query_field="q")] == ["mine", "only fallback"]


def test_csv_log_with_latin1_row_and_short_row(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes("timestamp,search_term\n1,cordless drill\n2,\"drill, bits\"\n3,caf\xe9\n4\n5,  \n6,paint\n"
                     .encode("latin-1"))
    lines = list(iter_log_file(path))
    assert lines == [LogLine(2, "cordless drill", None), LogLine(3, "drill, bits", None), LogLine(4, None, "not UTF-8"),
                     LogLine(5, None, "no search_term value"), LogLine(6, None, "empty search_term"),
                     LogLine(7, "paint", None)]


def test_gzipped_tsv_log(tmp_path):
    path = tmp_path / "log.tsv.gz"
    with gzip.open(path, "wb") as f:
        f.write("user_query\tclient_id\nlawn mower\tc1\n".encode("utf-8"))
    assert list(iter_log_file(path)) == [LogLine(2, "lawn mower", None)]


@pytest.mark.parametrize("name, content, message", [
    ("log.csv", "timestamp,text\n1,drill\n", "the CSV header has none of user_query, query, search_term"),
    ("log.parquet", "", "unsupported file type .parquet"),
    ("missing.jsonl", None, "does not exist"),
])
def test_unusable_logs_raise_at_once(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(message)):
        list(iter_log_file(path))


def test_query_counter_normalizes_and_orders():
    counter = QueryCounter()
    for query in ["Drill", "paint", "  drill ", "DRILL", "Paint", "axe", "   "]:
        counter.add(query)
    assert counter.items() == [("drill", 3), ("paint", 2), ("axe", 1)]
    assert counter.raw("drill") == "Drill" and counter.raw("paint") == "paint"
    assert len(counter) == 3 and counter.total == 6
    assert counter.add("  ") is None and counter.add("Axe  Handle") == "axe handle"


def test_report_counts_samples_and_checks(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"".join([ubi("ok")] * 3 + [b"{bad\n"] * 7))
    report = MalformedReport()
    assert list(iter_log_queries([path, path], report)) == ["ok"] * 6
    assert (report.total, report.malformed) == (20, 14)
    assert len(report.samples) == 5
    assert report.samples[0] == f"{path}:4: invalid JSON (Expecting property name enclosed in double quotes)"
    report.check(0.7)  # exactly at the threshold is allowed
    expected = f"14 of 20 query log lines are malformed (70.0% > 50.0%); first: {path}:4"
    with pytest.raises(DataError, match=re.escape(expected)) as err:
        report.check(0.5)
    assert "augment.max_malformed_fraction" in str(err.value)


def test_empty_report_passes_and_a_strict_threshold_still_bites(tmp_path):
    empty = MalformedReport()
    assert (empty.total, empty.fraction) == (0, 0.0)  # 0 of 0 is no malformed line, not NaN (NaN > x is False)
    empty.check(0.0)
    report = MalformedReport()
    for n in range(1, 1001):
        report.add(tmp_path / "log.jsonl", LogLine(n, "q", None))
    report.check(0.0)  # a clean log passes the strictest threshold
    report.add(tmp_path / "log.jsonl", LogLine(1001, None, "no query"))
    with pytest.raises(DataError, match="1 of 1001 query log lines are malformed"):
        report.check(0.0)
