"""`reranker check`: will deploy + rerank work on this cluster? One probe per thing that can stop it.

Each probe only reads the cluster and returns one :class:`Probe` line; the
command exits 0 only when every probe passed. The probes follow what has
stopped deploys on real clusters: an unreachable URL, an old version, missing
plugins, ML Commons settings that refuse uploaded models or leave no node to
run them, ML Commons' memory and disk circuit breakers, a user whose role
lacks a permission, and a disk past its watermark. Last, one ``warn`` line per
production setting (opensearch/ml-settings-production.json) the cluster lacks:
those do not stop deploy + rerank, so they do not fail the command, and check
never sets them.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import AuthenticationException, NotFoundError, SSLError, TransportError
from opensearchpy.exceptions import ConnectionError as OSConnectionError

from reranker_core.config import Config
from reranker_core.errors import RerankerError
from reranker_core.redact import redact_url

from ..connection import PERMISSION_FIX, REQUIRED_PLUGINS, UNREACHABLE_FIX, PermissionDenied, make_client
from ..node.assets import load_json

#: The oldest OpenSearch the model zip and the rerank pipeline are tested on (the secured local node).
MIN_VERSION = (2, 19)
SECURITY_PLUGIN = "opensearch-security"
ML = "plugins.ml_commons."
PRODUCTION_FILE = "opensearch/ml-settings-production.json"
SETTINGS_FIX = f"PUT _cluster/settings with {PRODUCTION_FILE}'s values (or add nodes with the ml role)"
#: What must come before a production setting, lest it stop deploys (the `ml settings` probe would then fail).
PRODUCTION_FIRST = {"only_run_on_ml_node": "add nodes with the ml role, then "}
DEV_BREAKERS = "100 turns it off, as opensearch/ml-settings-local-dev.json does on a dev node"
#: Why a cluster should have each production setting (the lacking ones are `warn` lines).
PRODUCTION_WHY = {
    "allow_registering_model_via_local_file": "ML Commons refuses uploaded model zips",
    "only_run_on_ml_node": "models run on data nodes, beside the searches (ML Commons advises dedicated ML nodes)",
    "native_memory_threshold": "ML Commons' native-memory breaker is looser than its default",
    "jvm_heap_memory_threshold": "ML Commons' heap breaker is looser than its default",
    "disk_free_space_threshold": "ML Commons' free-disk breaker is looser than its default",
    "model_access_control_enabled": "model access control is off: every user with ML Commons permissions may "
                                    "use, undeploy or delete every model",
}
WATERMARK = "cluster.routing.allocation.disk.watermark."


@dataclass(frozen=True)
class Probe:
    """One line of `reranker check`: what was probed, whether deploy + rerank can work, and the fix if not."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    skipped: bool = False
    warn: bool = False  # advice: shown with its fix, but deploy + rerank work (ok stays True)

    def line(self) -> str:
        mark = "skip" if self.skipped else "warn" if self.warn else "ok" if self.ok else "FAIL"
        fix = f" — {self.fix}" if self.fix and (self.warn or not self.ok) else ""
        return f"{mark:<4}  {self.name:<12}  {self.detail}{fix}"


class _Cluster:
    """What the probes read, fetched once each."""

    def __init__(self, client: OpenSearch) -> None:
        self.client = client
        self._cache: dict[str, Any] = {}

    def get(self, key: str, fetch: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = fetch()
        return self._cache[key]

    @property
    def info(self) -> dict[str, Any]:
        return self.get("info", self.client.info)

    @property
    def plugins(self) -> dict[str, set[str]]:
        """Node name -> installed plugin components."""
        def fetch() -> dict[str, set[str]]:
            found: dict[str, set[str]] = {}
            for row in self.client.cat.plugins(format="json"):
                found.setdefault(row["name"], set()).add(row["component"])
            return found
        return self.get("plugins", fetch)

    def setting(self, key: str) -> Any:
        """The effective value of a cluster setting: transient, else persistent, else the default."""
        settings = self.get("settings", lambda: self.client.cluster.get_settings(include_defaults=True,
                                                                                 flat_settings=True))
        for level in ("transient", "persistent", "defaults"):
            if key in settings.get(level, {}):
                return settings[level][key]
        return None

    @property
    def nodes(self) -> dict[str, dict[str, Any]]:
        """Node id -> name, roles, and the OS, JVM and filesystem stats the breakers read."""
        def fetch() -> dict[str, dict[str, Any]]:
            stats = self.client.nodes.stats(metric="os,jvm,fs")["nodes"]
            return {node_id: node for node_id, node in stats.items()}
        return self.get("nodes", fetch)


def run_checks(config: Config, index: str) -> list[Probe]:
    """Every probe, in order; after a failed `reachable` the others are skipped (they would all fail)."""
    client = make_client(config.cluster)
    cluster = _Cluster(client)
    first = probe_reachable(cluster, redact_url(config.cluster.url))
    rest: list[tuple[str, Callable[[], Probe]]] = [
        ("version", lambda: probe_version(cluster)),
        ("plugins", lambda: probe_plugins(cluster)),
        ("ml settings", lambda: probe_ml_settings(cluster)),
        ("ml breakers", lambda: probe_ml_breakers(cluster)),
        ("permissions", lambda: probe_permissions(cluster, index)),
        ("disk", lambda: probe_disk(cluster)),
        ("production", lambda: probe_production(cluster)),
    ]
    if not first.ok:
        return [first, *(Probe(name, False, "not probed: the cluster is unreachable", skipped=True)
                         for name, _ in rest)]
    return [first, *(line for name, probe in rest for line in _guarded(name, probe))]


def _guarded(name: str, probe: Callable[[], Probe | list[Probe]]) -> list[Probe]:
    """The probe's line(s); a refusal or error while probing is that probe's failure, not the command's."""
    try:
        found = probe()
        return found if isinstance(found, list) else [found]
    except RerankerError as err:
        return [Probe(name, False, err.message, err.fix or "")]
    except OSConnectionError as err:
        return [Probe(name, False, f"lost the cluster while probing ({type(err).__name__})", UNREACHABLE_FIX)]
    except TransportError as err:
        return [Probe(name, False, f"the cluster refused the probe: {_reason(err)}", "check the cluster's logs")]


# ------------------------------------------------------------------ probes
def probe_reachable(cluster: _Cluster, url: str) -> Probe:
    try:
        info = cluster.info
        health = cluster.client.cluster.health()
    except AuthenticationException:
        return Probe("reachable", False, f"{url} rejected the credentials",
                     "set cluster.username/password or OPENSEARCH_USER/OPENSEARCH_PASSWORD")
    except SSLError:
        return Probe("reachable", False, f"TLS handshake with {url} failed",
                     "use http:// if the cluster has no TLS, else give its CA bundle (OPENSEARCH_CA_CERTS)")
    except PermissionDenied as err:
        return Probe("reachable", False, err.message, err.fix or PERMISSION_FIX)
    except (OSConnectionError, TransportError) as err:
        return Probe("reachable", False, f"cannot reach OpenSearch at {url} ({type(err).__name__})", UNREACHABLE_FIX)
    return Probe("reachable", True, f"{url}: cluster {info.get('cluster_name')!r}, {health.get('status')}, "
                                    f"{health.get('number_of_nodes')} node(s)")


def probe_version(cluster: _Cluster) -> Probe:
    version = cluster.info.get("version", {})
    number, distribution = str(version.get("number", "?")), version.get("distribution", "elasticsearch")
    found = tuple(int(p) for p in re.findall(r"\d+", number)[:2])
    if distribution != "opensearch":
        return Probe("version", False, f"{distribution} {number} is not OpenSearch",
                     "point cluster.url at an OpenSearch cluster")
    if found < MIN_VERSION:
        return Probe("version", False, f"OpenSearch {number} is older than {'.'.join(map(str, MIN_VERSION))}",
                     "upgrade the cluster (reranker is tested on 2.19 and 3.x)")
    return Probe("version", True, f"OpenSearch {number}")


def probe_plugins(cluster: _Cluster) -> Probe:
    """ML Commons and neural-search on every node (a node without them fails its share of searches)."""
    lacking = {node: [p for p in REQUIRED_PLUGINS if p not in found] for node, found in cluster.plugins.items()}
    lacking = {node: missing for node, missing in lacking.items() if missing}
    secured = any(SECURITY_PLUGIN in found for found in cluster.plugins.values())
    security = "security plugin present" if secured else "no security plugin"
    if lacking:
        names = sorted({p for missing in lacking.values() for p in missing})
        return Probe("plugins", False, f"{', '.join(names)} missing on node(s) {', '.join(sorted(lacking))} "
                                       f"({security})",
                     "install ml-commons and neural-search on every node (the docker image and local node have them)")
    return Probe("plugins", True, f"ML Commons and neural-search on all {len(cluster.plugins)} node(s); {security}")


def probe_ml_settings(cluster: _Cluster) -> Probe:
    """Settings that make ML Commons refuse our model: no uploads from a local file, no node to run it on."""
    if cluster.setting(ML + "only_run_on_ml_node") is None:
        return Probe("ml settings", False, "the cluster has no plugins.ml_commons settings: ML Commons is not "
                                           "installed", "install ml-commons on every node")
    if str(cluster.setting(ML + "allow_registering_model_via_local_file")).lower() != "true":
        return Probe("ml settings", False, f"{ML}allow_registering_model_via_local_file is false: ML Commons "
                                           "refuses uploaded model zips", f"set it to true ({SETTINGS_FIX})")
    only_ml = str(cluster.setting(ML + "only_run_on_ml_node")).lower() == "true"
    ml_nodes = [n["name"] for n in cluster.nodes.values() if "ml" in n.get("roles", [])]
    if only_ml and not ml_nodes:
        return Probe("ml settings", False, f"{ML}only_run_on_ml_node is true but no node has the ml role: "
                                           "models cannot be deployed anywhere",
                     f"set it to false or add ML nodes ({SETTINGS_FIX})")
    where = f"ML nodes {', '.join(ml_nodes)}" if only_ml else "any node"
    access = str(cluster.setting(ML + "model_access_control_enabled")).lower() == "true"
    note = "; model access control on (the model group is private to the deploying user)" if access else ""
    return Probe("ml settings", True, f"uploaded models allowed, deployed on {where}{note}")


def probe_ml_breakers(cluster: _Cluster) -> Probe:
    """ML Commons refuses to register, deploy or predict while a node's memory or disk is past its threshold."""
    native = float(cluster.setting(ML + "native_memory_threshold") or 90)
    heap = float(cluster.setting(ML + "jvm_heap_memory_threshold") or 85)
    disk = parse_bytes(str(cluster.setting(ML + "disk_free_space_threshold") or "0b"))
    only_ml = str(cluster.setting(ML + "only_run_on_ml_node")).lower() == "true"
    eligible = [n for n in cluster.nodes.values() if "ml" in n.get("roles", [])
                or (not only_ml and "data" in n.get("roles", []))]
    for node in eligible:
        used_mem = float(node["os"]["mem"]["used_percent"])
        used_heap = float(node["jvm"]["mem"]["heap_used_percent"])
        free = int(node["fs"]["total"]["available_in_bytes"])
        if used_mem > native:
            return Probe("ml breakers", False, f"node {node['name']} uses {used_mem:.0f}% of its memory, past "
                                               f"{ML}native_memory_threshold {native:.0f}: ML Commons refuses models",
                         f"free memory or raise the threshold ({DEV_BREAKERS})")
        if used_heap > heap:
            return Probe("ml breakers", False, f"node {node['name']} heap is {used_heap:.0f}% used, past "
                                               f"{ML}jvm_heap_memory_threshold {heap:.0f}: ML Commons refuses models",
                         f"give the node more heap or raise the threshold ({DEV_BREAKERS})")
        if free < disk:
            return Probe("ml breakers", False, f"node {node['name']} has {_size(free)} free, under "
                                               f"{ML}disk_free_space_threshold {_size(disk)}: "
                                               "ML Commons refuses models",
                         f"free disk space or lower the threshold (0b turns it off on a dev node)")
    return Probe("ml breakers", True, f"memory, heap and disk under ML Commons' thresholds on {len(eligible)} "
                                      f"node(s) (thresholds: memory {native:.0f}%, heap {heap:.0f}%, "
                                      f"free disk {_size(disk)})")


def probe_permissions(cluster: _Cluster, index: str) -> Probe:
    """The user's roles, and one harmless read per permission group deploy + rerank needs."""
    secured = any(SECURITY_PLUGIN in found for found in cluster.plugins.values())
    if not secured:
        return Probe("permissions", True, "no security plugin: every request is allowed")
    who = cluster.client.transport.perform_request("GET", "/_plugins/_security/authinfo")
    user, roles = who.get("user_name", "?"), ", ".join(who.get("roles") or []) or "none"
    missing = missing_permissions(cluster.client, index)
    if missing:
        return Probe("permissions", False, f"user {user!r} (roles: {roles}): {missing[0]}", PERMISSION_FIX)
    return Probe("permissions", True, f"user {user!r} (roles: {roles}) reads ML Commons models, search pipelines "
                                      f"and index {index!r} (writes are checked when made)")


def missing_permissions(client: OpenSearch, index: str) -> list[str]:
    """What the user may not do among harmless reads standing for each permission group deploy + rerank need:
    ML Commons' API, search pipelines, the product index (get/count, so the index pattern is checked even
    when the index is absent). Empty when all are allowed; each entry names the refused action."""
    reads: list[tuple[str, Callable[[], Any]]] = [
        ("ML Commons", lambda: client.plugins.ml.search_models(body={"size": 0, "query": {"match_all": {}}})),
        ("search pipelines", lambda: client.search_pipeline.get()),
        # GET, not HEAD: a refused HEAD has no body, so no reason naming the refused action
        (f"index {index!r}", lambda: client.indices.get(index=index) and client.count(index=index)),
    ]
    refused = []
    for _, read in reads:
        try:
            read()
        except PermissionDenied as err:
            refused.append(err.message)
        except NotFoundError:  # allowed, nothing there yet (no model or pipeline registered)
            pass
    return refused


def probe_disk(cluster: _Cluster) -> Probe:
    """Disk use against the watermarks: past flood stage indices turn read-only, past high no shard is placed."""
    if str(cluster.setting("cluster.routing.allocation.disk.threshold_enabled")).lower() == "false":
        return Probe("disk", True, "disk watermarks are disabled (cluster.routing.allocation.disk.threshold_enabled)")
    marks = {level: str(cluster.setting(WATERMARK + level)) for level in ("low", "high", "flood_stage")}
    rows = [r for r in cluster.client.cat.allocation(format="json", bytes="b") if r.get("disk.total")]
    single_exempt = (len(rows) <= 1 and str(cluster.setting(WATERMARK + "enable_for_single_data_node")).lower()
                     == "false")
    shown, low = "", False
    for row in rows:
        total, avail = int(row["disk.total"]), int(row["disk.avail"])
        used = 100.0 * (total - avail) / total if total else 0.0
        where = f"node {row['node']} disk {used:.0f}% used, {_size(avail)} free"
        if past(marks["flood_stage"], used, avail):
            return Probe("disk", False, f"{where}: past the flood-stage watermark {marks['flood_stage']} (indices "
                                        "turn read-only)", "free disk space (the block lifts within a minute)")
        if past(marks["high"], used, avail) and not single_exempt:
            return Probe("disk", False, f"{where}: past the high watermark {marks['high']} (no new shard is placed "
                                        "there)", "free disk space or add nodes")
        shown, low = shown or where, low or past(marks["low"], used, avail)
    note = " (past the low watermark: no new replicas there)" if low else ""
    return Probe("disk", True, f"{shown or 'no data node reported'}{note}; watermarks high {marks['high']}, "
                               f"flood stage {marks['flood_stage']}")


def probe_production(cluster: _Cluster) -> list[Probe]:
    """One ``warn`` line per setting of opensearch/ml-settings-production.json the cluster lacks (read only)."""
    wanted = load_json("ml-settings-production.json")["persistent"]
    effective = {key: cluster.setting(key) for key in wanted}
    lacking = production_gaps(wanted, effective)
    if not lacking:
        return [Probe("production", True, f"ML Commons settings as in {PRODUCTION_FILE} (access control on, "
                                          "breakers at their defaults or stricter)")]
    return [Probe("production", True, f"{key} is {effective[key]}: {PRODUCTION_WHY.get(key[len(ML):], 'differs')}",
                  f"{PRODUCTION_FIRST.get(key[len(ML):], '')}set it to {str(wanted[key]).lower()} "
                  f"(PUT _cluster/settings, as in {PRODUCTION_FILE})", warn=True)
            for key in lacking]


def production_gaps(wanted: dict[str, Any], effective: dict[str, Any]) -> list[str]:
    """Keys whose effective value is looser than production's: a breaker threshold above it (a free-disk floor
    below it), a switch that differs. Stricter breakers are fine."""
    gaps = []
    for key, value in wanted.items():
        have = effective.get(key)
        if have is None:
            gaps.append(key)
        elif isinstance(value, bool):
            if str(have).lower() != str(value).lower():
                gaps.append(key)
        elif isinstance(value, (int, float)):
            if float(have) > float(value):
                gaps.append(key)
        elif parse_bytes(str(have)) < parse_bytes(str(value)):
            gaps.append(key)
    return gaps


# ---------------------------------------------------------------- helpers
_UNITS = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40, "pb": 1 << 50}


def parse_bytes(text: str) -> int:
    """``5gb`` -> bytes, as OpenSearch writes byte sizes."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([kmgtp]?b)?\s*", text.lower())
    if not match:
        raise RerankerError(f"cannot read the byte size {text!r}", "report this setting's value")
    return int(float(match.group(1)) * _UNITS[match.group(2) or "b"])


def past(watermark: str, used_percent: float, avail_bytes: int) -> bool:
    """Whether a node is past a watermark given as a percentage (``90%``), a ratio (``0.9``) or free bytes."""
    text = watermark.strip().lower()
    if text.endswith("%"):
        return used_percent >= float(text[:-1])
    if re.fullmatch(r"[\d.]+", text):
        return used_percent >= float(text) * 100
    return avail_bytes <= parse_bytes(text)


def _size(n: int) -> str:
    for unit in ("b", "kb", "mb", "gb", "tb"):
        if n < 1024 or unit == "tb":
            return f"{n:.0f}{unit}" if unit == "b" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n}b"


def _reason(err: TransportError) -> str:
    info = err.info if isinstance(err.info, dict) else {}
    error = info.get("error", info)
    return str(error.get("reason") if isinstance(error, dict) else error or err.error)[:200]
