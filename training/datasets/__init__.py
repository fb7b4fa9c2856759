"""Judged datasets: a catalog of products plus graded (query, product) judgments (see :mod:`.base`)."""
from .base import (DATASET_KINDS, DEFAULT_FRACTIONS, DEFAULT_SALT, ESCI_GRADES, SPLITS, WANDS_GRADES, DataError,
                   Dataset, Judgment, grade_distribution, group_by_query, homedepot_soft_label, load_dataset, load_esci,
                   load_generic, load_homedepot, load_wands, map_grade, normalize_query, read_catalog, read_table,
                   split_of)

__all__ = [
    "DATASET_KINDS", "DEFAULT_FRACTIONS", "DEFAULT_SALT", "ESCI_GRADES", "SPLITS", "WANDS_GRADES", "DataError",
    "Dataset", "Judgment", "grade_distribution", "group_by_query", "homedepot_soft_label", "load_dataset",
    "load_esci", "load_generic", "load_homedepot", "load_wands", "map_grade", "normalize_query", "read_catalog",
    "read_table", "split_of",
]
