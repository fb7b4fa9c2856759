"""The `reranker` command line, assembled here.

:mod:`.app` holds the click group and what commands share; each verb module
registers its commands on that group when imported below. Nothing else imports
the verb modules, so they cannot import each other.
"""
from . import check, clicks, jobs, node, run, serve, train  # noqa: F401  (register their commands on `cli`)
from .app import cli


def main() -> None:
    """Console-script entry point."""
    cli()


__all__ = ["cli", "main"]
