"""Cluster assets kept as files in ``opensearch/`` and the pinned version.

Everything the code sends to OpenSearch that is not computed (settings, index
mappings, pipeline templates, the local-node recipe) lives there, so a search
engineer can read and diff it without reading Python.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from reranker_core.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSETS_DIR = REPO_ROOT / "opensearch"
VERSION_FILE = REPO_ROOT / ".env"


def asset_path(name: str) -> Path:
    """Path of one file under ``opensearch/``; fails clearly when the checkout is incomplete."""
    path = ASSETS_DIR / name
    if not path.is_file():
        raise ConfigError(
            f"cluster asset {path} is missing",
            "run from a full checkout of the project (pip install -e .)",
        )
    return path


def load_json(name: str) -> Any:
    """Parse a JSON asset."""
    return json.loads(asset_path(name).read_text(encoding="utf-8"))


def load_yaml(name: str) -> Any:
    """Parse a YAML asset."""
    return yaml.safe_load(asset_path(name).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def opensearch_version() -> str:
    """The single pinned OpenSearch version (``OPENSEARCH_VERSION`` in ``.env``)."""
    if not VERSION_FILE.is_file():
        raise ConfigError(f"{VERSION_FILE} is missing", "restore it from the repository")
    for line in VERSION_FILE.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "OPENSEARCH_VERSION" and value.strip():
            return value.strip()
    raise ConfigError(f"{VERSION_FILE} has no OPENSEARCH_VERSION=", "add e.g. OPENSEARCH_VERSION=3.6.0")
