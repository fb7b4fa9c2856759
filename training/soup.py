"""Weight-space mixing of two students trained from the same start (WiSE-FT, Wortsman et al. 2022).

Robust training (issue 26) buys typo robustness at a small clean cost; a plain
student has the clean quality. Two students fine-tuned from the same weights
usually sit in one basin, so their parameter-wise average is itself a good
model, and along the line between them robustness and clean quality trade
more gently than either endpoint. A mix costs no training and no latency: it
is one student of the same size.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .models import ModelError, read_meta, write_checkpoint
from .student import CrossEncoder

SAME = ("layers", "template", "normalize_terms")  # meta fields two mixable students must share


def mix_students(first: Path, second: Path, weight: float, output: Path) -> Path:
    """Write ``(1 − weight) · first + weight · second``, parameter by parameter, as a student at ``output``.

    Refuses students that differ in shape, layers, template, term rules or vocabulary: their average would
    be no model at all. The meta is the first student's, with ``mix`` saying what was mixed.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"mix weight {weight} is outside [0, 1]")
    metas = [read_meta(first), read_meta(second)]
    for field in SAME:
        if metas[0].get(field) != metas[1].get(field):
            raise ModelError(f"cannot mix {first} and {second}: their {field} differ",
                             "mix two students trained with the same student recipe")
    a, b = CrossEncoder.load(first), CrossEncoder.load(second)
    if a.tokenizer.get_vocab() != b.tokenizer.get_vocab():
        raise ModelError(f"cannot mix {first} and {second}: their vocabularies differ",
                         "mix two students trained from the same base model")
    theirs = b.model.state_dict()
    mixed = {}
    for name, mine in a.model.state_dict().items():
        other = theirs.get(name)
        if other is None or other.shape != mine.shape:
            raise ModelError(f"cannot mix {first} and {second}: parameter {name} differs in shape",
                             "mix two students trained from the same base model")
        mixed[name] = torch.lerp(mine, other, weight) if mine.is_floating_point() else mine
    a.model.load_state_dict(mixed)
    meta = {**metas[0], "name": Path(output).name,
            "mix": {"first": str(first), "second": str(second), "weight": weight},
            "fingerprint": f"mix:{metas[0].get('fingerprint')}:{metas[1].get('fingerprint')}:{weight}"}
    meta.pop("curve", None)  # measured on the first student, not on the mix

    def save(tmp: Path) -> None:
        a.model.save_pretrained(tmp)
        a.tokenizer.save_pretrained(tmp)

    write_checkpoint(Path(output), save, meta)
    return Path(output)
