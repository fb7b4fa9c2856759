"""Progressive aggregation: plain teacher, behaviour teacher and implicit judgments as views of one teacher.

The ensemble's machinery (:mod:`training.ensemble`) adds views to its plain
cross-encoder with coefficients chosen on the validation split. Here the views
come one after another: the behaviour cross-encoder (trained on training
queries' inputs with behaviour, :mod:`training.behaviour`) and then the
implicit judgments (COEC soft labels of training pairs). Each pair's score is
the plain score plus each view's deviation from its mean, so a query without
behaviour or judgments is scored by what it has.

Honest limits, by the no-leakage rule: validation queries read no behaviour and
have no implicit judgments, so the behaviour view's weight is fit on how its
cross-encoder ranks *plain* validation inputs, and the implicit view's weight
cannot be fit at all: it is ``teacher.implicit_view_weight``, reported as a
prior. Every view's validation metrics are kept in the teacher's meta.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reranker_core.template import ProductTemplate

from .behaviour import CONTEXT_FILE, BehaviourContext, BehaviourInputs, BehaviourScorer, ImplicitView
from .members import Member, coefficient, cross_encoder_config, fit_weight
from .metrics import evaluate_rankings, split_scores

Progress = Callable[[int, int], None]
BEHAVIOUR_DIR = "behaviour_encoder"


def behaviour_examples(human: Sequence, inputs: BehaviourInputs) -> list:
    """The training rows with behaviour on the query side (same targets and labels); plain where none.

    The behaviour is cut to fit each product, so one query's rows get different query sides: each row keeps
    its query as its list (``group``), so batches hold whole queries and RankNet still ranks within them."""
    import dataclasses

    augmented = inputs([(e.query, e.text) for e in human])
    return [dataclasses.replace(e, query=q, group=e.query if q != e.query else None)
            for e, (q, _) in zip(human, augmented)]


def view_metrics(labels: Sequence[Sequence[float]], scores: Sequence[float]) -> dict[str, float]:
    """NDCG@5 and pairwise accuracy of one view's scores on the validation lists."""
    found = evaluate_rankings(split_scores(labels, list(scores)))
    return {"ndcg@5": round(found["ndcg@5"], 6), "pairwise_accuracy": round(found["pairwise_accuracy"], 6)}


def train_behaviour_views(cfg, template: ProductTemplate, human: Sequence, validation: Sequence, base: Sequence[float],
                          context: BehaviourContext, work: Path, progress: Progress | None = None,
                          device: str | None = None, checkpoint: Path | None = None, resume: bool = False,
                          *, plain: Path) -> tuple[list[Member], dict[str, Any]]:
    """Train the behaviour cross-encoder into ``work``, fit its weight on validation, add the implicit view.

    ``base`` holds the plain cross-encoder's scores of the validation pairs; ``plain`` is its folder (the warm
    start's init).
    Returns the new members and the view-by-view report for the meta.
    """
    from transformers import AutoTokenizer

    from .export import export_student
    from .models import resolve_model
    from .onnx_scorer import ZipScorer
    from .student import train_student

    context.save(work / CONTEXT_FILE)
    source = resolve_model(cfg.model)
    if source.endswith(".onnx"):  # an encoder shipped as a graph: its tokenizer is found as the trainer finds it
        from .student import onnx_tokenizer_dir

        source = str(onnx_tokenizer_dir(Path(source)))
    inputs = BehaviourInputs(context, AutoTokenizer.from_pretrained(source), template.max_tokens)
    examples = behaviour_examples(human, inputs)
    with_behaviour = sum(1 for e, h in zip(examples, human) if e.query != h.query)
    settings = cross_encoder_config(cfg, work / BEHAVIOUR_DIR)
    if cfg.behaviour_warm_start:
        settings = dataclasses.replace(settings, model=str(plain))
    if cfg.behaviour_epochs:
        settings = dataclasses.replace(settings, epochs=cfg.behaviour_epochs)
    train_student(settings, template, examples, progress=progress,
                  device=device, name="teacher-behaviour-encoder", provenance={"sources": ["human", "behaviour"]},
                  checkpoint=checkpoint, checkpoint_every=cfg.checkpoint_every, resume=resume)
    export_student(work / BEHAVIOUR_DIR, work / f"{BEHAVIOUR_DIR}.zip")
    pairs = [(j.query, t) for j in validation for t in j.texts]
    labels = [j.labels for j in validation]
    scorer = BehaviourScorer(ZipScorer(work / f"{BEHAVIOUR_DIR}.zip"), inputs)
    plain_inputs = sum(1 for (q, _), (q2, _) in zip(pairs, inputs(pairs)) if q == q2)
    view = scorer.score(pairs) if pairs else []
    members, report = [], {"behaviour": context.summary() | {"training_pairs_with_behaviour": with_behaviour,
                                                              "training_pairs": len(examples),
                                                              "validation_pairs_plain": plain_inputs,
                                                              "validation_pairs": len(pairs),
                                                              "warm_start": cfg.behaviour_warm_start,
                                                              "epochs": settings.epochs}}
    if pairs:
        weight, curve = fit_weight(base, view, labels)
        a, mean = coefficient(weight, base, view)
        combined = np.asarray(base) + a * (np.asarray(view) - mean)
        report["views"] = {"plain (validation)": view_metrics(labels, base),
                           "behaviour (validation, plain input)": view_metrics(labels, view),
                           "plain + behaviour (validation)": view_metrics(labels, combined)}
        report["fits"] = {"behaviour": {"weight": weight, "fit_on": "validation, plain input",
                                        "validation_pairwise_accuracy": [[w, v] for w, v in curve.items()]}}
    else:  # no validation queries: nothing to fit on, the view stays out
        a, mean, report["fits"] = 0.0, 0.0, {"behaviour": {"weight": 0.0, "fit_on": "no validation queries"}}
    members.append(Member("behaviour_cross_encoder", f"{BEHAVIOUR_DIR}.zip", a, mean))
    implicit = [v for labels_ in context.implicit.values() for v in labels_.values()]
    mean_i = float(np.mean(implicit)) if implicit else 0.0
    a_i, _ = coefficient(cfg.implicit_view_weight, base or [0.0, 1.0], implicit or [0.0])
    members.append(Member("implicit", CONTEXT_FILE, a_i if implicit else 0.0, mean_i))
    agreement = implicit_agreement(human, context, mean_i)
    if agreement:
        report.setdefault("views", {})["implicit (training queries with clicks, vs human labels)"] = agreement
    report["fits"]["implicit"] = {"weight": cfg.implicit_view_weight if implicit else 0.0,
                                  "fit_on": "not fit: validation queries have no implicit judgments by design "
                                            "(teacher.implicit_view_weight, a prior)"}
    return members, report


def implicit_agreement(human: Sequence, context: BehaviourContext, default: float) -> dict[str, float] | None:
    """How the implicit view ranks the judged products of training queries with clicks, against their human
    labels: the only place it can be measured (simulated clicks are drawn from those labels, so read it as a
    check of the click data, not of a teacher)."""
    lists: dict[str, list] = {}
    for e in human:
        if e.query in context.implicit and e.label is not None:
            lists.setdefault(e.query, []).append(e)
    lists = {q: rows for q, rows in lists.items() if len(rows) > 1}
    if not lists:
        return None
    view = ImplicitView(context, default)
    labels = [[e.label for e in rows] for rows in lists.values()]
    return view_metrics(labels, view.score([(e.query, e.text) for rows in lists.values() for e in rows]))


def member_scorer(teacher_dir: Path, member: Member, template: ProductTemplate):
    """The scorer of a behaviour or implicit member of a saved teacher."""
    from transformers import AutoTokenizer

    from .onnx_scorer import ZipScorer

    context = BehaviourContext.load(Path(teacher_dir) / CONTEXT_FILE)
    if member.kind == "implicit":
        return ImplicitView(context, member.mean)
    inputs = BehaviourInputs(context, AutoTokenizer.from_pretrained(Path(teacher_dir) / BEHAVIOUR_DIR),
                             template.max_tokens)
    return BehaviourScorer(ZipScorer(Path(teacher_dir) / member.source), inputs)
