"""Seeded query perturbations: how people really type product queries.

Four families (ei-SRC, Chen et al.: robustness of interaction-based relevance
models), each at a strength in [0, 1]:

| family  | what changes                                                        | strength means              |
|---------|---------------------------------------------------------------------|-----------------------------|
| typo    | one keyboard-adjacent substitution, deletion or transposition in a word | P(a word ≥ 3 letters)  |
| units   | a number or unit respelled: 3/4 ↔ .75, in ↔ inch ↔ ", 18v ↔ 18 volt     | P(a number mention)    |
| drop    | words dropped (at least one kept)                                       | P(a word)              |
| order   | words trading places                                                    | P(a word)              |

The same (query, family, strength, seed) always gives the same text, so the
robustness benchmark and robust training draw from separate seeds
(:data:`BENCHMARK_SEED`, the student's own ``seed``) and never see each
other's perturbations of a query.
"""
from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable

from reranker_core.config import PERTURBATION_FAMILIES

FAMILIES = PERTURBATION_FAMILIES
STRENGTHS = {"light": 0.15, "default": 0.3}
#: Number mentions are rare (a quarter of Home Depot's test queries hold one), so units are respelled more often.
UNIT_STRENGTHS = {"light": 0.5, "default": 1.0}


def strengths(family: str) -> dict[str, float]:
    """The benchmark's named rates for ``family``."""
    return UNIT_STRENGTHS if family == "units" else STRENGTHS
BENCHMARK_SEED = 20261205

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_POS = {ch: (r, c) for r, row in enumerate(_ROWS) for c, ch in enumerate(row)}
#: Letters next to each letter on a QWERTY keyboard (same row or the row above/below, one column apart).
ADJACENT = {ch: "".join(o for o, (r2, c2) in _POS.items() if o != ch and abs(r2 - r) <= 1 and abs(c2 - c) <= 1)
            for ch, (r, c) in _POS.items()}

#: Spellings of one unit; a perturbation swaps a spelling for another of the same unit.
UNIT_SPELLINGS = (
    ("in", "inch", "in.", '"', "inches"),
    ("ft", "foot", "ft.", "'", "feet"),
    ("lb", "lbs", "pound", "pounds"),
    ("gal", "gallon", "gal."),
    ("v", "volt", "-volt"),
    ("w", "watt", "-watt"),
    ("oz", "ounce", "oz."),
    ("mm", "millimeter"),
    ("sq ft", "sq. ft.", "square feet"),
)
_UNIT_OF = {s: group for group in UNIT_SPELLINGS for s in group}
FRACTIONS = {"1/8": ".125", "1/4": ".25", "3/8": ".375", "1/2": ".5", "5/8": ".625", "3/4": ".75", "7/8": ".875"}
_DECIMALS = {v: k for k, v in FRACTIONS.items()}
_UNIT_RE = "|".join(sorted((re.escape(s.lstrip("-")) for s in _UNIT_OF), key=len, reverse=True))
#: A number (whole, decimal, fraction or mixed "1-1/2" / "1 1/2") and an optional unit right after it.
MENTION = re.compile(r"(?<![\w.])(?P<num>\d*\.\d+|\d+(?:[- ]\d+/\d+)?(?:/\d+)?)"
                     rf"(?P<sep>\s?-?)(?P<unit>(?:{_UNIT_RE})(?![a-z]))?", re.IGNORECASE)


def perturb(query: str, family: str, strength: float, seed: int) -> str:
    """``query`` as someone might have typed it: ``family`` applied at ``strength`` (see the module table)."""
    if family not in _APPLY:
        raise ValueError(f"unknown perturbation family {family!r}; use one of {', '.join(FAMILIES)}")
    rng = random.Random(int.from_bytes(hashlib.sha256(f"{seed}\t{family}\t{query}".encode()).digest()[:8], "big"))
    return _APPLY[family](query, strength, rng)


def _typo(query: str, strength: float, rng: random.Random) -> str:
    words = query.split()
    candidates = [i for i, w in enumerate(words) if len(w) >= 3 and w.isalpha()]
    for i in _pick(candidates, strength, rng):
        words[i] = _edit(words[i], rng)
    return " ".join(words)


def _edit(word: str, rng: random.Random) -> str:
    """One keyboard-adjacent substitution, deletion or transposition, never of the first letter."""
    i = rng.randrange(1, len(word))
    kind = rng.choice(("substitute", "delete", "transpose"))
    lower = word[i].lower()
    if kind == "substitute" and ADJACENT.get(lower):
        return word[:i] + rng.choice(ADJACENT[lower]) + word[i + 1:]
    if kind == "transpose" and i + 1 < len(word) and word[i] != word[i + 1]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i] + word[i + 1:]


def _units(query: str, strength: float, rng: random.Random) -> str:
    mentions = list(MENTION.finditer(query))
    chosen = set(_pick(range(len(mentions)), strength, rng))
    out, last = [], 0
    for k, m in enumerate(mentions):
        out.append(query[last:m.start()])
        out.append(_respell(m, rng) if k in chosen else m.group(0))
        last = m.end()
    return "".join(out) + query[last:]


def _respell(m: re.Match, rng: random.Random) -> str:
    """A number mention in another spelling: the number's form, the unit's, or the space between them."""
    num, unit = m.group("num"), m.group("unit")
    options = []
    if _number_variant(num) != num:
        options.append("number")
    if unit:
        options += ["unit", "space"]
    if not options:
        return m.group(0)
    choice = rng.choice(options)
    if choice == "number":
        num = _number_variant(num)
    if unit and choice == "unit":
        group = _UNIT_OF[next(s for s in _UNIT_OF if s.lstrip("-").lower() == unit.lower())]
        unit = rng.choice([s for s in group if s.lstrip("-").lower() != unit.lower()])
        return f"{num}{unit}" if unit.startswith("-") or unit in ('"', "'") else f"{num} {unit}"
    sep = m.group("sep")
    if unit and choice == "space":
        sep = "" if sep.strip() == "" and sep else " "
    return f"{num}{sep}{unit or ''}"


def _number_variant(num: str) -> str:
    """3/4 → .75, 1-1/2 → 1.5, 0.75 → 3/4, 1.5 → 1-1/2; other numbers unchanged."""
    mixed = re.fullmatch(r"(\d+)[- ](\d+/\d+)", num)
    if mixed and mixed.group(2) in FRACTIONS:
        return mixed.group(1) + FRACTIONS[mixed.group(2)]
    if num in FRACTIONS:
        return "0" + FRACTIONS[num]
    whole, dot, frac = num.partition(".")
    if dot and "." + frac in _DECIMALS:
        return _DECIMALS["." + frac] if whole in ("", "0") else f"{whole}-{_DECIMALS['.' + frac]}"
    return num


def _drop(query: str, strength: float, rng: random.Random) -> str:
    words = query.split()
    if len(words) < 2:
        return query
    gone = set(_pick(range(len(words)), strength, rng)[:len(words) - 1])
    return " ".join(w for i, w in enumerate(words) if i not in gone)


def _order(query: str, strength: float, rng: random.Random) -> str:
    words = query.split()
    if len(words) < 2:
        return query
    moved = sorted(_pick(range(len(words)), strength, rng))
    if len(moved) < 2:  # a word moves only by changing place with another
        return query
    shuffled = moved[:]
    while shuffled == moved:
        rng.shuffle(shuffled)
    out = words[:]
    for src, dst in zip(moved, shuffled):
        out[dst] = words[src]
    return " ".join(out)


def _pick(items, share: float, rng: random.Random) -> list:
    """Each of ``items`` with probability ``share``, in random order (so strength is a rate, as people typo)."""
    chosen = [item for item in items if rng.random() < share]
    rng.shuffle(chosen)
    return chosen


_APPLY: dict[str, Callable[[str, float, random.Random], str]] = {
    "typo": _typo, "units": _units, "drop": _drop, "order": _order}
