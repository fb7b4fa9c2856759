"""Product-term normalisation: one spelling for numbers and units, inside the tokenizer itself.

"3/4 in.", "0.75 inch" and '3/4"' are one size; a cross-encoder that sees three
spellings must learn that three times (ei-SRC's product-term awareness). The
rules are ``Replace`` normalizers put in front of the tokenizer's own
normalizer, so they are saved in ``tokenizer.json``: training, onnxruntime and
ML Commons (whose tokenizer reads the same file) all apply them, to the query
and to the product text, and the pipeline needs no change.

Canonical forms: decimals ("1-1/2" → "1.5", ".75" → "0.75") and one short unit
after the number ("18-volt" → "18 v", '2"' → "2 in").
"""
from __future__ import annotations

FRACTIONS = {"1/8": ".125", "1/4": ".25", "3/8": ".375", "1/2": ".5", "5/8": ".625", "3/4": ".75", "7/8": ".875",
             "1/16": ".0625", "3/16": ".1875", "5/16": ".3125", "7/16": ".4375"}
#: Unit spellings after a number -> the canonical unit (longest spellings first within each alternation).
UNITS = (
    ("sq ft", r"square\s+feet|square\s+foot|sq\.?\s*ft\.?"),
    ("in", r"inches|inch|in\.?|\""),
    ("ft", r"feet|foot|ft\.?|'"),
    ("lb", r"pounds|pound|lbs\.?|lb\.?"),
    ("gal", r"gallons|gallon|gal\.?"),
    ("oz", r"ounces|ounce|oz\.?"),
    ("v", r"volts|volt|v"),
    ("w", r"watts|watt|w"),
    ("mm", r"millimeters|millimeter|mm"),
)


def term_rules() -> list[tuple[str, str]]:
    """(regex, replacement) in order: square feet before feet, mixed numbers before plain fractions."""
    rules = [(rf"(?i)(?<=\d)\s*-?\s*(?:{UNITS[0][1]})(?![a-z])", f" {UNITS[0][0]}")]
    for fraction, decimal in FRACTIONS.items():
        rules.append((rf"(?<=\d)[- ]{fraction}(?![\d/])", decimal))            # 1-1/2, 1 1/2 -> 1.5
    for fraction, decimal in FRACTIONS.items():
        rules.append((rf"(?<![\d./]){fraction}(?![\d/])", "0" + decimal))      # 1/2 -> 0.5
    rules.append((r"(?<![\d.])\.(?=\d)", "0."))                               # .75 -> 0.75
    rules += [(rf"(?i)(?<=\d)\s*-?\s*(?:{spellings})(?![a-z])", f" {unit}") for unit, spellings in UNITS[1:]]
    return rules


def with_term_normalizer(tokenizer):
    """``tokenizer`` (a fast one) with the rules in front of its normalizer; saved with it in tokenizer.json."""
    from tokenizers import Regex, normalizers

    backend = tokenizer.backend_tokenizer
    rules = [normalizers.Replace(Regex(pattern), replacement) for pattern, replacement in term_rules()]
    backend.normalizer = normalizers.Sequence(rules + ([backend.normalizer] if backend.normalizer else []))
    return tokenizer


def normalizes_terms(tokenizer) -> bool:
    """Whether ``tokenizer`` already carries the rules (a checkpoint trained with them)."""
    normalizer = tokenizer.backend_tokenizer.normalizer
    return normalizer is not None and normalizer.normalize_str('1/2"') == "0.5 in"
