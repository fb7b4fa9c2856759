"""Build an opensearch-py client from config and check the cluster can rerank."""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

from opensearchpy import OpenSearch, Transport
from opensearchpy.exceptions import AuthenticationException, AuthorizationException
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import NotFoundError, SSLError, TransportError

from reranker_core.config import ClusterConfig
from reranker_core.errors import ClusterError
from reranker_core.redact import redact_url

#: Plugins the rerank path needs on every node.
REQUIRED_PLUGINS = ("opensearch-ml", "opensearch-neural-search")
UNREACHABLE_FIX = "start one with `reranker cluster up` or set OPENSEARCH_URL"
PERMISSION_FIX = ("grant it to the user's role: the reranker_deployer role in opensearch/security/roles.yml "
                  "lists every permission reranker needs")


class PermissionDenied(ClusterError):
    """The security plugin refused a request (HTTP 403): the user's roles lack a permission."""


#: ML Commons' own refusal (model access control), not the security plugin's: no role grants it.
MODEL_ACCESS_FIX = ("the model is in a model group this user does not own (ML Commons model access control): "
                    "use your own models (`reranker models list`), or have the group's owner share it")
MODEL_ACCESS_SIGNS = ("privilege to perform this operation", "permissions to perform this operation")

BLOCK_FIX = ("OpenSearch sets such blocks itself when a node's disk passes its high or flood-stage watermark: "
             "free disk space (the block lifts within a minute), or clear it if someone set it "
             "(cluster.blocks.*, index.blocks.*)")


class _PermissionAwareTransport(Transport):
    """Every 403, whichever call hit it, becomes one line: a missing permission, or a cluster/index block."""

    def perform_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().perform_request(method, url, *args, **kwargs)
        except AuthorizationException as err:
            if _error_type(err).endswith("block_exception"):  # 403 too, but no role can grant it
                raise ClusterError(f"OpenSearch refused {method} {url.split('?')[0]}: {_reason(err)[:200]}",
                                   BLOCK_FIX) from err
            fix = MODEL_ACCESS_FIX if any(s in _reason(err) for s in MODEL_ACCESS_SIGNS) else PERMISSION_FIX
            raise PermissionDenied(_refusal(method, url, err), fix) from err


def _error(err: AuthorizationException) -> dict[str, Any]:
    info = err.info if isinstance(err.info, dict) else {}
    error = info.get("error", {})
    return error if isinstance(error, dict) else {"reason": str(error or err.error)}


def _error_type(err: AuthorizationException) -> str:
    return str(_error(err).get("type") or err.error)


def _reason(err: AuthorizationException) -> str:
    return str(_error(err).get("reason") or err.error)


def _refusal(method: str, url: str, err: AuthorizationException) -> str:
    """'user X may not ... (no permission for [action])' from the security plugin's reason text."""
    reason = _reason(err)
    action = re.search(r"no permissions for \[([^\]]*)\]", reason)
    user = re.search(r"User \[name=([^,\]]*)", reason)
    who = f"user {user.group(1)!r}" if user else "this user"
    what = f"no permission for [{action.group(1)}]" if action else reason[:200]
    return f"OpenSearch refused {method} {url.split('?')[0]} for {who}: {what}"


@contextmanager
def cluster_call(action: str, fix: str, missing: ClusterError | None = None) -> Iterator[None]:
    """Turn opensearch-py exceptions raised while doing ``action`` into one-line ClusterErrors.

    ``missing`` replaces the generic message when the cluster answers 404.
    """
    try:
        yield
    except NotFoundError as err:
        if missing is not None:
            raise missing from err
        raise ClusterError(f"{action} failed: {err.info or err.error}", fix) from err
    except OSConnectionError as err:
        raise ClusterError(f"cannot reach OpenSearch to {action} ({type(err).__name__})", UNREACHABLE_FIX) from err
    except TransportError as err:
        raise ClusterError(f"{action} failed: {err.info or err.error}", fix) from err


def make_client(cfg: ClusterConfig) -> OpenSearch:
    """A client for ``cfg.url``; credentials may come in the URL or in the config."""
    parts = urlsplit(cfg.url)
    username = cfg.username or (unquote(parts.username) if parts.username else None)
    password = cfg.password or (unquote(parts.password) if parts.password else None)
    host = {"host": parts.hostname, "port": parts.port or (443 if parts.scheme == "https" else 80)}
    if parts.path.strip("/"):
        host["url_prefix"] = parts.path.strip("/")
    return OpenSearch(
        hosts=[host],
        http_auth=(username, password) if username else None,
        use_ssl=parts.scheme == "https",
        verify_certs=cfg.verify_certs,
        ssl_show_warn=cfg.verify_certs,
        ca_certs=cfg.ca_certs,
        timeout=cfg.timeout_s,
        transport_class=_PermissionAwareTransport,
    )


def connect(cfg: ClusterConfig, wait_s: float = 0.0) -> OpenSearch:
    """Connect and fail with one clear line if the cluster is unreachable or lacks plugins."""
    client = make_client(cfg)
    url = redact_url(cfg.url)  # what every message below shows: the URL without user and password
    deadline = time.monotonic() + wait_s
    while True:
        try:
            client.info()
            break
        except AuthenticationException as err:
            raise ClusterError(f"OpenSearch at {url} rejected the credentials",
                               "set cluster.username/password or OPENSEARCH_USER/OPENSEARCH_PASSWORD") from err
        except SSLError as err:  # reachable, but TLS failed: the fix is the scheme or the CA, not the node
            raise ClusterError(f"TLS handshake with {url} failed",
                               "use http:// if the cluster has no TLS, else give its CA bundle "
                               "(cluster.ca_certs or OPENSEARCH_CA_CERTS) or set cluster.verify_certs") from err
        except (OSConnectionError, TransportError) as err:
            if time.monotonic() >= deadline:
                raise ClusterError(f"cannot reach OpenSearch at {url} ({type(err).__name__})",
                                   "start one with `reranker cluster up` or set OPENSEARCH_URL") from err
            time.sleep(1.0)
    installed = {row["component"] for row in client.cat.plugins(format="json")}
    missing = [p for p in REQUIRED_PLUGINS if p not in installed]
    if missing:
        raise ClusterError(f"OpenSearch at {url} lacks plugin(s) {', '.join(missing)}",
                           "install ml-commons and neural-search (the docker image and local node have them)")
    return client
