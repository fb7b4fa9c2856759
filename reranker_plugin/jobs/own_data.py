"""`run --catalog --queries --judgments`: the plain way in for a user's own files, mapped onto the config.

The flags are sugar over what the config already holds (``data.kind: generic``, ``data.path``,
``data.catalog``, ``teacher.from_path`` and ``--log``), so every step stays fingerprinted and resumable exactly
as with ``--data``. Without judgments a trained teacher (--teacher-from) labels the pool instead.
Every file is checked here, before the run touches the cluster or ``runs/``: a bad file stops it with one line.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from reranker_core.errors import ConfigError

NO_JUDGMENTS = ("--catalog without --judgments: there are no human labels to train a teacher on, so the run needs "
                "one already trained")
NO_JUDGMENTS_FIX = ("pass --teacher-from DIR (a teacher `reranker train-teacher` wrote, e.g. runs/teacher) to train on "
                    "its scores alone, or --judgments FILE with columns query, product_id, grade")


def with_own_data(config, catalog: Path | None, judgments: Path | None, data: Path | None, kind: str | None,
                  teacher_from: Path | None = None):
    """The config with --catalog / --judgments applied as ``data.kind: generic`` and --teacher-from as
    ``teacher.from_path``; unchanged without them.

    Refuses a mix with --data / a non-generic --kind (which files would win?), a catalog without judgments
    unless a trained teacher is given, and a given teacher beside judgments (the run trains its own then).
    """
    if teacher_from is not None:
        config = dataclasses.replace(config, teacher=dataclasses.replace(config.teacher, from_path=str(teacher_from)))
    if catalog is None and judgments is None:
        return config
    if data is not None or (kind not in (None, "generic")):
        raise ConfigError("--catalog / --judgments cannot be combined with --data or --kind "
                          f"{kind or ''}".rstrip(), "use either --catalog + --judgments, or --data + --kind")
    if judgments is None and not config.teacher.from_path:
        raise ConfigError(NO_JUDGMENTS, NO_JUDGMENTS_FIX)
    if catalog is None and not config.data.catalog:
        raise ConfigError("--judgments without a catalog", "pass --catalog FILE (CSV, JSONL or Parquet with an id "
                          "column and text columns) or set data.catalog in reranker.yaml")
    for flag, path in (("--judgments", judgments), ("--catalog", catalog)):
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"{flag} {path}: no such file", f"check the path given to {flag}")
    data_config = dataclasses.replace(config.data, kind="generic", path=str(judgments) if judgments else None,
                                      catalog=str(catalog) if catalog else config.data.catalog)
    return dataclasses.replace(config, data=data_config)


def check_teacher_only(config, logs: tuple[Path, ...]) -> None:
    """A run on a given teacher (teacher.from_path, no judgments) has what it needs: no judgments beside it, a
    teacher in that folder, a catalog, and a query log (its queries' top hits are all the student learns from)."""
    from training.models import read_meta

    given = Path(config.teacher.from_path)
    if config.data.path:
        raise ConfigError(f"--teacher-from {given} with judgments ({config.data.path}): the run trains its own "
                          "teacher on them", "drop --teacher-from (teacher.from_path), or drop the judgments")
    if not (given / "reranker.json").is_file() or read_meta(given).get("role") != "teacher":
        raise ConfigError(f"--teacher-from {given}: no teacher there",
                          "pass a folder `reranker train-teacher` wrote (e.g. runs/teacher)")
    if not config.data.catalog:
        raise ConfigError("--teacher-from without a catalog", "pass --catalog FILE (or set data.catalog)")
    if not Path(config.data.catalog).is_file():
        raise ConfigError(f"--catalog {config.data.catalog}: no such file", "check the path given to --catalog")
    if not logs:
        raise ConfigError("--teacher-from without a query log: without judgments the student learns only from "
                          "logged queries' top hits", "pass --queries FILE (JSONL / CSV with user_query, query or "
                          "search_term)")


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
