"""The student on a tiny real BERT (random weights, the real MiniLM tokenizer): training, batching, export."""
from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pytest
import torch

from reranker_core.config import StudentConfig
from reranker_core.errors import ModelZipError
from reranker_core.model_zip import validate_zip
from reranker_core.template import ProductTemplate
from training.export import export_student, quantize_int8
from training.models import read_meta
from training.onnx_scorer import OnnxZipScorer
from training.models import ModelError
from training.student import MAX_CANDIDATES, CrossEncoder, StudentExample, query_batches, train_student

from .conftest import tiny_cross_encoder

TEMPLATE = ProductTemplate(max_tokens=32)
WORDS = ["drill", "paint", "hose", "lamp", "saw", "rug", "fan", "mat", "sink", "tile"]
# Each query sees two products, each as a "genuine" and a "generic" offer of the same length. The teacher prefers
# "genuine" by a margin of 3 and adds a large per-query offset, which within-query margins must ignore.
SEEN = {(w, WORDS[(i + d) % 10]) for i, w in enumerate(WORDS) for d in (1, 4)}
MARGIN_EXAMPLES = [StudentExample(w, f"{o} {kind}", 10.0 * WORDS.index(w) + bonus)
                   for w, o in sorted(SEEN, key=lambda p: (WORDS.index(p[0]), WORDS.index(p[1])))
                   for kind, bonus in (("genuine", 3.0), ("generic", 0.0))]
HELD_OUT = [(w, o) for w in WORDS for o in WORDS if (w, o) not in SEEN]  # query-product combinations never trained


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory, minilm_tokenizer) -> Path:
    path = tmp_path_factory.mktemp("tiny-bert")
    tiny_cross_encoder(minilm_tokenizer).save_pretrained(path)
    minilm_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def margin_student(tiny_bert, tmp_path_factory):
    """A student distilled with margin-MSE for 40 steps (shared by the training, export and int8 tests)."""
    out = tmp_path_factory.mktemp("student") / "student"
    cfg = StudentConfig(model=str(tiny_bert), layers=None, output=str(out), max_steps=40, queries_per_batch=4,
                        learning_rate=3e-3)
    return train_student(cfg, TEMPLATE, MARGIN_EXAMPLES, device="cpu", provenance={"pairs": "synthetic"})


def _held_out_pairs() -> list[tuple[str, str]]:
    return [p for w, o in HELD_OUT for p in ((w, f"{o} genuine"), (w, f"{o} generic"))]


def test_margin_mse_distillation_learns_the_teachers_order(margin_student):
    report = margin_student
    assert report.steps == 40 and report.examples == 40 and report.queries == 10
    meta = read_meta(report.path)
    assert meta["role"] == "student" and meta["loss"] == "margin_mse" and meta["pairs"] == "synthetic"
    losses = meta["losses"]
    assert len(losses) == 40 and losses[0] == pytest.approx(report.first_loss)
    # untrained: student margins ~0, so each query's error is 3² on 4 of its 6 pairs (genuine vs generic) = 6
    assert losses[0] == pytest.approx(6.0, rel=0.05)
    assert report.last_loss < 0.5 * report.first_loss

    student = CrossEncoder.load(report.path)
    assert student.template == TEMPLATE
    scores = student.score(_held_out_pairs(), batch_size=7)
    right = sum(scores[2 * i] > scores[2 * i + 1] for i in range(len(HELD_OUT)))
    assert right >= 0.9 * len(HELD_OUT)  # unseen (query, product) combinations ordered like the teacher would


def test_pointwise_training_on_soft_labels_lowers_the_loss(tiny_bert, tmp_path):
    examples = [StudentExample(e.query, e.text, 1.0 if "genuine" in e.text else 0.0) for e in MARGIN_EXAMPLES]
    cfg = StudentConfig(model=str(tiny_bert), layers=None, output=str(tmp_path / "pointwise"), loss="pointwise", max_steps=30,
                        queries_per_batch=4, learning_rate=3e-3, rank_weight=0.0)
    report = train_student(cfg, TEMPLATE, examples, device="cpu")
    losses = read_meta(report.path)["losses"]
    assert losses[0] == pytest.approx(0.693, abs=0.05)  # BCE of a near-zero logit
    assert sum(losses[-5:]) / 5 < 0.6 * losses[0]
    assert read_meta(report.path)["loss"] == "pointwise"


def test_query_batches_keep_queries_whole_are_seeded_and_capped():
    examples = [StudentExample("big", f"item {i}", 0.0) for i in range(MAX_CANDIDATES + 8)]
    examples += [StudentExample(q, f"{q} {k}", 0.0) for q in "abcde" for k in range(3)]
    batches = query_batches(examples, queries_per_batch=2, seed=5)
    assert len(batches) == 3  # 6 queries, 2 per batch
    seen_queries: list[str] = []
    for batch in batches:
        assert len(batch) == len(set(batch))
        queries = {examples[i].query for i in batch}
        assert len(queries) <= 2
        seen_queries += sorted(queries)
        for q in queries:
            rows = [i for i in batch if examples[i].query == q]
            expected = [i for i, e in enumerate(examples) if e.query == q]
            if q == "big":
                assert len(rows) == MAX_CANDIDATES and set(rows) <= set(expected)
            else:
                assert sorted(rows) == expected  # a small query comes whole
    assert sorted(seen_queries) == ["a", "b", "big", "c", "d", "e"]  # each query in exactly one batch
    assert query_batches(examples, 2, seed=5) == batches
    assert len({str(query_batches(examples, 2, seed=s)) for s in range(8)}) > 1


def test_export_student_checks_parity_on_recorded_training_pairs(margin_student, tmp_path):
    meta = read_meta(margin_student.path)
    recorded = [tuple(p) for p in meta["parity_examples"]]
    assert recorded == [(e.query, e.text) for e in MARGIN_EXAMPLES[:32]]

    report = export_student(margin_student.path, tmp_path / "student.zip")
    assert report.max_abs_diff <= 1e-4 and report.pairs_checked == 32
    artifact = validate_zip(report.path)
    assert artifact.max_length == TEMPLATE.max_tokens

    student = CrossEncoder.load(margin_student.path)
    q, texts = HELD_OUT[0][0], [t for _, t in _held_out_pairs()[:2]]
    assert OnnxZipScorer(report.path).score(q, texts) == pytest.approx(student.score([(q, t) for t in texts]),
                                                                       abs=1e-4)


def test_export_student_refuses_a_checkpoint_without_parity_pairs(margin_student, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(margin_student.path, copy)
    meta = read_meta(copy)
    meta["parity_examples"] = []
    (copy / "reranker.json").write_text(json.dumps(meta))
    with pytest.raises(ModelZipError, match="no example pairs"):
        export_student(copy, tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()


def _ranks(values: list[float]) -> list[int]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0] * len(values)
    for rank, i in enumerate(order):
        ranks[i] = rank
    return ranks


def test_int8_zip_is_valid_smaller_and_ranks_like_fp32(margin_student, tmp_path):
    fp32 = export_student(margin_student.path, tmp_path / "fp32.zip").path
    int8 = quantize_int8(fp32, tmp_path / "int8.zip")
    assert (validate_zip(fp32).precision, validate_zip(int8).precision) == ("fp32", "int8")  # shown by `models list`
    assert int8.stat().st_size < 0.5 * fp32.stat().st_size  # weights to 8 bits: about a quarter

    a, b = OnnxZipScorer(fp32), OnnxZipScorer(int8)
    docs = lambda o: [f"{o} genuine", f"{o} generic", o, f"genuine {o} kit"]  # noqa: E731
    fa = [s for w, o in HELD_OUT for s in a.score(w, docs(o))]
    fb = [s for w, o in HELD_OUT for s in b.score(w, docs(o))]
    assert fa != fb  # quantization did change the weights
    assert statistics.correlation(_ranks(fa), _ranks(fb)) > 0.9  # Spearman
    assert all((fa[4 * i] > fa[4 * i + 1]) == (fb[4 * i] > fb[4 * i + 1]) for i in range(len(HELD_OUT)))


def _term_at_first_step(init: Path, examples: list[StudentExample], tmp_path: Path, weight: str, **cfg) -> float:
    """The first step's loss with ``weight`` = 1 minus with 0: same batch (all 10 queries), model and dropout."""
    first = {}
    for w in (0.0, 1.0):
        out = tmp_path / f"{Path(init).name}-{weight}-{w}"
        config = StudentConfig(model=str(init), layers=None, output=str(out), max_steps=1, queries_per_batch=10,
                               **cfg, **{weight: w})
        first[w] = read_meta(train_student(config, TEMPLATE, examples, device="cpu").path)["losses"][0]
    return first[1.0] - first[0.0]


def _trained_scores(student: Path, examples: list[StudentExample]):
    import torch

    return torch.tensor(CrossEncoder.load(student).score([(e.query, e.text) for e in examples]))


def test_human_term_is_the_bce_against_the_labels(tiny_bert, margin_student, tmp_path):
    import torch
    import torch.nn.functional as F

    # margins alone leave each query's level free; the human term (BCE on labeled rows) pins the labeled ones
    examples = [StudentExample(e.query, e.text, e.target, 1.0 if "genuine" in e.text else 0.0)
                for e in MARGIN_EXAMPLES]
    # an untrained model scores near 0: the term is the BCE at p = 0.5, log 2 (~0.69) at any label — its scale
    assert _term_at_first_step(tiny_bert, examples, tmp_path, "human_weight") == pytest.approx(0.693, abs=0.05)
    # the distilled student already puts "genuine" above "generic": the term must be the BCE of its scores against
    # these labels, far from the BCE against the inverted ones (dropout in training mode: "closer", not "equal")
    scores, labels = _trained_scores(margin_student.path, examples), torch.tensor([e.label for e in examples])
    right = F.binary_cross_entropy_with_logits(scores, labels).item()
    inverted = F.binary_cross_entropy_with_logits(scores, 1 - labels).item()
    assert abs(inverted - right) > 0.5, (right, inverted)
    term = _term_at_first_step(margin_student.path, examples, tmp_path, "human_weight")
    assert abs(term - right) < abs(term - inverted) / 3, (term, right, inverted)


def test_rank_term_adds_within_query_ranknet_to_the_pointwise_loss(tiny_bert, margin_student, tmp_path):
    import torch

    from training.losses import WithinQueryRankNetLoss

    examples = [StudentExample(e.query, e.text, 1.0 if "genuine" in e.text else 0.0) for e in MARGIN_EXAMPLES]
    # an untrained model with near-equal scores: RankNet adds about log 2 at any target — its scale
    term = _term_at_first_step(tiny_bert, examples, tmp_path, "rank_weight", loss="pointwise")
    assert term == pytest.approx(0.693, abs=0.05)
    # from a student that already ranks "genuine" first, RankNet against these targets is far below RankNet
    # against the inverted ones; the trainer's term must be the former
    scores, targets = _trained_scores(margin_student.path, examples), torch.tensor([e.target for e in examples])
    groups = torch.tensor([WORDS.index(e.query) for e in examples])
    right = WithinQueryRankNetLoss()(scores, targets, groups).item()
    inverted = WithinQueryRankNetLoss()(scores, 1 - targets, groups).item()
    assert abs(inverted - right) > 0.5, (right, inverted)
    term = _term_at_first_step(margin_student.path, examples, tmp_path, "rank_weight", loss="pointwise")
    assert abs(term - right) < abs(term - inverted) / 3, (term, right, inverted)


def test_max_pairs_budget_sets_the_number_of_steps(tiny_bert, tmp_path):
    # 40 examples over 10 queries in batches of 4, 4, 2 queries: 40 pairs per epoch in 3 steps
    cfg = StudentConfig(model=str(tiny_bert), layers=None, output=str(tmp_path / "budget"), queries_per_batch=4, max_pairs=80)
    report = train_student(cfg, TEMPLATE, MARGIN_EXAMPLES, device="cpu")
    meta = read_meta(report.path)
    assert report.steps == 6 and meta["pairs_seen"] == 80


def test_layers_cut_the_encoder_to_evenly_spaced_layers_that_train_and_export(minilm_tokenizer, tmp_path):
    import torch

    deep = tmp_path / "deep"
    source = tiny_cross_encoder(minilm_tokenizer, layers=4)
    source.save_pretrained(deep)
    minilm_tokenizer.save_pretrained(deep)
    cut = CrossEncoder.from_base(str(deep), TEMPLATE, layers=2).model
    assert cut.config.num_hidden_layers == 2 and len(cut.bert.encoder.layer) == 2
    for kept, original in ((0, 0), (1, 3)):  # first and last layers survive
        assert torch.equal(cut.bert.encoder.layer[kept].output.dense.weight,
                           source.bert.encoder.layer[original].output.dense.weight)
    cfg = StudentConfig(model=str(deep), layers=2, output=str(tmp_path / "small"), max_steps=3, queries_per_batch=4)
    report = train_student(cfg, TEMPLATE, MARGIN_EXAMPLES, device="cpu")
    assert CrossEncoder.load(report.path).model.config.num_hidden_layers == 2
    export_student(report.path, tmp_path / "small.zip")
    assert validate_zip(tmp_path / "small.zip").hf_config["num_hidden_layers"] == 2
    with pytest.raises(ModelError, match="has 4"):
        CrossEncoder.from_base(str(deep), TEMPLATE, layers=5)


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_where_an_uninterrupted_one_does(tiny_bert, tmp_path):
    from safetensors.torch import load_file

    class Killed(Exception):
        pass

    def kill_at_5(done, total):
        if done == 5:
            raise Killed

    # 3 batches per epoch, 7 steps: the kill (after the step-4 checkpoint) and the resume fall inside epoch 2
    cfg = StudentConfig(model=str(tiny_bert), layers=None, output=str(tmp_path / "resumed"), max_steps=7, queries_per_batch=4,
                        learning_rate=3e-3)
    ckpt = tmp_path / "resumed.checkpoint"
    with pytest.raises(Killed):
        train_student(cfg, TEMPLATE, MARGIN_EXAMPLES, progress=kill_at_5, device="cpu", checkpoint=ckpt,
                      checkpoint_every=2)
    assert json.loads((ckpt / "state.json").read_text())["step"] == 4
    assert not (tmp_path / "resumed").exists()

    changed = StudentConfig(**{**cfg.__dict__, "learning_rate": 1e-3})
    with pytest.raises(ModelError, match="another config"):
        train_student(changed, TEMPLATE, MARGIN_EXAMPLES, device="cpu", checkpoint=ckpt, resume=True)

    broken = tmp_path / "broken.checkpoint"  # a crash while the files were written: one line naming the fix
    shutil.copytree(ckpt, broken)
    (broken / "trainable.pt").write_bytes((broken / "trainable.pt").read_bytes()[:100])
    with pytest.raises(ModelError, match="unreadable") as unreadable:
        train_student(cfg, TEMPLATE, MARGIN_EXAMPLES, device="cpu", checkpoint=broken, resume=True)
    assert unreadable.value.fix == f"rerun with --restart (or delete {broken}) to start over"

    ckpt.rename(tmp_path / ".resumed.checkpoint.old")  # killed between a save's two renames: the old one counts
    resumed = train_student(cfg, TEMPLATE, MARGIN_EXAMPLES, device="cpu", checkpoint=ckpt, checkpoint_every=2,
                            resume=True)
    straight = train_student(StudentConfig(**{**cfg.__dict__, "output": str(tmp_path / "straight")}), TEMPLATE,
                             MARGIN_EXAMPLES, device="cpu")
    assert resumed.resumed_from == 4 and resumed.steps == straight.steps == 7
    a, b = read_meta(resumed.path), read_meta(straight.path)
    assert a["pairs_seen"] == b["pairs_seen"] and a["losses"] == pytest.approx(b["losses"], rel=1e-5)
    weights, reference = (load_file(p / "model.safetensors") for p in (resumed.path, straight.path))
    assert max((weights[k] - reference[k]).abs().max().item() for k in reference) < 1e-6

    assert json.loads((ckpt / "state.json").read_text())["step"] == 7  # the last step is saved too: killed while
    again = train_student(cfg, TEMPLATE, MARGIN_EXAMPLES, device="cpu", checkpoint=ckpt, resume=True)  # writing
    assert again.resumed_from == 7 and read_meta(again.path)["losses"] == a["losses"]


def test_bf16_precision_trains_under_autocast_and_keeps_fp32_weights(tiny_bert, tmp_path):
    from safetensors import safe_open

    losses, paths = {}, {}
    for precision in ("fp32", "bf16"):
        cfg = StudentConfig(model=str(tiny_bert), layers=None, output=str(tmp_path / precision), max_steps=10, queries_per_batch=4,
                            learning_rate=3e-3, precision=precision)
        paths[precision] = train_student(cfg, TEMPLATE, MARGIN_EXAMPLES, device="cpu").path
        losses[precision] = read_meta(paths[precision])["losses"]
    # the same first batch through the same weights: bf16 rounds the arithmetic, so close but not equal
    assert losses["bf16"][0] != losses["fp32"][0]
    assert losses["bf16"][0] == pytest.approx(losses["fp32"][0], rel=0.05)
    assert all(loss == loss and loss < 1e6 for loss in losses["bf16"])  # finite
    with safe_open(str(paths["bf16"] / "model.safetensors"), "pt") as weights:
        assert {str(weights.get_tensor(name).dtype) for name in weights.keys()} == {"torch.float32"}


def test_the_validation_curve_is_measured_at_evenly_spaced_steps_and_kept(tiny_bert, tmp_path):
    seen = []

    def measure(student: CrossEncoder) -> dict:
        seen.append(student.score([("drill", "drill genuine"), ("drill", "saw generic")]))
        return {"ndcg@5": float(len(seen)), "pairwise_accuracy": 0.5}

    cfg = StudentConfig(model=str(tiny_bert), layers=None, output=str(tmp_path / "curve"), max_steps=8,
                        queries_per_batch=4, learning_rate=1e-3)
    report = train_student(cfg, TEMPLATE, MARGIN_EXAMPLES, device="cpu", curve=measure, curve_points=4)
    curve = read_meta(report.path)["curve"]
    assert [p["step"] for p in curve] == [2, 4, 6, 8] and [p["ndcg@5"] for p in curve] == [1.0, 2.0, 3.0, 4.0]
    assert curve[-1]["pairs_seen"] == read_meta(report.path)["pairs_seen"]
    assert seen[0] != seen[-1]  # training went on between measurements (in train mode again after each)


def test_perturbed_twins_cover_a_seeded_share_of_queries_with_one_text_each():
    from training.student import perturbed_twins

    rows = [StudentExample(q, f"{p} offer", 1.0) for q in ("cordless drill kit", "garden hose 50 ft", "x")
            for p in ("a", "b")]
    assert perturbed_twins(rows, 0.0, 0.3, seed=1) == []
    twins = perturbed_twins(rows, 1.0, 1.0, seed=1)
    assert twins == perturbed_twins(rows, 1.0, 1.0, seed=1)
    assert [k for k, _ in twins] == [0, 1, 2, 3]  # "x": no family changes a one-letter query
    assert twins[0][1] == twins[1][1] != rows[0].query and twins[2][1] == twins[3][1] != rows[2].query
    half = [len({rows[k].query for k, _ in perturbed_twins(rows, 0.5, 1.0, seed=s)}) for s in range(200)]
    assert 0.7 < statistics.mean(half) < 1.3  # about half of the two changeable queries


def test_contrastive_term_pulls_a_twin_to_its_clean_pair_and_ignores_its_own_querys_other_products():
    import torch

    from training.student import contrastive

    clean = torch.eye(4)  # rows 0, 1: query 0; rows 2, 3: query 1
    groups = torch.tensor([0, 0, 1, 1])
    matched = contrastive(torch.cat([clean, clean[[0]]]), [0], groups)
    assert matched.item() < 1e-3
    wrong_query = contrastive(torch.cat([clean, clean[[2]]]), [0], groups)
    assert wrong_query.item() > 5
    # like its own query's other product: that product is no negative, so the loss is that of orthogonal vectors
    own_query = contrastive(torch.cat([clean, clean[[1]]]), [0], groups)
    assert own_query.item() == pytest.approx(torch.log(torch.tensor(3.0)).item(), abs=1e-4)


def test_robust_training_adds_perturbed_lists_and_the_contrastive_term(tiny_bert, tmp_path):
    import math

    plain = _term_at_first_step(tiny_bert, MARGIN_EXAMPLES, tmp_path, "robust_share", robust_strength=1.0)
    # an untrained student's margins are ~0: a perturbed list's error is the clean list's, so the mean stays ~6
    assert abs(plain) < 0.6
    term = _term_at_first_step(tiny_bert, MARGIN_EXAMPLES, tmp_path / "c", "contrastive_weight", robust_share=1.0,
                               robust_strength=1.0)
    # an untrained encoder's [CLS] vectors are alike: InfoNCE near log(1 + other queries' pairs) = log(37)
    assert 1.0 < term < math.log(37) + 0.5
    report = train_student(StudentConfig(model=str(tiny_bert), layers=None, output=str(tmp_path / "robust"),
                                         max_steps=5, queries_per_batch=4, robust_share=0.5,
                                         contrastive_weight=0.1), TEMPLATE, MARGIN_EXAMPLES, device="cpu")
    meta = read_meta(report.path)
    assert meta["steps"] == 5 and meta["pairs_seen"] == 16 + 16 + 8 + 16 + 16  # clean pairs only: batches of
    # 4, 4 and 2 of the 10 queries, 4 pairs each


def test_an_anchored_contrastive_term_moves_only_the_perturbed_vectors(tiny_bert, tmp_path):
    import torch

    from training.student import contrastive

    groups = torch.tensor([0, 0, 1, 1])
    grads = {}
    for anchored in (False, True):
        cls = torch.randn(5, 8, generator=torch.Generator().manual_seed(0), requires_grad=True)  # 4 clean + 1 twin
        value = contrastive(cls, [0], groups, anchored=anchored)
        value.backward()
        grads[anchored] = (value.item(), cls.grad)
    assert grads[True][0] == pytest.approx(grads[False][0])  # the same loss value
    assert grads[False][1][:4].abs().sum() > 0 and grads[True][1][:4].abs().sum() == 0  # clean rows: no gradient
    assert torch.allclose(grads[True][1][4], grads[False][1][4])  # the twin moves the same way
    cfg = dict(model=str(tiny_bert), layers=None, max_steps=3, queries_per_batch=4, robust_share=1.0,
               robust_strength=1.0, contrastive_weight=1.0, learning_rate=3e-3)
    both = read_meta(train_student(StudentConfig(output=str(tmp_path / "b"), **cfg), TEMPLATE, MARGIN_EXAMPLES,
                                   device="cpu").path)["losses"]
    anchored = read_meta(train_student(StudentConfig(output=str(tmp_path / "a"), contrastive_anchored=True, **cfg),
                                       TEMPLATE, MARGIN_EXAMPLES, device="cpu").path)["losses"]
    assert both[0] == pytest.approx(anchored[0]) and both[2] != anchored[2]  # same start, other updates (step 0: warmup)


def test_train_student_takes_the_steps_of_a_plain_loop(tiny_bert, tmp_path):
    """Four pointwise steps (3 batches of whole queries per epoch, so the fourth starts epoch 1's order) equal
    :func:`tests.test_loop.reference_training` on the same model and batches."""
    from safetensors.torch import load_file

    from training.losses import SoftTargetCrossEntropyLoss

    from .test_loop import reference_training

    examples = [StudentExample(e.query, e.text, 1.0 if "genuine" in e.text else 0.0) for e in MARGIN_EXAMPLES]
    cfg = StudentConfig(model=str(tiny_bert), layers=None, output=str(tmp_path / "s"), max_steps=4,
                        queries_per_batch=4, learning_rate=3e-3, loss="pointwise", rank_weight=0.0)
    report = train_student(cfg, TEMPLATE, examples, device="cpu")

    torch.manual_seed(cfg.seed)
    student = CrossEncoder.from_base(cfg.model, TEMPLATE)
    steps = [query_batches(examples, 4, cfg.seed + epoch) for epoch in range(2)]
    assert [len(s) for s in steps] == [3, 3]
    steps = steps[0] + steps[1][:1]

    def micro_loss(batch: list[int]) -> torch.Tensor:
        logits = student.logits([examples[i].query for i in batch], [examples[i].text for i in batch]).float()
        return SoftTargetCrossEntropyLoss()(logits, torch.tensor([examples[i].target for i in batch]))

    student.model.train()
    expected = reference_training(student.model.parameters(), [[lambda b=b: micro_loss(b)] for b in steps],
                                  cfg.learning_rate, warmup=1, total=4)
    meta = read_meta(report.path)
    assert meta["losses"] == pytest.approx(expected, abs=1e-6) and meta["pairs_seen"] == sum(map(len, steps))
    saved = load_file(report.path / "model.safetensors")
    assert max((saved[k] - v).abs().max().item() for k, v in student.model.state_dict().items() if k in saved) < 1e-6


def test_adversarial_epsilon_attaches_fgm_to_the_students_word_embeddings(tiny_bert, tmp_path):
    """The loop's FGM arithmetic is checked in test_loop; here, that the config reaches it."""
    import torch
    from safetensors.torch import load_file

    from training.student import student_objective

    cfg = dict(model=str(tiny_bert), layers=None, max_steps=3, queries_per_batch=4, learning_rate=3e-3)
    plain = train_student(StudentConfig(output=str(tmp_path / "p"), **cfg), TEMPLATE, MARGIN_EXAMPLES, device="cpu")
    fgm = train_student(StudentConfig(output=str(tmp_path / "f"), adversarial_epsilon=1.0, **cfg), TEMPLATE,
                        MARGIN_EXAMPLES, device="cpu")
    assert read_meta(fgm.path)["losses"][0] == pytest.approx(read_meta(plain.path)["losses"][0])  # clean loss kept
    weights = [load_file(p / "model.safetensors") for p in (plain.path, fgm.path)]
    name = next(k for k in weights[0] if "word_embeddings" in k)
    assert not torch.equal(weights[0][name], weights[1][name])  # same seeds: only the adversarial pass differs
    student = CrossEncoder.from_base(str(tiny_bert), TEMPLATE, None)
    adversary = student_objective(student, StudentConfig(adversarial_epsilon=0.5), MARGIN_EXAMPLES, {}).adversary
    assert adversary.__self__.embeddings is student.model.get_input_embeddings().weight
    assert student_objective(student, StudentConfig(), MARGIN_EXAMPLES, {}).adversary is None


def test_robust_families_pick_which_perturbations_twins_get():
    from training.student import perturbed_twins

    rows = [StudentExample(q, "item", 0.0) for q in ("cordless drill kit", "white paint gallon", "garden hose reel")]
    for family in ("typo", "order"):
        twins = perturbed_twins(rows, 1.0, 1.0, seed=3, families=[family])
        assert [k for k, _ in twins] == [0, 1, 2]  # every query changed, once
        words_kept = [sorted(q.split()) == sorted(rows[k].query.split()) for k, q in twins]
        assert all(words_kept) if family == "order" else not any(words_kept)  # order moves words, typo edits them
    with pytest.raises(Exception, match="robust_families"):
        StudentConfig(robust_families=("typo", "accent"))
    with pytest.raises(Exception, match="robust_families"):
        StudentConfig(robust_families=())
