"""UBI event files: good and malformed events (JSONL, gzip, Parquet), the join to ubi_queries, the limit."""
from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.datasets import DataError
from training.ubievents import (EventLine, UbiEvent, event_report, iter_event_file, join_events, parse_event,
                                query_texts_from_file)


def click(query_id="q1", object_id="p1", ordinal=0, action="click", **extra):
    return {"action_name": action, "query_id": query_id, "client_id": "c1", "timestamp": "2025-01-01T00:00:00Z",
            "event_attributes": {"object": {"object_id": object_id, "object_id_field": "product_id"},
                                 "position": {"ordinal": ordinal}}, **extra}


def test_a_ubi_event_keeps_the_fields_implicit_judgments_need():
    line = parse_event(1, {"_source": click(action=" Click ", ordinal=3, application="shop")})
    assert line == EventLine(1, UbiEvent("click", "q1", "p1", "product_id", 3, "c1", "2025-01-01T00:00:00Z", "shop"),
                             None)
    assert parse_event(2, click(object_id=17)).event.object_id == "17"  # numeric ids: the keyword text
    page_view = parse_event(3, {"action_name": "page_view", "query_id": "q1"}).event
    assert (page_view.object_id, page_view.position) == (None, None)


@pytest.mark.parametrize("record, error", [
    ([1], "not a JSON object (list)"),
    ({"query_id": "q1"}, "missing action_name (query_id q1)"),
    (click(action="  "), "empty action_name (query_id q1)"),
    (click(query_id=None), "missing query_id (click event)"),
    (click(query_id=5), "query_id is not a string (int) (click event)"),
    (click(ordinal="3"), "event_attributes.position.ordinal '3' is not an integer >= 0 (query_id q1)"),
    (click(ordinal=-1), "event_attributes.position.ordinal -1 is not an integer >= 0 (query_id q1)"),
    (click(ordinal=True), "event_attributes.position.ordinal True is not an integer >= 0 (query_id q1)"),
    (click(object_id=["p1"]), "event_attributes.object.object_id is not a string (list) (query_id q1)"),
    ({**click(), "event_attributes": "x"}, "event_attributes is not an object (query_id q1)"),
    ({**click(), "timestamp": {"t": 1}}, "timestamp is neither a date string nor epoch millis (query_id q1)"),
    (click(object_id="\ud800"), "a string is not valid Unicode"),
])
def test_a_malformed_event_says_which_field_and_which_search(record, error):
    assert parse_event(7, record) == EventLine(7, None, error)


def test_jsonl_gzip_events_join_their_queries_and_count_every_line(tmp_path):
    path = tmp_path / "events.jsonl.gz"
    lines = [json.dumps(click("q1", "p1", 0)), "{not json", "", json.dumps(click("q2", "p2", 1)),
             json.dumps(click("q-unknown")), json.dumps({"action_name": "click"})]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode() + b"\xff\xfe\n"))
    report = event_report()
    joined = list(join_events(iter_event_file(path), {"q1": "drill", "q2": "paint"}, path, report))
    assert [(j.query, j.event.object_id, j.event.position) for j in joined] == [("drill", "p1", 0), ("paint", "p2", 1)]
    assert (report.total, report.malformed) == (6, 4)  # the blank line is no event
    assert report.samples == [f"{path}:2: invalid JSON (Expecting property name enclosed in double quotes)",
                              f"{path}:5: query_id q-unknown has no ubi_queries doc (click event)",
                              f"{path}:6: missing query_id (click event)", f"{path}:7: not UTF-8"]
    with pytest.raises(DataError, match=r"4 of 6 UBI events are malformed \(66.7% > 50.0%\); first: .*events.jsonl"
                                        r".gz:2: invalid JSON.* — .*clicks.max_malformed_fraction"):
        report.check(0.5)


def test_parquet_events_with_nested_attributes_read_as_json_ones(tmp_path):
    path = tmp_path / "events.parquet"
    records = [click("q1", "p1", 0), click("q1", "p2", 1, action="impression"),
               {"action_name": "click", "query_id": "q1"}]
    pq.write_table(pa.Table.from_pylist(records), path)
    lines = list(iter_event_file(path))
    assert [line.event for line in lines] == [parse_event(n, r).event for n, r in enumerate(records, start=1)]
    assert all(line.error is None for line in lines)


def test_a_file_that_cannot_be_read_at_all_fails_before_any_line(tmp_path):
    with pytest.raises(DataError, match="UBI events file .*nothing.jsonl does not exist"):
        iter_event_file(tmp_path / "nothing.jsonl")
    (tmp_path / "events.txt").write_text("{}")
    with pytest.raises(DataError, match=r"unsupported file type \.txt — use one of .*\.parquet"):
        iter_event_file(tmp_path / "events.txt")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="broken.parquet is not a readable Parquet file"):
        iter_event_file(tmp_path / "broken.parquet")


def test_query_exports_map_query_ids_to_text_first_doc_wins(tmp_path):
    path = tmp_path / "queries.jsonl"
    docs = [{"query_id": "q1", "user_query": " drill "}, {"_source": {"query_id": "q2", "user_query": "paint"}},
            {"query_id": "q1", "user_query": "replayed"}, {"query_id": "q3"}, {"user_query": "no id"}]
    path.write_text("\n".join(json.dumps(d) for d in docs) + "\n", encoding="utf-8")
    report = event_report()
    assert query_texts_from_file(path, report) == {"q1": "drill", "q2": "paint"}
    assert (report.total, report.malformed) == (5, 2)
    assert report.samples == [f"{path}:4: missing user_query (query_id q3)", f"{path}:5: missing query_id"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(st.one_of(
    st.binary(max_size=30).filter(lambda b: b"\n" not in b and b"\r" not in b),
    st.builds(lambda r: json.dumps(r).encode(), st.fixed_dictionaries(
        {"action_name": st.sampled_from(["click", "", 3])},
        optional={"query_id": st.sampled_from(["q1", "q2", "", None]),
                  "event_attributes": st.fixed_dictionaries({"position": st.fixed_dictionaries(
                      {"ordinal": st.one_of(st.integers(-1, 3), st.text(max_size=2))})})}))), max_size=20))
def test_every_non_blank_line_is_one_event_or_one_counted_malformed_line(tmp_path, records):
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"".join(r + b"\n" for r in records))
    report = event_report()
    joined = list(join_events(iter_event_file(path), {"q1": "drill"}, path, report))
    lines = [r.removeprefix(b"\xef\xbb\xbf") if i == 0 else r for i, r in enumerate(records)]  # a BOM is no event
    assert report.total == sum(1 for r in lines if r.strip())
    assert report.total - report.malformed == len(joined)
    assert all(j.event.query_id == "q1" for j in joined)
