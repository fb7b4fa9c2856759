"""`run --catalog --queries --judgments`: the plain way in for a user's own files, mapped onto the config.

The flags are sugar over what the config already holds (``data.kind: generic``, ``data.path``,
``data.catalog`` and ``--log``), so every step stays fingerprinted and resumable exactly as with ``--data``.
Every file is checked here, before the run touches the cluster or ``runs/``: a bad file stops it with one line.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from reranker_core.errors import ConfigError

NO_JUDGMENTS = ("--catalog without --judgments: there are no human labels to train the teacher on or to "
                "evaluate with (training on a pretrained teacher's scores alone is not supported yet)")
NO_JUDGMENTS_FIX = "pass --judgments FILE with columns query, product_id, grade (grade in [0, 1])"


def with_own_data(config, catalog: Path | None, judgments: Path | None, data: Path | None, kind: str | None):
    """The config with --catalog / --judgments applied as ``data.kind: generic``; unchanged without them.

    Refuses a mix with --data / a non-generic --kind (which files would win?) and a catalog without judgments.
    """
    if catalog is None and judgments is None:
        return config
    if data is not None or (kind not in (None, "generic")):
        raise ConfigError("--catalog / --judgments cannot be combined with --data or --kind "
                          f"{kind or ''}".rstrip(), "use either --catalog + --judgments, or --data + --kind")
    if judgments is None:
        raise ConfigError(NO_JUDGMENTS, NO_JUDGMENTS_FIX)
    if catalog is None and not config.data.catalog:
        raise ConfigError("--judgments without a catalog", "pass --catalog FILE (CSV, JSONL or Parquet with an id "
                          "column and text columns) or set data.catalog in reranker.yaml")
    for flag, path in (("--judgments", judgments), ("--catalog", catalog)):
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"{flag} {path}: no such file", f"check the path given to {flag}")
    data_config = dataclasses.replace(config.data, kind="generic", path=str(judgments),
                                      catalog=str(catalog) if catalog else config.data.catalog)
    return dataclasses.replace(config, data=data_config)


def check_queries(paths: tuple[Path, ...], query_field: str, flag: str = "--queries") -> None:
    """Every query log given with ``flag`` exists and has at least one query: a typo fails now, not after an hour
    of training."""
    from training.querylog import iter_log_file

    for path in paths:
        if not Path(path).is_file():
            raise ConfigError(f"{flag} {path}: no such file", f"check the path given to {flag}")
        if not any(line.query is not None for line in iter_log_file(Path(path), query_field)):
            raise ConfigError(f"{flag} {path} has no queries",
                              f"give a JSONL or CSV file with a {query_field}, query or search_term field "
                              "(augment.query_field names another)")
