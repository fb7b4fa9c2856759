"""Configuration: one dataclass per concern, loaded from YAML, unknown keys rejected.

A config file (``reranker.yaml`` in the working directory, or ``--config``) holds
sections named after the dataclasses below; command-line flags override fields.
Environment: ``OPENSEARCH_URL``, ``OPENSEARCH_USER`` and ``OPENSEARCH_PASSWORD``
override the ``cluster`` section, so CI and tests can point anywhere.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from .errors import ConfigError

DEFAULT_CONFIG_FILE = Path("reranker.yaml")


@dataclass(frozen=True)
class ClusterConfig:
    """Where the cluster is and how to authenticate."""

    url: str = "http://127.0.0.1:9200"
    username: str | None = None
    password: str | None = None
    verify_certs: bool = True
    ca_certs: str | None = None
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"cluster.url {self.url!r} is not an http(s) URL", "use e.g. http://127.0.0.1:9200")
        if self.timeout_s <= 0:
            raise ConfigError("cluster.timeout_s must be positive", "set e.g. timeout_s: 60")


@dataclass(frozen=True)
class LocalNodeConfig:
    """Where `reranker cluster up` keeps artifacts and the node, and how it runs it."""

    home: str | None = None
    port: int = 9200
    heap: str = "2g"
    java_home: str | None = None
    run_as_user: str = "nobody"
    start_timeout_s: float = 240.0

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"local_node.port {self.port} is out of range", "use a port in 1..65535")
        if not self.heap[:-1].isdigit() or self.heap[-1] not in "mg":
            raise ConfigError(f"local_node.heap {self.heap!r} is not like 2g or 512m", "set e.g. heap: 2g")


@dataclass(frozen=True)
class DeployConfig:
    """How a model zip becomes a serving rerank pipeline."""

    model_name: str = "reranker-student"
    model_version: str = "1"
    model_group: str = "reranker"
    index: str = "products"
    document_fields: tuple[str, ...] = ("title",)
    pipeline: str = "rerank"
    default_pipeline: bool = False
    deploy_timeout_s: float = 300.0
    chunk_size_bytes: int = 10_000_000

    def __post_init__(self) -> None:
        object.__setattr__(self, "document_fields", tuple(self.document_fields))
        if not self.document_fields:
            raise ConfigError("deploy.document_fields is empty", "name the text fields to rerank on, e.g. [title]")
        if not 0 < self.chunk_size_bytes <= 10_000_000:
            raise ConfigError("deploy.chunk_size_bytes must be in 1..10000000", "ML Commons rejects larger chunks")


@dataclass(frozen=True)
class Config:
    """All sections of ``reranker.yaml``."""

    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    local_node: LocalNodeConfig = field(default_factory=LocalNodeConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)


T = TypeVar("T")


def build(cls: type[T], values: dict[str, Any] | None, section: str) -> T:
    """Instantiate a config dataclass, naming any unknown or mistyped key."""
    values = dict(values or {})
    if not isinstance(values, dict):
        raise ConfigError(f"section {section!r} must be a mapping", "see reranker.yaml in the repository")
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in section {section!r}",
            f"valid keys: {', '.join(sorted(known))}",
        )
    try:
        return cls(**values)
    except TypeError as err:
        raise ConfigError(f"bad value in section {section!r}: {err}", "see reranker.yaml in the repository") from err


def load_config(path: Path | None) -> Config:
    """Load ``path`` (or ``reranker.yaml`` if present), then apply environment overrides."""
    raw: dict[str, Any] = {}
    source = path if path is not None else (DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None)
    if source is not None:
        try:
            raw = yaml.safe_load(Path(source).read_text(encoding="utf-8")) or {}
        except FileNotFoundError as err:
            raise ConfigError(f"config file {source} does not exist", "pass an existing file to --config") from err
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file {source} is not valid UTF-8 YAML ({err})".replace("\n", " "),
                              "fix the syntax") from err
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {source} must hold a mapping of sections", "see reranker.yaml")
    sections = {f.name: f.type for f in dataclasses.fields(Config)}
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(unknown)} in {source}", f"valid: {', '.join(sections)}")
    cluster = dict(raw.get("cluster") or {})
    for env, key in (("OPENSEARCH_URL", "url"), ("OPENSEARCH_USER", "username"), ("OPENSEARCH_PASSWORD", "password")):
        if os.environ.get(env):
            cluster[key] = os.environ[env]
    return Config(
        cluster=build(ClusterConfig, cluster, "cluster"),
        local_node=build(LocalNodeConfig, raw.get("local_node"), "local_node"),
        deploy=build(DeployConfig, raw.get("deploy"), "deploy"),
    )


def override(obj: T, **changes: Any) -> T:
    """Return ``obj`` with the non-None ``changes`` applied (click flags left unset are None)."""
    given = {k: v for k, v in changes.items() if v is not None}
    return dataclasses.replace(obj, **given) if given else obj  # type: ignore[type-var]
