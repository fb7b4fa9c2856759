"""Credentials never leave the process: URLs are shown without their user and password.

A cluster URL may carry them (``https://user:pass@host:9200`` in cluster.url,
``--url`` or ``OPENSEARCH_URL``). Every message that names the cluster passes
its URL through :func:`redact_url`; the CLI passes its one error line and every
log record through it too, in case a library echoes a URL we did not build.
"""
from __future__ import annotations

import logging
import re

#: ``scheme://`` then everything up to the token's last ``@``: a raw ``@`` or ``/`` in a password stays hidden too.
_USERINFO = re.compile(r"(?<=://)[^\s\"'<>]*@")


def redact_url(text: str) -> str:
    """``text`` (a URL, or a message holding URLs) with each ``user:password@`` replaced by ``***@``."""
    return _USERINFO.sub("***@", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts URLs in each record's final message (arguments included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_url(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


REDACTING_FILTER = RedactingFilter()
