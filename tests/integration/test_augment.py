"""Mine (query, product) pairs from real logs through the real node, labeled by a tiny real LLM teacher.

The teacher is a 2-layer Llama sequence classifier with random weights: it need not be good, only real,
so its scores can be checked against scoring the same prompts directly.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest

from reranker_core.config import AugmentConfig, DataConfig
from reranker_core.errors import ConfigError
from reranker_core.template import ProductTemplate
from reranker_plugin.jobs.augment import MANIFEST, PairScorer, augment
from reranker_plugin.jobs.catalog import index_catalog
from reranker_plugin.jobs.search import search
from reranker_plugin.node.assets import load_json
from training.datasets import DataError, normalize_query
from training.pairs import read_pairs
from training.teacher import Teacher

from .conftest import PRODUCTS

pytestmark = pytest.mark.integration

TEMPLATE = ProductTemplate()  # fields: [title]
TRAIN = ("drill kit", "white paint", "pipe wrench", "toilet flapper")
HELD_OUT = {"garden hose": "test", "cordless drill": "validation"}


@pytest.fixture(scope="module")
def teacher(minilm_tokenizer) -> Teacher:
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=minilm_tokenizer.vocab_size, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=256, num_labels=1, pad_token_id=minilm_tokenizer.pad_token_id)
    model = LlamaForSequenceClassification(config).eval()
    return Teacher(model, minilm_tokenizer, TEMPLATE, "binary", (0.0, 0.5, 1.0), name="tiny-teacher")


@pytest.fixture(scope="module")
def catalog_index(client):
    name = f"augment-test-{uuid.uuid4().hex[:8]}"
    report = index_catalog(client, name, [(f"p{i}", {"title": t}) for i, t in enumerate(PRODUCTS)], TEMPLATE)
    assert (report.indexed, report.failed) == (len(PRODUCTS), [])
    yield name
    client.indices.delete(index=name, ignore_unavailable=True)


@pytest.fixture
def ubi_index(client):
    name = f"ubi-augment-test-{uuid.uuid4().hex[:8]}"
    client.indices.create(index=name, body=load_json("ubi-queries-index.json"))
    yield name
    client.indices.delete(index=name, ignore_unavailable=True)


def bm25_hits(client, index: str, query: str, top_k: int):
    return search(client, index, query, TEMPLATE.fields, top_k, None)


def key(row) -> tuple[str, str]:
    return row["query"], row["product_id"]


def write_log(path, lines: list[str]):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_ubi_queries_become_deduplicated_teacher_labeled_top_k_pairs(client, catalog_index, ubi_index, teacher,
                                                                     tmp_path):
    # "Drill Kit" is logged first (oldest), so it is the spelling kept; its variants only add to its frequency.
    logged = [("Drill Kit", 1), ("white paint", 2), ("drill  KIT", 3), ("garden hose", 4), ("DRILL kit ", 5),
              ("White   Paint", 6), ("pipe wrench", 7), ("Garden Hose", 8), ("cordless drill", 9)]
    docs = [{"query_id": f"q{n}", "user_query": q, "timestamp": f"2025-01-0{n}T10:00:00Z", "client_id": "c1"}
            for q, n in logged]
    body = [line for doc in reversed(docs) for line in ({"index": {"_index": ubi_index}}, doc)]
    assert not client.bulk(body=body, refresh=True)["errors"]

    top_k = 5
    expected_hits = {q: bm25_hits(client, catalog_index, q, top_k) for q in ("Drill Kit", "white paint", "pipe wrench")}
    assert [len(hits) for hits in expected_hits.values()] == [top_k, top_k, 3]  # "pipe wrench" matches 3 products
    judged_id = expected_hits["white paint"][1].doc_id
    judged = {("white paint", judged_id), ("garden hose", "p15")}  # the second is in a held-out query anyway

    cfg = AugmentConfig(logs=(), ubi_index=ubi_index, top_k=top_k, queries_per_part=2, output=str(tmp_path / "out"))
    calls: list[tuple[int, int]] = []
    report = augment(client, catalog_index, cfg, DataConfig(), TEMPLATE, teacher, judged=judged,
                     progress=lambda done, total: calls.append((done, total)))

    rows = read_pairs([tmp_path / "out"])
    expected = {(q, h.doc_id) for q, hits in expected_hits.items() for h in hits} - {("white paint", judged_id)}
    assert len(rows) == len(expected) == 2 * top_k + 3 - 1
    assert {key(r) for r in rows} == expected  # exactly BM25's top-k, judged pair skipped, held-out queries absent
    assert {r["query"] for r in rows} == {"Drill Kit", "white paint", "pipe wrench"}
    assert {r["query"]: r["query_frequency"] for r in rows} == {"Drill Kit": 3, "white paint": 2, "pipe wrench": 1}

    for query, hits in expected_hits.items():
        by_id = {r["product_id"]: r for r in rows if r["query"] == query}
        for rank, hit in enumerate(hits, start=1):
            if hit.doc_id not in by_id:
                assert (query, hit.doc_id) == ("white paint", judged_id)
                continue
            row = by_id[hit.doc_id]
            assert row["rank"] == rank
            assert row["retrieval_score"] == pytest.approx(hit.score, rel=1e-6)
            assert row["text"] == hit.text
            assert (row["teacher"], row["source"], row["label"]) == ("tiny-teacher", "augmented", None)
    direct = teacher.score_with_distribution([(r["query"], r["text"]) for r in rows], batch_size=1)
    for row, (score, probs) in zip(rows, direct):
        assert row["teacher_score"] == pytest.approx(score, abs=1e-5)
        assert row["teacher_probs"] == pytest.approx(probs, abs=1e-5)
        assert len(row["teacher_probs"]) == 1 and 0.0 < row["teacher_probs"][0] < 1.0

    assert report.log_lines == len(logged) and report.malformed == 0 and report.malformed_samples == []
    assert (report.distinct_queries, report.excluded_eval_queries, report.queries) == (5, 2, 3)
    assert (report.parts_done_before, report.parts_written) == (0, 2)  # 3 queries, 2 per part
    assert report.pairs_written == report.pairs_total == len(rows)
    assert report.skipped_judged == 1
    assert report.output == str(tmp_path / "out")
    assert json.loads((tmp_path / "out" / "report.json").read_text())["pairs_total"] == len(rows)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        MANIFEST, "part-00000.parquet", "part-00001.parquet", "report.json"]
    assert calls and all(done <= total for done, total in calls)


def test_malformed_log_lines_are_reported_and_good_lines_still_mined(client, catalog_index, teacher, tmp_path):
    good = [json.dumps({"user_query": q}) for q in ("white paint", "pipe wrench", "White Paint")] * 6  # 18 lines
    log = write_log(tmp_path / "log.jsonl", [*good[:5], '{"user_query": "half a li', *good[5:11],
                                             json.dumps({"user_query": 42}), *good[11:]])
    cfg = AugmentConfig(logs=(str(log),), top_k=3, max_malformed_fraction=0.15, output=str(tmp_path / "ok"))
    report = augment(client, catalog_index, cfg, DataConfig(), TEMPLATE, teacher)

    assert (report.log_lines, report.malformed) == (20, 2)
    assert len(report.malformed_samples) == 2
    assert report.malformed_samples[0].startswith(f"{log}:6: invalid JSON (")  # the cut-off line
    assert report.malformed_samples[1] == f"{log}:13: user_query is not a string"
    rows = read_pairs([tmp_path / "ok"])
    assert {key(r) for r in rows} == {(q, h.doc_id) for q in ("white paint", "pipe wrench")
                                      for h in bm25_hits(client, catalog_index, q, 3)}
    assert {r["query"]: r["query_frequency"] for r in rows} == {"white paint": 12, "pipe wrench": 6}

    strict = replace(cfg, max_malformed_fraction=0.05, output=str(tmp_path / "strict"))
    with pytest.raises(DataError, match=r"2 of 20 query log lines are malformed \(10\.0% > 5\.0%\)"):
        augment(client, catalog_index, strict, DataConfig(), TEMPLATE, teacher)
    assert not list((tmp_path / "strict").glob("part-*.parquet"))


class Interrupted(RuntimeError):
    pass


class InterruptingTeacher(PairScorer):
    """The real teacher for the first ``allowed`` parts, then an interruption (as a crash or Ctrl-C would)."""

    def __init__(self, teacher: Teacher, allowed: int) -> None:
        self.teacher, self.allowed, self.calls = teacher, allowed, 0
        self.name = teacher.name  # same name: the resumed run must accept the parts it wrote

    def score_with_distribution(self, pairs, batch_size=32, progress=None):
        self.calls += 1
        if self.calls > self.allowed:
            raise Interrupted(f"interrupted at part {self.calls}")
        return self.teacher.score_with_distribution(pairs, batch_size, progress)


def sorted_rows(rows):
    return sorted(rows, key=key)


def test_interrupted_augment_resumes_without_duplicates(client, catalog_index, teacher, tmp_path):
    log = write_log(tmp_path / "log.jsonl", [json.dumps({"query": q}) for q in (*TRAIN, "drill kit", "garden hose")])
    out = tmp_path / "resumed"
    cfg = AugmentConfig(logs=(str(log),), top_k=4, queries_per_part=1, output=str(out))

    flaky = InterruptingTeacher(teacher, allowed=1)
    with pytest.raises(Interrupted):
        augment(client, catalog_index, cfg, DataConfig(), TEMPLATE, flaky)
    assert flaky.calls == 2
    assert sorted(p.name for p in out.glob("part-*")) == ["part-00000.parquet"]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no half-written temp file
    first_part = read_pairs([out])
    assert {r["query"] for r in first_part} == {"drill kit"}  # the most frequent query goes first

    report = augment(client, catalog_index, cfg, DataConfig(), TEMPLATE, teacher)
    assert (report.parts_done_before, report.parts_written, report.queries) == (1, 3, 4)
    resumed = read_pairs([out])
    assert report.pairs_total == len(resumed) == report.pairs_written + len(first_part)
    assert len({key(r) for r in resumed}) == len(resumed)  # no (query, product) twice

    fresh = augment(client, catalog_index, replace(cfg, output=str(tmp_path / "fresh")), DataConfig(), TEMPLATE,
                    teacher)
    assert (fresh.parts_done_before, fresh.parts_written, fresh.pairs_total) == (0, 4, len(resumed))
    expected = sorted_rows(read_pairs([tmp_path / "fresh"]))
    got = sorted_rows(resumed)
    assert [{k: v for k, v in r.items() if not k.startswith("teacher_")} for r in got] == \
        [{k: v for k, v in r.items() if not k.startswith("teacher_")} for r in expected]
    for a, b in zip(got, expected):
        assert a["teacher_score"] == pytest.approx(b["teacher_score"], abs=1e-6)
        assert a["teacher_probs"] == pytest.approx(b["teacher_probs"], abs=1e-6)

    again = augment(client, catalog_index, cfg, DataConfig(), TEMPLATE, teacher)  # all done: nothing new
    assert (again.parts_done_before, again.parts_written, again.pairs_total) == (4, 0, len(resumed))

    wider = replace(cfg, top_k=6)
    with pytest.raises(ConfigError, match="different log, index, template or teacher"):
        augment(client, catalog_index, wider, DataConfig(), TEMPLATE, teacher)
    assert sorted_rows(read_pairs([out])) == got  # the refused run touched nothing

    restarted = augment(client, catalog_index, wider, DataConfig(), TEMPLATE, teacher, restart=True)
    assert (restarted.parts_done_before, restarted.parts_written) == (0, 4)
    rows = read_pairs([out])
    assert {key(r) for r in rows} == {(q, h.doc_id) for q in TRAIN for h in bm25_hits(client, catalog_index, q, 6)}
    assert restarted.pairs_total == len(rows) == len({key(r) for r in rows})
    assert {normalize_query(r["query"]) for r in rows} == set(TRAIN)


def test_max_queries_keeps_the_most_frequent_and_reports_every_distinct_query(client, catalog_index, teacher,
                                                                               tmp_path):
    logged = ["toilet flapper", "white paint", "Drill Kit", "garden hose", "white paint", "drill kit", "White Paint",
              "pipe wrench", "Garden Hose"]
    log = write_log(tmp_path / "log.jsonl", [json.dumps({"user_query": q}) for q in logged])
    cfg = AugmentConfig(logs=(str(log),), top_k=2, max_queries=2, output=str(tmp_path / "out"))
    report = augment(client, catalog_index, cfg, DataConfig(), TEMPLATE, teacher)
    assert {r["query"]: r["query_frequency"] for r in read_pairs([tmp_path / "out"])} == {"white paint": 3,
                                                                                          "Drill Kit": 2}
    assert (report.distinct_queries, report.excluded_eval_queries, report.queries) == (5, 1, 2)
