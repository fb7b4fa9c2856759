"""Typed errors whose message names the bad input and the fix.

The CLI turns any :class:`RerankerError` into one line on stderr and a non-zero
exit, so every failure a user can cause should raise one of these.
"""
from __future__ import annotations


class RerankerError(Exception):
    """Base error: ``str(err)`` is the one line shown to the user."""

    exit_code = 1

    def __init__(self, message: str, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(f"{message} — {fix}" if fix else message)


class ConfigError(RerankerError):
    """The YAML config or a command-line value is invalid."""

    exit_code = 2


class ClusterError(RerankerError):
    """The cluster is unreachable, misconfigured, or refused a request."""


class LocalNodeError(RerankerError):
    """The local node could not be assembled, started or stopped."""


class ModelError(RerankerError):
    """A model path, package or checkpoint is missing or unusable."""

    exit_code = 2


class ModelZipError(RerankerError):
    """A model zip breaks the ML Commons contract."""


class DeployError(RerankerError):
    """Registering or deploying a model failed (after rollback)."""


class OutputError(RerankerError):
    """An output could not be written (disk full, file too large, no permission); the previous one is untouched."""


class UnconfirmedChange(RerankerError):
    """A job would change a cluster in a way the user has not confirmed (--yes, --overwrite); nothing was changed."""
