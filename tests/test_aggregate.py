"""Progressive aggregation on tiny real models: plain + behaviour cross-encoders + implicit view, one teacher."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from reranker_core.config import TeacherConfig
from reranker_core.template import ProductTemplate
from training.aggregate import behaviour_examples
from training.behaviour import OWN_MARK, BehaviourInputs, build_context
from training.datasets import split_of
from training.evaluate import JudgedList
from training.student import StudentExample

from .conftest import tiny_cross_encoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FRACTIONS, SALT = (0.8, 0.1, 0.1), "reranker"
TEMPLATE = ProductTemplate(max_tokens=48)
WORDS = ["drill", "lamp", "saw", "tile", "fan", "door", "mower", "grill", "shed", "ladder", "sink", "cordless drill",
         "vacuums", "faucets"]
TRAIN = [w for w in WORDS if split_of(w, FRACTIONS, SALT) == "train"]
VALIDATION = [w for w in WORDS if split_of(w, FRACTIONS, SALT) == "validation"]


def title(query: str, j: int) -> str:
    return f"{query} deluxe model {j}"


@pytest.fixture(scope="module")
def setup(tmp_path_factory, minilm_tokenizer):
    root = tmp_path_factory.mktemp("aggregate")
    tiny_cross_encoder(minilm_tokenizer).save_pretrained(root / "tiny-bert")
    minilm_tokenizer.save_pretrained(root / "tiny-bert")
    products = {f"{q}/{j}": {"title": title(q, j)} for q in WORDS for j in range(3)}
    # clicks on every query's first product, held-out queries included: the context must drop those
    labels = {(q, f"{q}/0"): 0.6 for q in WORDS} | {(q, f"{q}/2"): 0.0 for q in WORDS}
    context = build_context(labels, products, TEMPLATE, FRACTIONS, SALT, top_n=2, neighbours=2)
    human = [StudentExample(q, title(q, j), soft, soft) for q in TRAIN for j, soft in enumerate((1.0, 0.5, 0.0))]
    validation = [JudgedList(q, tuple(f"{q}/{j}" for j in range(3)), tuple(title(q, j) for j in range(3)),
                             (1.0, 0.5, 0.0)) for q in VALIDATION]
    return root, context, human, validation


def test_the_fixture_has_training_and_validation_queries():
    assert len(TRAIN) >= 6 and VALIDATION == ["sink", "cordless drill", "vacuums", "faucets"]


def test_training_inputs_carry_training_behaviour_only(setup, minilm_tokenizer):
    _, context, human, _ = setup
    stray = [StudentExample("cordless drill", title("drill", 0), 1.0)]  # a held-out row, were one ever passed
    examples = behaviour_examples(human + stray, BehaviourInputs(context, minilm_tokenizer, TEMPLATE.max_tokens))
    assert [(e.text, e.target, e.label) for e in examples] == [(e.text, e.target, e.label) for e in human + stray]
    assert examples[-1].query == "cordless drill"  # plain
    assert all(e.query.startswith(h.query + OWN_MARK) for e, h in zip(examples, human))
    for e in examples:
        assert len(minilm_tokenizer(e.query, e.text)["input_ids"]) <= TEMPLATE.max_tokens
        assert not any(title(q, 0) in e.query for q in VALIDATION)  # no held-out click anywhere


def test_a_query_whose_behaviour_is_cut_per_product_stays_one_list(setup, minilm_tokenizer):
    """A long product leaves less room for behaviour, so one query's rows get different query sides; they must
    still be batched and ranked as one list (a list per row would lose RankNet and multiply the steps)."""
    from training.student import query_batches

    _, context, _, _ = setup
    query = TRAIN[0]
    rows = [StudentExample(query, title(query, 0) + " with" * n, 1.0 - n / 40, None) for n in (0, 18, 30)]
    examples = behaviour_examples(rows, BehaviourInputs(context, minilm_tokenizer, TEMPLATE.max_tokens))
    assert len({e.query for e in examples}) > 1  # the cut differs per product (else this test checks nothing)
    assert {e.list_key for e in examples} == {query}
    assert query_batches(examples, 1, 0) == [[0, 1, 2]]


def test_the_aggregated_teacher_trains_fits_on_plain_validation_and_scores_as_its_sum(setup, tmp_path):
    from training.ensemble import load_teacher, train_ensemble_teacher
    from training.models import read_meta
    from training.onnx_scorer import ZipScorer

    root, context, human, validation = setup
    cfg = TeacherConfig(kind="ensemble", model=str(root / "tiny-bert"), max_steps=2, queries_per_batch=2,
                        output=str(tmp_path / "teacher"), behaviour="neighbours", implicit_judgments="clicks.json",
                        implicit_view_weight=0.5)
    train_ensemble_teacher(cfg, TEMPLATE, human, validation, Path(cfg.output), device="cpu", behaviour=context)
    out = Path(cfg.output)
    meta = read_meta(out)
    assert [m["kind"] for m in meta["members"]] == ["cross_encoder", "behaviour_cross_encoder", "implicit"]
    found = meta["behaviour"]
    assert found["validation_pairs_plain"] == found["validation_pairs"] == 3 * len(VALIDATION)
    assert found["training_pairs_with_behaviour"] == len(human) and found["dropped_held_out"] == len(VALIDATION)
    assert set(meta["views"]) == {"plain (validation)", "behaviour (validation, plain input)",
                                  "plain + behaviour (validation)",
                                  "implicit (training queries with clicks, vs human labels)"}
    # the clicked first product (soft 0.6) above the skipped third (0.0), the unjudged second at the mean
    assert meta["views"]["implicit (training queries with clicks, vs human labels)"]["pairwise_accuracy"] == 1.0
    assert meta["fits"]["behaviour"]["fit_on"] == "validation, plain input"
    assert meta["fits"]["implicit"]["weight"] == 0.5 and meta["fits"]["implicit"]["fit_on"].startswith("not fit")
    saved = json.loads((out / "behaviour.json").read_text())
    assert set(saved["engaged"]) == set(TRAIN) and not set(saved["implicit"]) - set(TRAIN)
    parity = read_meta(out / "behaviour_encoder")["parity_examples"]
    assert all(OWN_MARK in q for q, _ in parity)  # the behaviour encoder learned from behaviour inputs
    assert not Path(f"{cfg.output}.behaviour.checkpoint").exists()

    teacher = load_teacher(out)
    plain_q, held_q = TRAIN[0], VALIDATION[0]
    pairs = [(plain_q, title(plain_q, 0)), (plain_q, title(plain_q, 1)), (held_q, title(held_q, 0))]
    behaviour = teacher.scorers[1]
    fed = behaviour.inputs(pairs)
    assert fed[2] == pairs[2] and fed[0][0].startswith(plain_q + OWN_MARK)  # validation: plain input
    base = ZipScorer(out / "cross_encoder.zip").score(pairs)
    view = ZipScorer(out / "behaviour_encoder.zip").score(fed)
    b, i = teacher.members[1], teacher.members[2]
    implicit = [0.6, i.mean, i.mean]  # clicked; unjudged; held out: the mean, adding nothing
    expected = [s + b.coefficient * (v - b.mean) + i.coefficient * (m - i.mean)
                for s, v, m in zip(base, view, implicit)]
    assert i.coefficient > 0
    assert teacher.score(pairs) == pytest.approx(expected, abs=1e-5)


def plain_and_behaviour(setup, tmp_path: Path) -> TeacherConfig:
    """A plain teacher in tmp_path/plain and a behaviour teacher in tmp_path/b reusing its cross-encoder; returns
    the behaviour teacher's config."""
    import dataclasses

    from training.ensemble import train_ensemble_teacher

    root, context, human, validation = setup
    plain = TeacherConfig(kind="ensemble", model=str(root / "tiny-bert"), max_steps=2, queries_per_batch=2,
                          output=str(tmp_path / "plain"))
    train_ensemble_teacher(plain, TEMPLATE, human, validation, tmp_path / "plain", device="cpu")
    both = dataclasses.replace(plain, output=str(tmp_path / "b"), behaviour="neighbours",
                               implicit_judgments="clicks.json", plain_from=str(tmp_path / "plain"))
    train_ensemble_teacher(both, TEMPLATE, human, validation, tmp_path / "b", device="cpu", behaviour=context)
    return both


def test_the_behaviour_teacher_reuses_a_plain_teachers_cross_encoder_only_when_trained_the_same(setup, tmp_path):
    import dataclasses
    import shutil

    from training.ensemble import train_ensemble_teacher
    from training.models import ModelError, read_meta

    _, context, human, validation = setup
    both = plain_and_behaviour(setup, tmp_path)
    reused, trained = tmp_path / "b" / "cross_encoder", tmp_path / "plain" / "cross_encoder"
    assert (reused / "model.safetensors").read_bytes() == (trained / "model.safetensors").read_bytes()
    assert read_meta(reused)["fingerprint"] == read_meta(trained)["fingerprint"]
    assert [m["kind"] for m in read_meta(tmp_path / "b")["members"]][:2] == ["cross_encoder", "behaviour_cross_encoder"]
    assert (tmp_path / "b" / "behaviour_encoder.zip").is_file()
    older = tmp_path / "older"  # a teacher trained before fingerprints were recorded
    shutil.copytree(tmp_path / "plain", older)
    meta = json.loads((older / "cross_encoder/reranker.json").read_text())
    del meta["fingerprint"]
    (older / "cross_encoder/reranker.json").write_text(json.dumps(meta))
    for changed, why in ((dataclasses.replace(both, max_steps=3), "other settings"),
                         (dataclasses.replace(both, plain_from=str(tmp_path / "none")), "no ensemble"),
                         (dataclasses.replace(both, plain_from=str(older)), "no training fingerprint")):
        with pytest.raises(ModelError, match=why):
            train_ensemble_teacher(dataclasses.replace(changed, output=str(tmp_path / "c")), TEMPLATE, human,
                                   validation, tmp_path / "c", device="cpu", behaviour=context)
        assert not (tmp_path / "c").exists()  # refused before anything is written


def test_the_behaviour_teacher_reads_its_plain_scores_from_the_plain_teachers_pool_after_a_check(setup, tmp_path):
    from training.ensemble import load_teacher
    from training.models import ModelError

    human = setup[2]
    plain_and_behaviour(setup, tmp_path)
    pool = [(e.query, e.text) for e in human]
    known = dict(zip(pool, load_teacher(tmp_path / "plain").score(pool)))  # the plain teacher's labels
    unseen = [(TRAIN[0], "a product the pool lacks"), (VALIDATION[0], title(VALIDATION[0], 1))]
    expected = load_teacher(tmp_path / "b").score(pool + unseen)

    teacher = load_teacher(tmp_path / "b")
    teacher.reuse_plain_scores(known)
    encoder = teacher.scorers[0].scorer
    asked: list = []
    original = encoder.score
    encoder.score = lambda pairs, *a, **k: asked.extend(pairs) or original(pairs, *a, **k)
    assert teacher.score(pool + unseen) == pytest.approx(expected, abs=1e-5)
    assert asked == unseen  # the plain encoder ran on the pairs the pool lacks only

    for wrong, why in (({p: s + 0.01 for p, s in known.items()}, "differ"), ({}, "no labeled pairs")):
        with pytest.raises(ModelError, match=why):
            load_teacher(tmp_path / "b").reuse_plain_scores(wrong)


def test_a_warm_started_behaviour_encoder_starts_from_the_plain_cross_encoder_for_its_own_epochs(
        setup, tmp_path, monkeypatch):
    import training.student as student
    from training.ensemble import train_ensemble_teacher
    from training.models import read_meta

    root, context, human, validation = setup
    starts: list[tuple[str, bytes | None]] = []  # (init path, its weights' bytes when training began)
    from_base = student.CrossEncoder.from_base

    def spy(model, *args, **kwargs):
        weights = Path(model) / "model.safetensors"
        starts.append((str(model), weights.read_bytes() if weights.is_file() else None))
        return from_base(model, *args, **kwargs)

    monkeypatch.setattr(student.CrossEncoder, "from_base", staticmethod(spy))
    out = tmp_path / "teacher"
    cfg = TeacherConfig(kind="ensemble", model=str(root / "tiny-bert"), epochs=1.0, queries_per_batch=2,
                        output=str(out), behaviour="neighbours", implicit_judgments="clicks.json",
                        behaviour_warm_start=True, behaviour_epochs=0.5)
    train_ensemble_teacher(cfg, TEMPLATE, human, validation, out, device="cpu", behaviour=context)
    (plain_init, _), (behaviour_init, weights) = starts
    assert plain_init == str(root / "tiny-bert") and Path(behaviour_init).name == "cross_encoder"
    assert weights == (out / "cross_encoder" / "model.safetensors").read_bytes()  # the trained plain encoder
    assert 0 < read_meta(out / "behaviour_encoder")["steps"] < read_meta(out / "cross_encoder")["steps"]
    assert {k: read_meta(out)["behaviour"][k] for k in ("warm_start", "epochs")} == {"warm_start": True, "epochs": 0.5}


def test_the_cli_chain_exports_clicks_trains_the_behaviour_teacher_and_labels_plain_pairs(setup, tmp_path):
    """implicit-judgments -> train-teacher --behaviour neighbours -> label: the pairs the student reads are plain."""
    import pyarrow.parquet as pq
    import yaml
    from click.testing import CliRunner

    from reranker_plugin.cli import cli

    root = setup[0]
    catalog = [{"id": f"{q}/{j}", "title": title(q, j)} for q in WORDS for j in range(3)]
    (tmp_path / "catalog.jsonl").write_text("".join(json.dumps(c) + "\n" for c in catalog))
    (tmp_path / "judgments.csv").write_text("query,product_id,grade\n" + "".join(
        f"{q},{q}/{j},{g}\n" for q in WORDS for j, g in enumerate((1.0, 0.5, 0.0))))
    queries, events = [], []
    for n, q in enumerate(WORDS):  # every query clicked its first product, held-out ones included
        queries.append({"query_id": f"s{n}", "user_query": q})
        for rank, action in ((0, "impression"), (0, "click"), (1, "impression")):
            events.append({"action_name": action, "query_id": f"s{n}", "event_attributes": {
                "object": {"object_id": f"{q}/{rank}", "object_id_field": "product_id"},
                "position": {"ordinal": rank}}})
    (tmp_path / "q.jsonl").write_text("".join(json.dumps(x) + "\n" for x in queries))
    (tmp_path / "e.jsonl").write_text("".join(json.dumps(x) + "\n" for x in events))
    config = {"data": {"kind": "generic", "path": str(tmp_path / "judgments.csv"),
                       "catalog": str(tmp_path / "catalog.jsonl")},
              "template": {"fields": ["title"], "max_tokens": 48},
              "teacher": {"kind": "ensemble", "model": str(root / "tiny-bert"), "max_steps": 2,
                          "queries_per_batch": 2, "output": str(tmp_path / "teacher")},
              "clicks": {"output": str(tmp_path / "clicks/judgments.json")}}
    (tmp_path / "reranker.yaml").write_text(yaml.safe_dump(config))

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--config", str(tmp_path / "reranker.yaml"), *args])
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    assert "held-out queries excluded" in run("implicit-judgments", "--events", str(tmp_path / "e.jsonl"),
                                              "--queries", str(tmp_path / "q.jsonl"))
    out = run("train-teacher", "--behaviour", "neighbours", "--implicit-judgments",
              str(tmp_path / "clicks/judgments.json"))
    assert f"{len(TRAIN)} training queries with clicks" in out and "view behaviour: weight" in out
    assert "view implicit: weight 0.0 (not fit" in out and "plain + behaviour (validation): NDCG@5" in out
    run("label", str(tmp_path / "teacher"), "--out", str(tmp_path / "pairs.parquet"))
    rows = pq.read_table(tmp_path / "pairs.parquet").to_pylist()
    assert {r["query"] for r in rows} == set(TRAIN) and all(OWN_MARK not in r["query"] for r in rows)
    assert {r["text"] for r in rows} == {title(q, j) for q in TRAIN for j in range(3)}


def test_run_swaps_in_the_behaviour_teacher_only_with_behaviour():
    from reranker_core.config import Config
    from reranker_plugin.jobs.main_job import with_behaviour

    config = Config()
    assert with_behaviour(config, None) is config  # the default main job is unchanged
    changed = with_behaviour(config, "index")
    assert (changed.teacher.behaviour, changed.teacher.implicit_judgments) == ("neighbours", config.clicks.output)
    assert changed.student == config.student and changed.teacher.output == config.teacher.output
