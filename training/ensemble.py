"""The ensemble teacher: a fine-tuned cross-encoder plus frozen views, combined with weights fit on validation.

The paper's teacher is the best judge one can afford offline, whatever its
shape. On a 2-core CPU a decoder LLM cannot see enough labels to judge better
than random order, while a cross-encoder trained on every human label can; a
bi-encoder's cosine adds a second, independently trained opinion. Their scores
are added with coefficients chosen on the validation split, so a view that
does not help gets weight 0 and the teacher is never worse than its
cross-encoder there.

Score: ``t = s_ce + Σ_v a_v (s_v − μ_v)``, in the cross-encoder's logit units
(``a_v = w_v σ_ce / σ_v``), so a student warm-started from the cross-encoder
sees targets on the scale it already speaks.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from reranker_core.template import ProductTemplate

from .members import Member, coefficient, cross_encoder_config, fit_weight
from .models import ModelError, read_meta

Progress = Callable[[int, int], None]


class EnsembleTeacher:
    """A loaded ensemble teacher behind the Scorer interface (and augmentation's PairScorer)."""

    def __init__(self, path: Path, members: Sequence[Member], scorers: Sequence, name: str,
                 template: ProductTemplate) -> None:
        self.path, self.members, self.scorers, self.name = Path(path), tuple(members), tuple(scorers), name
        self.template = template

    @classmethod
    def load(cls, path: Path) -> EnsembleTeacher:
        from .onnx_scorer import ZipScorer
        from .views import BiEncoderView

        meta = read_meta(path)
        if meta.get("role") != "teacher" or meta.get("kind") != "ensemble":
            raise ModelError(f"{path} is not an ensemble teacher", "pass the train-teacher output")
        members = [Member(**m) for m in meta["members"]]
        scorers = []
        for m in members:
            if m.kind == "cross_encoder":
                scorers.append(ZipScorer(Path(path) / m.source))
            elif m.kind == "bi_encoder":
                scorers.append(BiEncoderView(m.source))
            elif m.kind in ("behaviour_cross_encoder", "implicit"):
                from .aggregate import member_scorer

                scorers.append(member_scorer(Path(path), m, ProductTemplate(**meta["template"])))
            else:
                raise ModelError(f"{path}: unknown ensemble member kind {m.kind!r}", "re-run train-teacher")
        return cls(path, members, scorers, meta.get("name", Path(path).name), ProductTemplate(**meta["template"]))

    def score(self, pairs: Sequence[tuple[str, str]], batch_size: int = 64,
              progress: Progress | None = None) -> list[float]:
        """The weighted sum of the members' scores per pair (members with weight 0 are not run)."""
        total = np.zeros(len(pairs))
        active = [(m, s) for m, s in zip(self.members, self.scorers) if m.coefficient != 0.0]
        for k, (member, scorer) in enumerate(active):
            def step(done: int, n: int, k: int = k) -> None:
                if progress:
                    progress(k * n + done, len(active) * n)

            total += member.coefficient * (np.asarray(scorer.score(pairs, batch_size, step)) - member.mean)
        return total.tolist()

    def reuse_plain_scores(self, known: Mapping[tuple[str, str], float], check: int = 64,
                           tolerance: float = 1e-3) -> None:
        """Serve the cross-encoder member's scores from ``known``: (query, text) pairs a plain teacher with this
        very cross-encoder already labeled (its pool). Relabeling the main job's pool with the behaviour teacher
        would otherwise score ~214k pairs with that encoder again. A seeded sample of ``known`` is scored here
        first; scores from any other teacher or template are refused in one line."""
        import random

        if not known:
            raise ModelError("no labeled pairs to reuse plain scores from", "label the pool with the plain teacher")
        first = self.members[0] if self.members else None
        if first is None or first.kind != "cross_encoder" or first.coefficient != 1.0 or first.mean != 0.0:
            raise ModelError(f"{self.path} has no plain cross-encoder to reuse scores for", "score without reuse")
        sample = random.Random(0).sample(sorted(known), min(check, len(known)))
        worst = max(abs(s - known[p]) for s, p in zip(self.scorers[0].score(sample), sample))
        if worst > tolerance:
            raise ModelError(f"the reused scores differ from {self.path}'s cross-encoder by up to {worst:.3g}: they "
                             "come from another teacher or template", "score without reuse (drop the plain pairs)")
        self.scorers = (KnownScores(self.scorers[0], known), *self.scorers[1:])

    def score_with_distribution(self, pairs: Sequence[tuple[str, str]], batch_size: int = 64,
                                progress: Progress | None = None) -> list[tuple[float, list[float]]]:
        """(score, [P(relevant)]) per pair; the probability reads the score as a logit."""
        return [(s, [round(1 / (1 + math.exp(-s)), 6)]) for s in self.score(pairs, batch_size, progress)]


class KnownScores:
    """A member scorer that looks pairs up in ``known`` first and runs the model on the rest only."""

    def __init__(self, scorer, known: Mapping[tuple[str, str], float]) -> None:
        self.scorer, self.known = scorer, known

    def score(self, pairs: Sequence[tuple[str, str]], batch_size: int = 64,
              progress: Progress | None = None) -> list[float]:
        missing = [i for i, pair in enumerate(pairs) if pair not in self.known]
        found = len(pairs) - len(missing)

        def step(done: int, _n: int) -> None:
            if progress:
                progress(found + done, len(pairs))

        computed = self.scorer.score([pairs[i] for i in missing], batch_size, step) if missing else []
        out = [self.known.get(pair, 0.0) for pair in pairs]
        for i, value in zip(missing, computed):
            out[i] = value
        if progress:
            progress(len(pairs), len(pairs))
        return out


def known_scores(paths: Sequence[Path]) -> dict[tuple[str, str], float]:
    """(query, text) -> teacher score of every pair in these pairs files (``reuse_plain_scores``' input)."""
    from .pairs import read_pairs

    return {(r["query"], r["text"]): r["teacher_score"] for r in read_pairs(paths)}


def reuse_cross_encoder(teacher: Path, fingerprint: str, work: Path):
    """Copy ``teacher``'s cross-encoder (and its zip) into ``work`` when it was trained exactly as this teacher's
    would be (same settings, template and labels: ``fingerprint``), so the behaviour teacher trains only its second
    encoder; anything else is refused in one line rather than mixed into the ensemble."""
    import shutil

    from .models import TrainingReport

    source = teacher / "cross_encoder"
    meta = read_meta(source) if (source / "reranker.json").is_file() else None
    if meta is None or not (teacher / "cross_encoder.zip").is_file():
        raise ModelError(f"teacher.plain_from {teacher} holds no ensemble cross-encoder",
                         "point it at a `reranker train-teacher` output, or unset it")
    if "fingerprint" not in meta:
        raise ModelError(f"teacher.plain_from {teacher}'s cross-encoder records no training fingerprint (trained by "
                         "an older version)", "train that teacher again, or unset teacher.plain_from")
    if meta["fingerprint"] != fingerprint:
        raise ModelError(f"teacher.plain_from {teacher}'s cross-encoder was trained with other settings, template "
                         "or labels than this teacher's", "unset teacher.plain_from to train it here")
    shutil.copytree(source, work / "cross_encoder")
    shutil.copy2(teacher / "cross_encoder.zip", work / "cross_encoder.zip")
    return TrainingReport.of(work / "cross_encoder", meta["examples"], meta["queries"], meta["losses"])


def train_ensemble_teacher(cfg, template, human: Sequence, validation: Sequence, output: Path,
                           progress: Progress | None = None, device: str | None = None, resume: bool = False,
                           behaviour=None):
    """Train the cross-encoder on every human label, export it, fit the views' weights on ``validation``.

    With ``behaviour`` (a :class:`training.behaviour.BehaviourContext`), a second
    cross-encoder learns from inputs with behaviour and joins, with the implicit
    judgments, as views (:mod:`training.aggregate`).

    ``human`` holds StudentExample rows with soft labels as targets; ``validation``
    the split's JudgedList rows. Writes ``output`` (teacher dir) atomically. The
    cross-encoder's training state is saved beside it (``<output>.checkpoint``)
    every ``cfg.checkpoint_every`` steps; ``resume`` continues from there.
    """
    import shutil
    import tempfile

    from .export import export_student
    from .models import write_checkpoint
    from .onnx_scorer import ZipScorer
    from .student import train_student, training_fingerprint
    from .views import BiEncoderView

    output = Path(output)
    checkpoint = output.with_name(f"{output.name}.checkpoint")
    behaviour_checkpoint = output.with_name(f"{output.name}.behaviour.checkpoint")
    work = Path(tempfile.mkdtemp(prefix=f".{output.name}.work.", dir=output.parent if output.parent.exists() else None))
    try:
        settings = cross_encoder_config(cfg, work / "cross_encoder")
        if cfg.plain_from:
            report = reuse_cross_encoder(Path(cfg.plain_from), training_fingerprint(settings, template, human),
                                         work)
        else:
            report = train_student(settings, template, human, progress=progress, device=device,
                                   name="teacher-cross-encoder", provenance={"sources": ["human"]},
                                   checkpoint=checkpoint, checkpoint_every=cfg.checkpoint_every, resume=resume)
            export_student(work / "cross_encoder", work / "cross_encoder.zip")
        pairs = [(j.query, t) for j in validation for t in j.texts]
        labels = [j.labels for j in validation]
        # the cross-encoder's validation scores only serve to fit view weights (MPNet: ~5 min on 2 cores)
        base = ZipScorer(work / "cross_encoder.zip").score(pairs) if (cfg.views or behaviour) and pairs else []
        members = [Member("cross_encoder", "cross_encoder.zip", 1.0, 0.0)]
        fits = {}
        for spec in cfg.views if pairs else ():  # no validation queries: nothing to fit views on
            view = BiEncoderView(spec).score(pairs)
            weight, curve = fit_weight(base, view, labels)
            a, mean = coefficient(weight, base, view)
            members.append(Member("bi_encoder", spec, a, mean))
            fits[spec] = {"weight": weight, "validation_pairwise_accuracy": [[w, v] for w, v in curve.items()]}
        extra: dict = {}
        if behaviour is not None:
            from .aggregate import train_behaviour_views

            added, extra = train_behaviour_views(cfg, template, human, validation, base, behaviour, work, progress,
                                                 device, behaviour_checkpoint, resume, plain=Path(settings.output))
            members += added
            fits |= extra.pop("fits")
        meta = {"role": "teacher", "kind": "ensemble", "name": output.name, "template": template.to_dict(),
                "members": [m.__dict__ for m in members], "fits": fits, "validation_queries": len(validation),
                "examples": report.examples, "queries": report.queries,
                "losses": read_meta(work / "cross_encoder")["losses"], **extra}

        def save(tmp: Path) -> None:
            for name in ("cross_encoder", "cross_encoder.zip", "behaviour_encoder", "behaviour_encoder.zip",
                         "behaviour.json"):
                if (work / name).exists():
                    shutil.move(str(work / name), tmp / name)

        write_checkpoint(output, save, meta)
        shutil.rmtree(checkpoint, ignore_errors=True)
        shutil.rmtree(behaviour_checkpoint, ignore_errors=True)
        return dataclasses.replace(report, path=output)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def teacher_name(path: Path) -> str:
    """The name a teacher stamps on its pairs, read without loading its weights."""
    meta = read_meta(path)
    if meta.get("role") != "teacher":
        raise ModelError(f"{path} holds a {meta.get('role')}, not a teacher", "pass the train-teacher output")
    return meta.get("name", Path(path).name)


def teacher_fingerprint(path: Path) -> str:
    """The teacher's name and a hash of its files' bytes: a teacher retrained into the same folder is another
    teacher, so pairs the earlier one scored are never reused for it."""
    from reranker_core.steps import file_digest

    return f"{teacher_name(path)}@{file_digest(Path(path))[:16]}"


def load_teacher(path: Path):
    """Any teacher checkpoint: an ensemble (``kind: ensemble``) or an LLM classifier (``kind: llm``)."""
    meta = read_meta(path)
    if meta.get("role") != "teacher":
        raise ModelError(f"{path} holds a {meta.get('role')}, not a teacher", "pass the train-teacher output")
    if meta.get("kind") == "ensemble":
        return EnsembleTeacher.load(path)
    from .teacher import Teacher

    return Teacher.load(path)
