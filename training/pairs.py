"""Teacher-scored pairs on disk: the one format between teacher and student.

The teacher writes scores once (for judged training pairs with ``reranker
label``, for pairs mined from query logs with ``reranker augment``); the student
reads them and never calls the LLM. Parquet, one row per (query, product), with
provenance so every score can be traced to its teacher and retrieval.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from reranker_core.files import atomic_write

from .datasets import DataError

SCHEMA = pa.schema([
    ("query", pa.string()),            # as logged / judged (first-seen raw form)
    ("product_id", pa.string()),
    ("text", pa.string()),             # the product text the teacher read (template-rendered)
    ("teacher_score", pa.float64()),   # logit the student distils
    ("teacher_probs", pa.list_(pa.float64())),  # [P(relevant)] or P(level) per grade level
    ("teacher", pa.string()),          # teacher checkpoint name
    ("source", pa.string()),           # judged | augmented
    ("label", pa.float64()),           # human soft label when judged, else null
    ("rank", pa.int32()),              # retrieval rank (1-based) when augmented, else null
    ("retrieval_score", pa.float64()),  # BM25 score when augmented, else null
    ("query_frequency", pa.int64()),   # times the query occurred in the log, else null
])


def to_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Rows (dicts; missing optional columns become null) as a table with :data:`SCHEMA`."""
    return pa.Table.from_pylist([{name: r.get(name) for name in SCHEMA.names} for r in rows], schema=SCHEMA)


def write_pairs(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write ``rows`` to ``path`` atomically (a crash leaves no half file)."""
    table = to_table(rows)
    return atomic_write(Path(path), lambda tmp: pq.write_table(table, tmp))


def read_pairs(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """All rows of one or more pair files (a directory means every ``*.parquet`` below it, sorted)."""
    rows: list[dict[str, Any]] = []
    for path in map(Path, paths):
        files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
        if not files:
            raise DataError(f"{path} holds no .parquet pairs files", "run `reranker label` or `reranker augment`")
        for file in files:
            if not file.is_file():
                raise DataError(f"pairs file {file} does not exist", "run `reranker label` or `reranker augment`")
            try:
                table = pq.read_table(file)
            except (pa.ArrowInvalid, OSError) as err:
                raise DataError(f"{file} is not a Parquet pairs file ({err})", "re-create it") from err
            missing = {"query", "text", "teacher_score"} - set(table.column_names)
            if missing:
                raise DataError(f"{file} lacks column(s) {', '.join(sorted(missing))}", "re-create it")
            rows += table.to_pylist()
    return rows
