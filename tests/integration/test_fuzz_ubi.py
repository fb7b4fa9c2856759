"""Fuzzed UBI `ubi_queries` documents in a real index: every document the cluster accepted comes back from the
reader as its query or as a counted malformed line — none lost, none invented."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reranker_plugin.jobs.ubi import iter_ubi_queries
from reranker_plugin.node.assets import load_json
from training.querylog import MalformedReport

pytestmark = pytest.mark.integration

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
user_query = st.one_of(text, st.just("   "), st.none(), st.integers(), st.booleans(), st.lists(text, max_size=2))
doc = st.fixed_dictionaries({"user_query": user_query}, optional={"query_id": st.text("abc123", max_size=6)})


@contextmanager
def _fuzzed_index(client, prefix: str, mapping: str, docs: list[dict]) -> Iterator[tuple[str, list[dict]]]:
    """A new index with the packaged ``mapping`` holding ``docs`` one by one, a millisecond apart (readers page
    oldest first); yields (index, the docs the cluster accepted), then deletes the index."""
    index = f"{prefix}-{uuid.uuid4().hex[:8]}"
    client.indices.create(index=index, body=load_json(mapping))
    try:
        accepted = []
        for i, source in enumerate(docs):
            body = {k: v for k, v in source.items() if v is not None}
            body["timestamp"] = 1_700_000_000_000 + i
            try:
                client.index(index=index, id=str(i), body=body)
                accepted.append(body)
            except Exception:  # noqa: BLE001 - a doc the mapping refuses never entered the log
                pass
        client.indices.refresh(index=index)
        yield index, accepted
    finally:
        client.indices.delete(index=index, ignore_unavailable=True)


def _expected(source: dict) -> str | None:
    value = source.get("user_query")
    return value.strip() if isinstance(value, str) and value.strip() else None


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(docs=st.lists(doc, max_size=25), batch_size=st.integers(1, 7))
def test_ubi_documents_come_back_as_queries_or_counted_malformed(client, docs, batch_size):
    with _fuzzed_index(client, "ubi-fuzz", "ubi-queries-index.json", docs) as (index, accepted):
        report = MalformedReport()
        lines = list(iter_ubi_queries(client, index, batch_size=batch_size))
        for line in lines:
            report.add(index, line)
        assert [line.query for line in lines] == [_expected(b) for b in accepted]
        assert report.total == len(accepted) and report.malformed == sum(_expected(b) is None for b in accepted)

def _good_event(source: dict) -> bool:
    """An independent statement of what the events reader accepts, for comparison with what it returns."""
    def text(v):
        return isinstance(v, str) and bool(v.strip())

    attributes = source.get("event_attributes") or {}
    ordinal = attributes.get("position", {}).get("ordinal")
    object_id = attributes.get("object", {}).get("object_id")
    return (text(source.get("action_name")) and text(source.get("query_id"))
            and (ordinal is None or (type(ordinal) is int and ordinal >= 0))
            and (object_id is None or text(object_id) or type(object_id) is int))


event = st.fixed_dictionaries(
    {"action_name": st.one_of(st.sampled_from(["click", "impression", " "]), st.none(), st.integers())},
    optional={"query_id": st.one_of(st.text("abc", max_size=3), st.none(), st.integers()),
              "event_attributes": st.fixed_dictionaries({
                  "object": st.fixed_dictionaries({}, optional={
                      "object_id": st.one_of(text, st.integers(0, 99), st.none())}),
                  "position": st.fixed_dictionaries({}, optional={
                      "ordinal": st.one_of(st.integers(-2, 30), st.sampled_from(["4", "x"]), st.booleans())})})})


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(docs=st.lists(event, max_size=20), batch_size=st.integers(1, 7))
def test_ubi_events_come_back_as_events_or_counted_malformed(client, docs, batch_size):
    from reranker_plugin.jobs.ubi_events import iter_ubi_events

    with _fuzzed_index(client, "ubi-events-fuzz", "ubi-events-index.json", docs) as (index, accepted):
        lines = list(iter_ubi_events(client, index, batch_size=batch_size))
        assert [line.event is not None for line in lines] == [_good_event(b) for b in accepted]
        assert all((line.event is None) != (line.error is None) for line in lines)
