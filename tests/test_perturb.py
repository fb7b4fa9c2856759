"""Query perturbations: seeded, and each family changes only what it says it changes."""
from __future__ import annotations

import re
from collections import Counter
from fractions import Fraction

import pytest

from training.perturb import ADJACENT, FAMILIES, MENTION, perturb

QUERIES = ["3/4 in. plywood sheet", "18v cordless drill kit", "1-1/2 in pvc pipe 10 ft", "0.75 inch copper fitting",
           "outdoor patio chair cushions", "2 gallon bucket", "bathroom vanity with top", "5/8\" drywall"]


def _edit_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein (optimal string alignment): a transposition is one edit."""
    d = [[max(i, j) if min(i, j) == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_text_and_strength_zero_changes_nothing(family):
    for q in QUERIES:
        assert perturb(q, family, 0.5, seed=7) == perturb(q, family, 0.5, seed=7)
        assert perturb(q, family, 0.0, seed=7) == q
    assert len({perturb(q, family, 1.0, seed=s) for q in QUERIES for s in range(5)}) > len(QUERIES)


def test_typo_is_one_keyboard_edit_per_changed_word_and_keeps_the_first_letter():
    seen = Counter()
    for seed in range(200):
        for q in QUERIES:
            out = perturb(q, "typo", 0.5, seed)
            assert len(out.split()) == len(q.split())
            for before, after in zip(q.split(), out.split()):
                if before != after:
                    assert _edit_distance(before, after) == 1 and after[0] == before[0]
                    if len(after) == len(before) and sorted(after) != sorted(before):  # a substitution
                        k = next(i for i, (x, y) in enumerate(zip(before, after)) if x != y)
                        assert after[k] in ADJACENT[before[k]]
                        seen["substitute"] += 1
                    else:
                        seen["delete" if len(after) < len(before) else "transpose"] += 1
    assert set(seen) == {"substitute", "delete", "transpose"}


def _values(text: str) -> list[Fraction]:
    out = []
    for m in MENTION.finditer(text):
        num = m.group("num")
        whole, _, frac = re.sub(r"(\d)[- ](\d+/)", r"\1+\2", num).partition("+")
        out.append(Fraction(whole) + (Fraction(frac) if frac else 0))
    return out


def test_units_respell_keeps_every_number_value():
    changed = 0
    for seed in range(100):
        for q in QUERIES:
            out = perturb(q, "units", 1.0, seed)
            assert _values(out) == _values(q), (q, out)
            changed += out != q
    assert changed > 300  # almost every query with a number changes at strength 1
    assert perturb("bathroom vanity with top", "units", 1.0, 3) == "bathroom vanity with top"


def test_drop_keeps_order_and_a_word_and_order_keeps_the_words():
    for seed in range(100):
        for q in QUERIES:
            dropped = perturb(q, "drop", 1.0, seed).split()
            assert 1 <= len(dropped) < len(q.split())
            it = iter(q.split())
            assert all(w in it for w in dropped)  # a subsequence
            moved = perturb(q, "order", 1.0, seed)
            assert sorted(moved.split()) == sorted(q.split()) and moved != q


def test_unknown_family_is_refused():
    with pytest.raises(ValueError, match="unknown perturbation family 'case'"):
        perturb("drill", "case", 0.3, 0)
