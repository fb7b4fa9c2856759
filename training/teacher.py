"""The LLM teacher: a decoder LM fine-tuned as a relevance classifier with soft targets.

Following Shang et al. (WWW 2025), the teacher reads a prompt holding the query
and the product text and classifies relevance; it learns from soft targets
(cross-entropy against a distribution built from human grades), not from hard
labels. ``target="binary"`` trains one logit against P(relevant) = soft label;
``target="distribution"`` trains one logit per grade level against the soft
label spread over the two nearest levels.

The teacher's *score* (what the student distils) is a logit either way: the
binary logit, or the log-odds of the expected soft label under the predicted
distribution. Training is the shared loop of :mod:`training.loop` with a
soft-target cross-entropy; it saves resumable checkpoints (trainable weights,
optimizer, scheduler, step) every ``checkpoint_every`` optimizer steps.
"""
from __future__ import annotations

import math
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from reranker_core.config import TeacherConfig
from reranker_core.steps import settings_of
from reranker_core.template import ProductTemplate

from .checkpoints import fingerprint
from .datasets import Judgment, grade_distribution, group_by_query
from .loop import Objective, Schedule, train_loop
from .losses import SoftTargetCrossEntropyLoss
from .models import ModelError, TrainingReport, default_device, read_meta, resolve_model, write_checkpoint

PROMPT_HEAD = "Query: {query}\nProduct: "
PROMPT_TAIL = "\nIs this product relevant to the query?"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TeacherExample:
    """One training row: the pair and its soft target (a probability, or a distribution over levels)."""

    query: str
    text: str
    target: tuple[float, ...]
    product_id: str = ""
    label: float | None = None  # the human soft label the target came from


class Teacher:
    """A loaded teacher: prompt encoding, batched scoring with length bucketing."""

    def __init__(self, model, tokenizer, template: ProductTemplate, target: str, levels: Sequence[float],
                 name: str = "teacher") -> None:
        self.model, self.tokenizer, self.template = model, tokenizer, template
        self.target, self.levels, self.name = target, tuple(levels), name
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id
        self._tail = tokenizer(PROMPT_TAIL, add_special_tokens=False)["input_ids"]  # the same for every pair

    @classmethod
    def load(cls, path: Path, device: str | None = None) -> Teacher:
        """A teacher checkpoint written by :func:`train_teacher`."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        meta = read_meta(path)
        if meta.get("role") != "teacher":
            raise ModelError(f"{path} holds a {meta.get('role')}, not a teacher", "pass the train-teacher output")
        model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model.to(device or default_device()).eval()
        return cls(model, tokenizer, ProductTemplate(**meta["template"]), meta["target"], meta["levels"],
                   name=meta.get("name", Path(path).name))

    def encode(self, query: str, text: str) -> list[int]:
        """Prompt token ids; the product text is cut so the whole prompt fits ``template.max_tokens``."""
        tok = self.tokenizer
        head = tok(PROMPT_HEAD.format(query=query), add_special_tokens=False)["input_ids"]
        tail = self._tail
        body = tok(text, add_special_tokens=False)["input_ids"]
        head = head[:max(1, self.template.max_tokens - len(tail))]
        room = max(0, self.template.max_tokens - len(head) - len(tail))
        return head + body[:room] + tail

    def _batch(self, ids: Sequence[list[int]]) -> dict[str, torch.Tensor]:
        width = max(len(x) for x in ids)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in ids])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
        device = next(self.model.parameters()).device
        return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}

    def logits(self, ids: Sequence[list[int]]) -> torch.Tensor:
        """[batch, labels] logits for encoded prompts."""
        return self.model(**self._batch(ids)).logits

    def scores_from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The distillation score: a logit, whichever target the teacher was trained with."""
        if self.target == "binary":
            return logits[:, 0]
        expected = (logits.softmax(-1) * torch.tensor(self.levels, device=logits.device)).sum(-1)
        expected = expected.clamp(1e-4, 1 - 1e-4)
        return torch.log(expected) - torch.log1p(-expected)

    @torch.no_grad()
    def score(self, pairs: Sequence[tuple[str, str]], batch_size: int = 32,
              progress: Progress | None = None) -> list[float]:
        """Scores for (query, product text) pairs, batched by similar length so little is padding."""
        return [s for s, _ in self.score_with_distribution(pairs, batch_size, progress)]

    @torch.no_grad()
    def score_with_distribution(self, pairs: Sequence[tuple[str, str]], batch_size: int = 32,
                                progress: Progress | None = None) -> list[tuple[float, list[float]]]:
        """(score, probabilities) per pair: [P(relevant)] for binary, P(level) per level for distribution."""
        self.model.eval()
        encoded = [self.encode(q, t) for q, t in pairs]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out: list[tuple[float, list[float]]] = [(0.0, [])] * len(encoded)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            logits = self.logits([encoded[i] for i in idx]).float()
            scores = self.scores_from_logits(logits)
            probs = torch.sigmoid(logits) if self.target == "binary" else logits.softmax(-1)
            for k, i in enumerate(idx):
                out[i] = (float(scores[k]), [round(float(p), 6) for p in probs[k]])
            if progress:
                progress(min(start + batch_size, len(order)), len(order))
        return out


def teacher_examples(judgments: Sequence[Judgment], products: dict[str, dict[str, str]], template: ProductTemplate,
                     target: str, levels: Sequence[float], max_queries: int | None, seed: int) -> list[TeacherExample]:
    """Training rows from judged pairs; ``max_queries`` picks a seeded sample of whole queries (the budget)."""
    groups = group_by_query(judgments)
    queries = sorted(groups)
    if max_queries is not None and max_queries < len(queries):
        queries = sorted(random.Random(seed).sample(queries, max_queries))
    rows = []
    for q in queries:
        for j in groups[q]:
            soft = j.soft_label
            tgt = (soft,) if target == "binary" else tuple(grade_distribution(soft, tuple(levels)))
            rows.append(TeacherExample(q, template.render(products[j.product_id]), tgt, j.product_id, soft))
    return rows


def load_base(cfg: TeacherConfig, num_labels: int):
    """The untrained teacher: any HF decoder LM with a fresh classification head (GGUF is dequantized)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = resolve_model(cfg.model)
    kwargs: dict[str, Any] = {"gguf_file": cfg.gguf_file} if cfg.gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=num_labels,
                                                                   dtype=torch.float32, **kwargs)
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot load teacher model {cfg.model!r} ({str(err).splitlines()[0]})",
                         "set teacher.model to a local path / pkg: spec and teacher.gguf_file if it is GGUF") from err
    if cfg.train_top_layers is not None and not cfg.lora:
        freeze_lower_layers(model, cfg.train_top_layers)
    if cfg.lora:
        from peft import LoraConfig, TaskType, get_peft_model

        model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                                 target_modules="all-linear", modules_to_save=["score"]))
    return model, tokenizer


def freeze_lower_layers(model, top: int) -> None:
    """Train only the top ``top`` decoder layers, the final norm and the head.

    On a CPU this is what makes a 30-layer teacher affordable: frozen layers need
    no backward pass. LoRA is the GPU-sized alternative.
    """
    base = getattr(model, model.base_model_prefix, None)
    layers = getattr(base, "layers", None)
    if layers is None:
        raise ModelError(f"cannot find decoder layers in {type(model).__name__}",
                         "set teacher.train_top_layers: null (train all) or use lora")
    for param in base.parameters():
        param.requires_grad = False
    for layer in list(layers)[-top:] if top > 0 else []:
        for param in layer.parameters():
            param.requires_grad = True
    if getattr(base, "norm", None) is not None:
        for param in base.norm.parameters():
            param.requires_grad = True


def train_teacher(cfg: TeacherConfig, template: ProductTemplate, examples: Sequence[TeacherExample],
                  levels: Sequence[float], resume: bool = False, progress: Progress | None = None,
                  device: str | None = None) -> TrainingReport:
    """Fine-tune the teacher on soft targets; write ``cfg.output`` (and resumable checkpoints beside it)."""
    if not examples:
        raise ModelError("no training examples for the teacher", "check data.path and the train split")
    torch.manual_seed(cfg.seed)
    num_labels = 1 if cfg.target == "binary" else len(levels)
    model, tokenizer = load_base(cfg, num_labels)
    teacher = Teacher(model, tokenizer, template, cfg.target, levels)
    device = device or default_device()
    model.to(device)
    per_epoch = math.ceil(len(examples) / (cfg.batch_size * cfg.grad_accum))
    total = cfg.max_steps or max(1, math.ceil(per_epoch * cfg.epochs))
    ckpt = Path(f"{cfg.output}.checkpoint")
    encoded = [teacher.encode(e.query, e.text) for e in examples]
    soft_ce = SoftTargetCrossEntropyLoss()

    def epoch(e: int) -> list[list[list[int]]]:
        """Epoch ``e``'s steps: ``grad_accum`` micro-batches of ``batch_size`` rows of a seeded shuffle."""
        order = list(range(len(examples)))
        random.Random(cfg.seed + e).shuffle(order)
        micro, span = cfg.batch_size, cfg.batch_size * cfg.grad_accum
        steps = [[order[s + a * micro: s + (a + 1) * micro] for a in range(cfg.grad_accum)]
                 for s in range(0, per_epoch * span, span)]
        return [[idx for idx in step if idx] for step in steps]  # the last step's tail may be short or empty

    def loss(idx: list[int], logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        targets = torch.tensor([examples[i].target for i in idx], device=logits.device)
        return soft_ce(logits, targets) if num_labels > 1 else soft_ce(logits[:, 0], targets[:, 0])

    objective = Objective(epoch, lambda idx, _step: teacher.logits([encoded[i] for i in idx]), loss)
    # no autocast: the LLM teacher has always trained in fp32 (teacher.precision is the ensemble's setting)
    schedule = Schedule(total, max(1, total // 20), cfg.learning_rate, cfg.grad_accum, "fp32", cfg.checkpoint_every)
    trained = train_loop(model, objective, schedule, _fingerprint(cfg, template, examples), device, ckpt,
                         resume, progress)
    step, losses = trained.step, trained.losses
    final = model.merge_and_unload() if cfg.lora else model
    queries = len({e.query for e in examples})
    meta = {"role": "teacher", "name": Path(cfg.output).name, "base_model": cfg.model, "gguf_file": cfg.gguf_file,
            "target": cfg.target, "levels": list(levels), "template": template.to_dict(),
            "examples": len(examples), "queries": queries, "steps": step, "losses": losses, "lora": cfg.lora}

    def save(tmp: Path) -> None:
        _forget_gguf(final)
        final.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    write_checkpoint(Path(cfg.output), save, meta)
    shutil.rmtree(ckpt, ignore_errors=True)
    return TrainingReport.of(Path(cfg.output), len(examples), queries, losses, trained.resumed_from)


def _forget_gguf(model) -> None:
    """GGUF weights are dequantized to float on load; drop the quantizer marker so they save as safetensors."""
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
        model.is_quantized = False
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config


_NOT_TRAINING = {"output", "score_batch_size", "checkpoint_every", "from_path"}  # may change between resumes


def _fingerprint(cfg: TeacherConfig, template: ProductTemplate, examples: Sequence[TeacherExample]) -> str:
    return fingerprint({"teacher": settings_of(cfg, leave_out=_NOT_TRAINING), "template": template.to_dict()},
                       (f"{e.query}\t{e.text}\t{e.target}" for e in examples))
