"""Judged datasets: one module per format, all returning the same :class:`Dataset`.

``load_dataset(kind, ...)`` picks the loader for ``data.kind``; the kinds are
``DATA_KINDS`` (the list ``reranker_core.config`` validates ``data.kind``
against). What every format shares (records, splits, readers) is in
:mod:`training.datasets.base`.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from reranker_core.config import DATA_KINDS, Config

from .base import (DEFAULT_FRACTIONS, DEFAULT_SALT, SPLITS, DataError, Dataset, Judgment, grade_distribution,
                   group_by_query, map_grade, normalize_query, read_table, split_of, valid_unicode)
from .esci import ESCI_GRADES, load_esci
from .generic import load_generic, read_catalog
from .homedepot import homedepot_soft_label, load_homedepot
from .wands import WANDS_GRADES, load_wands

__all__ = [
    "DATA_KINDS", "DEFAULT_FRACTIONS", "DEFAULT_SALT", "ESCI_GRADES", "SPLITS", "WANDS_GRADES", "DataError",
    "Dataset", "Judgment", "grade_distribution", "group_by_query", "homedepot_soft_label", "load_dataset",
    "load_esci", "load_generic", "load_homedepot", "load_wands", "map_grade", "normalize_query", "read_catalog",
    "read_table", "split_of", "valid_unicode", "load_data",
]
_loaded: dict[str, Dataset] = {}  # `reranker run` chains steps in one process: parse each dataset once


def load_dataset(kind: str, path: Path, grade_map: Mapping[str, float] | None = None,
                 catalog: Path | None = None) -> Dataset:
    """The loader for ``data.kind``. Home Depot grades are rater means, so it ignores ``grade_map``."""
    if kind == "homedepot":
        return load_homedepot(path)
    if kind == "wands":
        return load_wands(path, grade_map)
    if kind == "esci":
        return load_esci(path, grade_map)
    if kind == "generic":
        if catalog is None:
            raise DataError("data kind 'generic' needs a catalog file",
                            "set data.catalog to the products CSV/JSONL/Parquet")
        return load_generic(path, catalog, grade_map)
    raise DataError(f"unknown data kind {kind!r}", f"use one of {', '.join(DATA_KINDS)}")


def load_data(config: Config) -> Dataset:
    """The configured judged dataset (``data.*``), read once per process and data config; an edited file is
    read again."""
    cfg = config.data
    files = [cfg.require_path(), *([Path(cfg.catalog)] if cfg.catalog else [])]
    key = repr((cfg, [f.stat().st_mtime_ns if f.exists() else None for f in files]))
    if key not in _loaded:
        _loaded[key] = load_dataset(cfg.kind, cfg.require_path(), cfg.grade_map,
                                    Path(cfg.catalog) if cfg.catalog else None)
    return _loaded[key]
