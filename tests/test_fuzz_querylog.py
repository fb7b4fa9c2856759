"""Fuzzed query logs: every generated line is either read as its query or counted as malformed, never lost.

Hypothesis writes JSONL and CSV logs mixing good lines with each kind of bad one
(truncated JSON, non-objects, missing or non-string fields, blank queries, bytes
that are not UTF-8, escaped lone surrogates) and checks the reader's count in =
queries out + malformed, with the queries in order and unchanged.
"""
from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.querylog import MalformedReport, iter_log_queries

FUZZ = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])

query_text = st.text(min_size=1, max_size=40).filter(lambda s: s.strip())
blank_text = st.sampled_from(["", " ", "\t", "  \u3000 "])


def _line(kind: str, value) -> tuple[bytes, str | None]:
    """One JSONL line and the query the reader must return (None: it must count the line as malformed)."""
    if kind == "good":
        return json.dumps({"user_query": value, "ts": 1}, ensure_ascii=False).encode(), value.strip()
    if kind == "wrapped":  # an OpenSearch export of ubi_queries
        return json.dumps({"_id": "x", "_source": {"user_query": value}}).encode(), value.strip()
    if kind == "fallback":
        return json.dumps({"query": value}).encode(), value.strip()
    if kind == "blank":
        return json.dumps({"user_query": value}).encode(), None
    if kind == "number":
        return json.dumps({"user_query": value}).encode(), None
    if kind == "missing":
        return json.dumps({"q": "drill"}).encode(), None
    if kind == "array":
        return json.dumps([value]).encode(), None
    if kind == "truncated":
        return json.dumps({"user_query": value}).encode()[:-2], None
    if kind == "latin1":
        return '{"user_query": "caf\xe9 \xe0 1"}'.encode("latin-1"), None
    if kind == "surrogate":
        return b'{"user_query": "drill \\ud800"}', None
    raise AssertionError(kind)


jsonl_line = st.one_of(
    st.tuples(st.sampled_from(["good", "wrapped", "fallback"]), query_text),
    st.tuples(st.just("blank"), blank_text),
    st.tuples(st.just("number"), st.integers() | st.floats(allow_nan=False) | st.booleans()),
    st.tuples(st.sampled_from(["missing", "array", "latin1", "surrogate"]), st.none()),
    st.tuples(st.just("truncated"), query_text),
).map(lambda kv: _line(*kv))


@FUZZ
@given(lines=st.lists(jsonl_line | st.just((b"   ", "skip")), max_size=30))
def test_jsonl_log_lines_are_read_or_counted_never_lost(lines):
    body = b"\n".join(raw for raw, _ in lines)
    expected = [q for _, q in lines if q not in (None, "skip")]
    counted = [q for _, q in lines if q != "skip"]  # blank lines are not log lines
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.jsonl"
        path.write_bytes(body)
        report = MalformedReport()
        got = list(iter_log_queries([path], report))
    assert got == expected
    assert report.total == len(counted) == len(got) + report.malformed
    assert all(q.encode("utf-8") for q in got)  # every query can be sent on as UTF-8


csv_value = st.one_of(
    query_text.map(lambda q: (q, q.strip())),
    blank_text.map(lambda b: (b, None)),
    st.just(("caf\udce9", None)),  # a latin-1 byte in a UTF-8 file, as surrogateescape reads it
)


@FUZZ
@given(rows=st.lists(csv_value, max_size=30))
def test_csv_log_rows_are_read_or_counted_never_lost(rows):
    text = io.StringIO(newline="")
    writer = csv.writer(text, quoting=csv.QUOTE_ALL)
    writer.writerow(["timestamp", "user_query"])
    for value, _ in rows:
        writer.writerow(["2026-01-01", value])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.csv"
        path.write_bytes(text.getvalue().encode("utf-8", errors="surrogateescape"))
        report = MalformedReport()
        got = list(iter_log_queries([path], report))
    assert got == [q for _, q in rows if q is not None]
    assert report.total == len(rows) == len(got) + report.malformed
