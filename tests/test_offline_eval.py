"""Offline evaluation: judged lists per split, real scorers (zip and checkpoint), result and pair files."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reranker_core.files import write_json_atomic
from reranker_core.template import ProductTemplate
from training.datasets import DataError, Dataset, Judgment, split_of
from training.evaluate import evaluate_offline, judged_lists, load_scorer
from training.metrics import evaluate_rankings
from training.models import ModelError, write_checkpoint
from training.onnx_scorer import OnnxZipScorer, ZipScorer
from training.pairs import SCHEMA, read_pairs, write_pairs
from training.student import CrossEncoder

from .conftest import tiny_cross_encoder

FRACTIONS = (0.5, 0.25, 0.25)
SALT = "test-salt"
TEMPLATE = ProductTemplate(fields=("title", "brand"), max_tokens=64)  # tiny_zip truncates at 64 as well


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _dataset() -> Dataset:
    products = {f"p{i}": {"title": f"product number {i}", "brand": f"brand{i % 3}"} for i in range(12)}
    judgments = [Judgment(f"query {q}", f"p{(q + k) % 12}", "g", (q + k) % 3 / 2)
                 for q in range(24) for k in range(3)]
    judgments += [Judgment(f"lonely {q}", "p0", "g", 1.0) for q in range(6)]  # one product: nothing to order
    return Dataset("toy", products, judgments)


def test_judged_lists_split_by_query_and_drop_single_products():
    ds = _dataset()
    multi = {f"query {q}" for q in range(24)}
    by_split = {s: judged_lists(ds, s, TEMPLATE, FRACTIONS, SALT) for s in ("train", "validation", "test")}
    assert all(by_split.values())  # 24 queries: every split gets some with these fractions and salt
    seen = [j.query for lists in by_split.values() for j in lists]
    assert sorted(seen) == sorted(multi)  # each multi-product query in exactly one split, lonely ones nowhere
    for split, lists in by_split.items():
        assert [j.query for j in lists] == sorted(j.query for j in lists)
        for j in lists:
            assert split_of(j.query, FRACTIONS, SALT) == split
            q = int(j.query.split()[1])
            assert j.product_ids == tuple(f"p{(q + k) % 12}" for k in range(3))
            assert j.labels == tuple((q + k) % 3 / 2 for k in range(3))
            assert j.texts[0] == f"product number {q % 12} | brand{q % 12 % 3}"
    capped = judged_lists(ds, "train", TEMPLATE, FRACTIONS, SALT, max_queries=2)
    assert capped == by_split["train"][:2]


@pytest.fixture(scope="module")
def student_checkpoint(tmp_path_factory, minilm_tokenizer) -> Path:
    """The same tiny model as conftest's tiny_zip, as a student checkpoint directory."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny-student"
    model = tiny_cross_encoder(minilm_tokenizer)

    def save(tmp: Path) -> None:
        model.save_pretrained(tmp)
        minilm_tokenizer.save_pretrained(tmp)

    write_checkpoint(path, save, {"role": "student", "name": "tiny-student", "template": TEMPLATE.to_dict()})
    return path


def test_evaluate_offline_reports_random_and_each_scorer(tiny_zip, student_checkpoint):
    lists = judged_lists(_dataset(), "train", TEMPLATE, FRACTIONS, SALT)
    zip_scorer, ckpt_scorer = load_scorer(tiny_zip), load_scorer(student_checkpoint)
    assert isinstance(zip_scorer, ZipScorer) and isinstance(ckpt_scorer, CrossEncoder)
    calls: list[tuple[str, int, int]] = []
    results = evaluate_offline([zip_scorer, ckpt_scorer], lists, ks=(5, 10),
                               progress=lambda name: lambda done, total: calls.append((name, done, total)))
    assert list(results) == ["random", "tiny.zip", "tiny-student"]
    n_pairs = sum(len(j.texts) for j in lists)
    assert ("tiny.zip", n_pairs, n_pairs) in calls and ("tiny-student", n_pairs, n_pairs) in calls
    for metrics in results.values():
        assert set(metrics) == {"ndcg@5", "ndcg@10", "mrr", "pairwise_accuracy", "queries"}
        assert metrics["queries"] == len(lists)

    onnx = OnnxZipScorer(tiny_zip)
    direct = evaluate_rankings([(j.labels, onnx.score(j.query, list(j.texts))) for j in lists], (5, 10))
    assert results["tiny.zip"] == pytest.approx(direct)
    # the checkpoint and its exported zip are the same model: same order, same metrics
    assert results["tiny-student"] == pytest.approx(results["tiny.zip"])


def test_load_scorer_refuses_a_directory_that_is_no_checkpoint(tmp_path):
    with pytest.raises(ModelError, match="not a reranker checkpoint"):
        load_scorer(tmp_path)


def test_write_json_atomic_creates_overwrites_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "deep" / "dir" / "results.json"
    write_json_atomic(target, {"b": 1, "a": [1.5, None]})
    assert json.loads(target.read_text()) == {"a": [1.5, None], "b": 1}
    write_json_atomic(target, {"c": "é"})
    assert json.loads(target.read_text(encoding="utf-8")) == {"c": "é"}
    with pytest.raises(TypeError):
        write_json_atomic(target, {"bad": object()})
    assert json.loads(target.read_text(encoding="utf-8")) == {"c": "é"}  # a failed write keeps the old file
    assert [p.name for p in target.parent.iterdir()] == ["results.json"]
    assert target.stat().st_mode & 0o777 == 0o644


def test_comparison_json_turns_nan_into_null(tmp_path):
    from training.bootstrap import compare, per_query

    nothing_relevant = per_query([([0.0, 0.0], [1.0, 2.0])])  # NDCG, MRR and pairwise accuracy are undefined
    data = compare({"a": nothing_relevant}, [("a", "a")], resamples=10).to_json()
    path = write_json_atomic(tmp_path / "offline.json", data, allow_nan=False)
    loaded = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert loaded["systems"]["a"]["mrr"] == [None, None, None] and loaded["queries"] == 1


PAIRS = [
    {"query": "drill", "product_id": "p1", "text": "cordless drill", "teacher_score": 2.5,
     "teacher_probs": [0.1, 0.2, 0.7], "teacher": "t1", "source": "judged", "label": 1.0},
    {"query": "drill", "product_id": "p2", "text": "garden hose", "teacher_score": -1.0, "teacher_probs": [0.9],
     "teacher": "t1", "source": "augmented", "rank": 3, "retrieval_score": 7.25, "query_frequency": 12},
]


def test_pairs_roundtrip_with_null_columns(tmp_path):
    path = write_pairs(tmp_path / "out" / "pairs.parquet", PAIRS)
    rows = read_pairs([path])
    assert len(rows) == 2 and list(rows[0]) == SCHEMA.names
    assert rows[0] == {**{name: None for name in SCHEMA.names}, **PAIRS[0]}  # absent columns come back null
    assert rows[1]["label"] is None and rows[1]["rank"] == 3 and rows[1]["query_frequency"] == 12
    assert rows[0]["rank"] is None and rows[0]["retrieval_score"] is None
    assert pq.read_schema(path).equals(SCHEMA)
    assert [p.name for p in path.parent.iterdir()] == ["pairs.parquet"]  # no temp file left behind

    write_pairs(tmp_path / "out" / "a.parquet", PAIRS[1:])
    (tmp_path / "out" / "notes.txt").write_text("ignored: not parquet")
    from_dir = read_pairs([tmp_path / "out"])
    assert [r["product_id"] for r in from_dir] == ["p2", "p1", "p2"]  # a.parquet, then pairs.parquet


def test_read_pairs_names_bad_files(tmp_path):
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_text("query,text\nfoo,bar\n")
    with pytest.raises(DataError, match="not a Parquet pairs file"):
        read_pairs([not_parquet])
    lacking = tmp_path / "lacking.parquet"
    pq.write_table(pa.table({"query": ["q"], "product_id": ["p"]}), lacking)
    with pytest.raises(DataError, match="lacks column.*teacher_score, text"):
        read_pairs([lacking])
    with pytest.raises(DataError, match="does not exist"):
        read_pairs([tmp_path / "absent.parquet"])


def test_zip_scorer_batches_across_queries_without_changing_a_pair_score(tiny_zip):
    # lengths differ a lot, so each length-sorted batch pads short pairs and reorders rows
    pairs = [(f"query {q}", " ".join(["drill"] * (1 + 7 * ((q * 5 + k) % 4))) + f" model {k}")
             for q in range(9) for k in range(5)]
    onnx = OnnxZipScorer(tiny_zip)
    alone = [onnx.score(q, [d])[0] for q, d in pairs]
    progress: list[tuple[int, int]] = []
    batched = ZipScorer(tiny_zip).score(pairs, batch_size=8, progress=lambda d, n: progress.append((d, n)))
    assert batched == pytest.approx(alone, rel=0, abs=1e-7)
    assert len(set(round(s, 6) for s in alone)) > 5  # distinct beyond the tolerance: a reordering bug would show
    assert progress[-1] == (len(pairs), len(pairs)) and len(progress) == 6
