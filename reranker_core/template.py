"""The product-text template: one definition of what a model reads about a product.

Teacher, student, augmentation and the deployed pipeline must all see the same
text, or the student learns on one input and serves on another. With one field
the pipeline reranks on that field; with several, ``index-catalog`` stores the
rendered text in ``product_text`` and the pipeline reranks on that, because
neural-search concatenates ``document_fields`` without a separator.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ConfigError

RENDERED_FIELD = "product_text"


@dataclass(frozen=True)
class ProductTemplate:
    """Which product fields, in what order, joined how, and the token budget of a (query, product) pair."""

    fields: tuple[str, ...] = ("title",)
    separator: str = " | "
    max_tokens: int = 128

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", tuple(self.fields))
        if not self.fields:
            raise ConfigError("template.fields is empty", "name the product fields models read, e.g. [title]")
        if self.max_tokens < 8:
            raise ConfigError(f"template.max_tokens {self.max_tokens} is too small", "use e.g. 128")

    def render(self, product: Mapping[str, object]) -> str:
        """The product's text: the template's non-empty fields in order."""
        parts = []
        for name in self.fields:
            value = product.get(name)
            if isinstance(value, (list, tuple)):
                value = " ".join(str(v) for v in value if v)
            if value is not None and str(value).strip():
                parts.append(" ".join(str(value).split()))
        return self.separator.join(parts)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, stored in checkpoints so they read products exactly as they were trained to."""
        return {"fields": list(self.fields), "separator": self.separator, "max_tokens": self.max_tokens}

    @property
    def document_fields(self) -> tuple[str, ...]:
        """The index field(s) the rerank pipeline reads: the one field, or the rendered text."""
        return self.fields if len(self.fields) == 1 else (RENDERED_FIELD,)
