"""Fetch artifacts from Maven Central into a local cache, verified by Maven's checksums.

The local node is assembled only from Maven Central, the one artifact host our
machines (and many locked-down corporate networks) can reach.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import requests
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from reranker_core.errors import LocalNodeError
from reranker_core.files import atomic_write

log = logging.getLogger(__name__)

# Strongest first; Maven Central always publishes .sha1, often .sha512 too.
_CHECKSUMS = (("sha512", hashlib.sha512), ("sha256", hashlib.sha256), ("sha1", hashlib.sha1))
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Artifact:
    """Maven coordinates of one file."""

    group: str
    artifact: str
    version: str
    extension: str = "jar"
    classifier: str | None = None

    @property
    def filename(self) -> str:
        suffix = f"-{self.classifier}" if self.classifier else ""
        return f"{self.artifact}-{self.version}{suffix}.{self.extension}"

    @property
    def relative_path(self) -> str:
        return "/".join([*self.group.split("."), self.artifact, self.version, self.filename])

    def __str__(self) -> str:
        parts = [self.group, self.artifact, self.version] + ([self.classifier] if self.classifier else [])
        return ":".join(parts) + f"@{self.extension}"


class MavenCache:
    """Downloads artifacts once into ``root`` and hands back verified local paths."""

    def __init__(self, repository: str, root: Path, pinned_sha256: dict[str, str] | None = None,
                 timeout_s: float = 60.0) -> None:
        self.repository = repository.rstrip("/")
        self.root = root
        self.pinned_sha256 = pinned_sha256 or {}
        self.timeout_s = timeout_s

    def fetch(self, artifact: Artifact, progress: Progress | None = None) -> Path:
        """Return the cached file, downloading and verifying it first when needed."""
        target = self.root / artifact.relative_path
        marker = target.with_name(target.name + ".verified")
        if target.is_file() and marker.is_file():
            return target
        url = f"{self.repository}/{artifact.relative_path}"
        algorithm, expected = self._expected_checksum(url, artifact)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        tmp = Path(tmp_name)
        try:
            digest = hashlib.new(algorithm)
            with os.fdopen(fd, "wb") as out, self._get(url, artifact, stream=True) as response:
                total = int(response.headers.get("content-length") or 0)
                task = progress.add_task(artifact.filename, total=total or None) if progress else None
                for chunk in response.iter_content(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    if progress is not None and task is not None:
                        progress.advance(task, len(chunk))
                out.flush()
                os.fsync(out.fileno())  # else a power cut may leave an empty jar under the final name
            if digest.hexdigest() != expected:
                raise LocalNodeError(
                    f"checksum mismatch for {artifact} ({algorithm} {digest.hexdigest()} != {expected})",
                    "retry; if it persists your proxy is altering downloads",
                )
            tmp.replace(target)
            # atomic_write syncs the folder too, so the jar's rename is durable before the marker vouches for it
            atomic_write(marker, lambda t: t.write_text(f"{algorithm} {expected}\n", encoding="utf-8"))
            return target
        finally:
            tmp.unlink(missing_ok=True)

    def fetch_all(self, artifacts: list[Artifact]) -> list[Path]:
        """Fetch several artifacts under one progress display."""
        columns = ("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn())
        with Progress(*columns, transient=True) as progress:
            return [self.fetch(a, progress) for a in artifacts]

    def _expected_checksum(self, url: str, artifact: Artifact) -> tuple[str, str]:
        """A pinned sha256 from the recipe wins; otherwise the strongest checksum Maven publishes."""
        if artifact.filename in self.pinned_sha256:
            return "sha256", self.pinned_sha256[artifact.filename].lower()
        for name, _ in _CHECKSUMS:
            try:
                response = requests.get(f"{url}.{name}", timeout=self.timeout_s)
            except requests.RequestException as err:
                raise LocalNodeError(
                    f"cannot reach Maven Central at {self.repository} ({type(err).__name__})",
                    "check the network or proxy, or point maven_repository in opensearch/local-node.yml at a mirror",
                ) from err
            if response.status_code == 200 and response.text.strip():
                return name, response.text.split()[0].strip().lower()
        raise LocalNodeError(
            f"{artifact} has no checksum at {url} and none is pinned",
            "add its sha256 under pinned_sha256 in opensearch/local-node.yml",
        )

    def _get(self, url: str, artifact: Artifact, stream: bool) -> requests.Response:
        try:
            response = requests.get(url, timeout=self.timeout_s, stream=stream)
        except requests.RequestException as err:
            raise LocalNodeError(
                f"cannot download {artifact} from {self.repository} ({type(err).__name__})",
                "check the network or proxy",
            ) from err
        if response.status_code != 200:
            response.close()
            raise LocalNodeError(
                f"{artifact} is not on {self.repository} (HTTP {response.status_code})",
                "pin a version whose plugin zips are published there in .env",
            )
        return response
