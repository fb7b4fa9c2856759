"""A single-node OpenSearch with ML Commons and neural-search, assembled from Maven Central.

This is the embedded default for users without Docker and what tests use where no
Docker engine runs. The recipe (artifacts, DJL natives, node settings) lives in
``opensearch/local-node.yml``; the version in ``.env``. ``secure=True`` uses
``opensearch/secure-node.yml`` instead: OpenSearch 2.19.1 with the security
plugin (HTTPS, basic auth, a restricted role; see ``security.py``).

Layout under ``home`` (``local_node.home``, default ``~/.cache/reranker``, or
``/var/cache/reranker`` for root, whose home the node's user cannot enter)::

    maven/                       verified downloads, shared by versions
    opensearch-<v>/dist/         the installed node (core + plugins)
    opensearch-<v>/data/         index data, and ml_cache/ seeded with libtorch
    opensearch-<v>/logs/         logs and the pid file
    opensearch-<v>/security/     CA, certificates, generated passwords (secured node)
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import TransportError

from reranker_core.config import ClusterConfig, Config, LocalNodeConfig
from reranker_core.errors import LocalNodeError
from reranker_core.files import atomic_write, default_home, fsync_tree, sync_renamed

from . import identity, security
from .assets import load_json, load_yaml, opensearch_version
from .maven import Artifact, MavenCache

log = logging.getLogger(__name__)

JVM_ROOT = Path("/usr/lib/jvm")
PID_GRACE_S = 60.0  # how long a starting JVM may take to write its pid file


@dataclass(frozen=True)
class NodeLayout:
    """Paths of one local node installation."""

    home: Path
    version: str

    @property
    def root(self) -> Path:
        return self.home / f"opensearch-{self.version}"

    @property
    def dist(self) -> Path:
        return self.root / "dist"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def tmp(self) -> Path:
        """The JVM's temp dir: ML Commons unpacks ~380 MB of ONNX Runtime there on every start."""
        return self.root / "tmp"

    @property
    def pidfile(self) -> Path:
        return self.logs / "opensearch.pid"

    @property
    def maven(self) -> Path:
        return self.home / "maven"

    @property
    def security(self) -> Path:
        return self.root / "security"


@dataclass(frozen=True)
class NodeStatus:
    """What `cluster status` reports."""

    url: str
    running: bool
    pid: int | None
    health: str | None
    version: str | None
    plugins: tuple[str, ...]
    log_file: Path


class LocalNode:
    """Assemble, start, stop and inspect the local node."""

    def __init__(self, cfg: LocalNodeConfig, secure: bool = False) -> None:
        self.cfg = cfg
        self.secure = secure
        self.recipe: dict[str, Any] = load_yaml("secure-node.yml" if secure else "local-node.yml")
        self.version = str(self.recipe.get("version") or opensearch_version())
        self.layout = NodeLayout(Path(cfg.home) if cfg.home else default_home(), self.version)
        self.host = self.recipe["node"]["host"]
        self.port = cfg.secure_port if secure else cfg.port
        self.url = f"{'https' if secure else 'http'}://{self.host}:{self.port}"

    @property
    def credentials(self) -> security.Credentials | None:
        """The secured node's CA bundle and passwords (None for the plain node, or before the first `up`)."""
        return security.Credentials.load(self.layout.security) if self.secure else None

    def cluster_config(self) -> ClusterConfig:
        """How to reach this node as its administrator (no credentials on the plain node)."""
        creds = self.credentials
        if creds is None:
            return ClusterConfig(url=self.url)
        return ClusterConfig(url=self.url, username=security.ADMIN_USER,
                             password=creds.passwords[security.ADMIN_USER], ca_certs=str(creds.ca_certs))

    def _request(self, method: str, path: str, timeout: float = 5.0, **kwargs: Any) -> requests.Response:
        """One HTTP call to the node; to the secured one as its admin user, trusting its own CA."""
        creds = self.credentials
        if creds is not None:
            kwargs.update(verify=str(creds.ca_certs), auth=(security.ADMIN_USER, creds.passwords[security.ADMIN_USER]))
        return requests.request(method, f"{self.url}{path}", timeout=timeout, **kwargs)

    def _get(self, path: str, timeout: float = 5.0) -> requests.Response:
        return self._request("GET", path, timeout)

    # ----------------------------------------------------------------- public
    def up(self) -> NodeStatus:
        """Assemble the node if needed, start it unless running, apply ML settings. Idempotent."""
        if self._pid() is not None and self._http_ok():
            self._configure()
            return self.status()
        java = self.recipe["java"]
        java_home = find_java(self.cfg.java_home, int(java["min_version"]), java.get("max_version"))
        if _port_taken(self.host, self.port):
            key = "secure_port" if self.secure else "port"
            raise LocalNodeError(
                f"port {self.port} on {self.host} is taken by another process",
                f"stop it, or set local_node.{key} in reranker.yaml (and cluster.url to match)",
            )
        self._assemble(java_home)
        self._start(java_home)
        self._configure()
        return self.status()

    def _configure(self) -> None:
        """What a running node gets on every `up`: ML Commons settings, when secured the roles, and its
        cluster UUID recorded, so `reranker run` can tell this node from another cluster on the same port."""
        if self.secure:
            self._apply_security_roles()
        self._apply_ml_settings()
        self._record_identity()

    def _record_identity(self) -> None:
        try:
            cluster_uuid = self._get("").json().get("cluster_uuid", "")
        except (requests.RequestException, ValueError) as err:
            raise LocalNodeError(f"the node at {self.url} did not say its cluster UUID",
                                 f"see {self.log_file}") from err
        identity.record_cluster_uuid(self.layout.root, cluster_uuid)

    def down(self, timeout_s: float = 60.0) -> bool:
        """Stop the node; returns False if it was not running."""
        pid = self._pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.layout.pidfile.unlink(missing_ok=True)
        return True

    def status(self) -> NodeStatus:
        pid = self._pid()
        health = version = None
        plugins: tuple[str, ...] = ()
        if self._http_ok():
            try:
                health = self._get("/_cluster/health").json()["status"]
                version = self._get("").json()["version"]["number"]
                rows = self._get("/_cat/plugins?format=json").json()
                plugins = tuple(sorted({r["component"] for r in rows}))
            except (requests.RequestException, KeyError, ValueError):
                pass
        return NodeStatus(self.url, pid is not None, pid, health, version, plugins, self.log_file)

    @property
    def log_file(self) -> Path:
        return self.layout.logs / f"{self.recipe['node']['settings']['cluster.name']}.log"

    def tail_logs(self, lines: int) -> list[str]:
        if not self.log_file.is_file():
            raise LocalNodeError(f"no log at {self.log_file}", "start the node with `reranker cluster up`")
        with self.log_file.open(encoding="utf-8", errors="replace") as fh:
            return fh.readlines()[-lines:]

    # -------------------------------------------------------------- assembly
    def _artifact(self, spec: dict[str, Any]) -> Artifact:
        return Artifact(
            group=spec["group"],
            artifact=spec["artifact"],
            version=str(spec["version"]).replace("{v}", self.version),
            extension=spec.get("extension", "jar"),
            classifier=spec.get("classifier"),
        )

    def _assemble(self, java_home: Path) -> None:
        """Install core + plugins into ``dist/`` and seed DJL, each step atomic and skipped when done."""
        layout = self.layout
        maven = MavenCache(self.recipe["maven_repository"], layout.maven, self.recipe.get("pinned_sha256"))
        djl = self.recipe["djl"]
        torch_dir = layout.data / "ml_cache" / djl["cache_dir"].replace("{torch}", djl["torch"])
        stamp, wanted = layout.root / "assembled-from.sha256", self._recipe_fingerprint()
        if not stamp.is_file() and layout.dist.is_dir():  # assembled before stamps existed: take it as current
            atomic_write(stamp, lambda tmp: tmp.write_text(wanted + "\n", encoding="utf-8"))
        if stamp.is_file() and stamp.read_text(encoding="utf-8").strip() != wanted:
            log.info("the recipe changed since the node was assembled: reassembling (data is kept)")
            shutil.rmtree(layout.dist, ignore_errors=True)
            shutil.rmtree(torch_dir.parent, ignore_errors=True)
        if layout.dist.joinpath("bin", "opensearch").is_file() and torch_dir.is_dir():
            self._prepare_dirs()
            return
        core = self._artifact(self.recipe["core"])
        plugins = [self._artifact(p) for p in self.recipe["plugins"]]
        libtorch, jni = self._artifact(djl["libtorch"]), self._artifact(djl["jni"])
        modules = {name: [self._artifact(j) for j in spec["jars"]]
                   for name, spec in (self.recipe.get("modules") or {}).items()}
        module_jars = [jar for jars in modules.values() for jar in jars]
        paths = maven.fetch_all([core, *plugins, *module_jars, libtorch, jni])
        core_zip, plugin_zips, libtorch_jar, jni_jar = paths[0], paths[1:len(plugins) + 1], paths[-2], paths[-1]
        jar_paths = dict(zip(module_jars, paths[len(plugins) + 1:-2]))
        layout.root.mkdir(parents=True, exist_ok=True)
        if not layout.dist.joinpath("bin", "opensearch").is_file():
            built = {name: [jar_paths[j] for j in jars] for name, jars in modules.items()}
            self._install_dist(core_zip, built, plugin_zips, java_home)
        if not torch_dir.is_dir():
            self._seed_djl(torch_dir, libtorch_jar, djl["libtorch"]["member_prefix"], jni_jar,
                           djl["jni"]["member"], djl["djl_api"])
        atomic_write(stamp, lambda tmp: tmp.write_text(wanted + "\n", encoding="utf-8"))
        self._prepare_dirs()

    def _recipe_fingerprint(self) -> str:
        """Hash of what assembly reads from the recipe, so an edited recipe reassembles the node."""
        parts = {key: self.recipe.get(key) for key in ("core", "plugins", "modules", "djl", "version")}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def _install_dist(self, core_zip: Path, module_jars: dict[str, list[Path]], plugin_zips: list[Path],
                      java_home: Path) -> None:
        staging = Path(tempfile.mkdtemp(dir=self.layout.root, prefix=".dist-"))
        try:
            extract_zip(core_zip, staging, strip_top=True)
            modules = staging / "modules"
            for name, jars in module_jars.items():
                self._build_module(modules / name, name, self.recipe["modules"][name], jars)
            missing = [m for m in self.recipe["required_modules"] if not (modules / m).is_dir()]
            if missing:
                raise LocalNodeError(f"core zip {core_zip.name} lacks module(s) {', '.join(missing)}",
                                     "pin a version whose integ-test zip bundles them")
            env = self._java_env(java_home)
            for plugin in plugin_zips:
                log.info("installing plugin %s", plugin.name)
                result = subprocess.run(
                    [str(staging / "bin" / "opensearch-plugin"), "install", "--batch", plugin.as_uri()],
                    env=env, capture_output=True, text=True,
                )
                if result.returncode != 0:
                    detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
                    raise LocalNodeError(f"installing {plugin.name} failed: {detail[0]}",
                                         "check that the plugin version equals the core version in .env")
            shutil.rmtree(self.layout.dist, ignore_errors=True)
            fsync_tree(staging)
            staging.replace(self.layout.dist)
            sync_renamed(self.layout.dist)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _build_module(self, target: Path, name: str, spec: dict[str, Any], jars: list[Path]) -> None:
        """A core module from its Maven jars: the jars, a plugin descriptor and the permissions it needs."""
        target.mkdir(parents=True)
        for jar in jars:
            shutil.copyfile(jar, target / jar.name)
        descriptor = {"name": name, "description": spec["description"], "version": self.version,
                      "opensearch.version": self.version, "java.version": "11", "classname": spec["classname"],
                      "extended.plugins": "", "has.native.controller": "false"}
        (target / "plugin-descriptor.properties").write_text(
            "".join(f"{k}={v}\n" for k, v in descriptor.items()), encoding="utf-8")
        (target / "plugin-security.policy").write_text(spec.get("policy") or "grant {};\n", encoding="utf-8")

    def _seed_djl(self, torch_dir: Path, libtorch_jar: Path, prefix: str, jni_jar: Path, member: str,
                  djl_api: str) -> None:
        """Put libtorch and DJL's JNI where DJL looks first, so deploying needs no network."""
        torch_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=torch_dir.parent, prefix=".seed-"))
        try:
            with zipfile.ZipFile(libtorch_jar) as jar:
                for info in jar.infolist():
                    if info.filename.startswith(prefix) and not info.is_dir():
                        (staging / Path(info.filename).name).write_bytes(jar.read(info))
            with zipfile.ZipFile(jni_jar) as jar:
                (staging / f"{djl_api}-libdjl_torch.so").write_bytes(jar.read(member))
            fsync_tree(staging)
            staging.replace(torch_dir)
            sync_renamed(torch_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _prepare_dirs(self) -> None:
        """Write the node config and hand the tree to the user the node runs as."""
        layout = self.layout
        layout.logs.mkdir(parents=True, exist_ok=True)
        layout.data.mkdir(parents=True, exist_ok=True)
        settings = dict(self.recipe["node"]["settings"])
        settings.update({
            "network.host": self.host,
            "http.port": self.port,
            "path.data": str(layout.data),
            "path.logs": str(layout.logs),
        })
        if self.secure:
            security.ensure_material(layout.security, self.recipe["security"]["users"])
            security.install(layout.security, layout.dist / "config")
            settings.update(security.node_settings())
        config = layout.dist / "config" / "opensearch.yml"
        text = "".join(f"{key}: {json.dumps(value)}\n" for key, value in settings.items())
        header = "# written by `reranker cluster up`; edit opensearch/local-node.yml instead\n"
        atomic_write(config, lambda tmp: tmp.write_text(header + text, encoding="utf-8"))
        user = self._run_as()
        if user is not None:
            for path in (layout.dist, layout.data, layout.logs):
                _chown_tree(path, user.pw_uid, user.pw_gid)
            for parent in (layout.root, layout.home):
                parent.chmod(parent.stat().st_mode | 0o755)

    # ------------------------------------------------------------------ run
    def _run_as(self) -> pwd.struct_passwd | None:
        """OpenSearch refuses to run as root, so root runs it as ``local_node.run_as_user``."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(self.cfg.run_as_user)
        except KeyError as err:
            raise LocalNodeError(f"user {self.cfg.run_as_user!r} does not exist (OpenSearch will not run as root)",
                                 "create it or set local_node.run_as_user") from err

    def _java_env(self, java_home: Path) -> dict[str, str]:
        env = dict(os.environ)
        env["OPENSEARCH_JAVA_HOME"] = str(java_home)
        env["OPENSEARCH_JAVA_OPTS"] = f"-Xms{self.cfg.heap} -Xmx{self.cfg.heap}"
        env["OPENSEARCH_TMPDIR"] = str(self.layout.tmp)
        env.pop("JAVA_TOOL_OPTIONS", None)
        return env

    def _start(self, java_home: Path) -> None:
        layout = self.layout
        user = self._run_as()
        stdout = layout.logs / "stdout.log"
        layout.pidfile.unlink(missing_ok=True)
        # OpenSearch's default is a fresh /tmp/opensearch-* per start, never removed: with ML Commons
        # each start left ~380 MB behind, and a day of restarts pushed the disk past its high watermark.
        shutil.rmtree(layout.tmp, ignore_errors=True)
        layout.tmp.mkdir(parents=True)
        if user is not None:
            os.chown(layout.tmp, user.pw_uid, user.pw_gid)
        with stdout.open("wb") as out:
            proc = subprocess.Popen(
                [str(layout.dist / "bin" / "opensearch"), "-d", "-p", str(layout.pidfile)],
                env=self._java_env(java_home), stdout=out, stderr=subprocess.STDOUT, cwd=layout.dist,
                user=user.pw_uid if user else None, group=user.pw_gid if user else None,
                extra_groups=[] if user else None, start_new_session=True,
            )
            code = proc.wait(timeout=120)
        if code != 0:
            raise LocalNodeError(f"OpenSearch exited with code {code}: {self._last_error(stdout)}",
                                 f"see {stdout} and {self.log_file}")
        started = time.monotonic()
        deadline = started + self.cfg.start_timeout_s
        seen: int | None = None  # the JVM's pid, once it has written its pid file
        while not self._http_ok():
            pid = self._pid()
            seen = pid or seen
            # The launcher returns at once (-d), and on a busy machine the JVM took 16 s to write its pid file
            # (10 s was the old limit: a false "stopped" left a healthy node running, untracked). So the node
            # stopped when the pid we saw is gone, or when no pid file appeared within the grace period.
            if (seen is not None and pid is None) or (seen is None and time.monotonic() > started + PID_GRACE_S):
                raise LocalNodeError(f"OpenSearch stopped during start-up: {self._last_error(self.log_file)}",
                                     f"see {self.log_file}")
            if time.monotonic() > deadline:
                raise LocalNodeError(f"OpenSearch did not answer on {self.url} within {self.cfg.start_timeout_s:.0f}s",
                                     f"see {self.log_file}; raise local_node.start_timeout_s on slow machines")
            time.sleep(1.0)
        self._wait_for_yellow()

    def _wait_for_yellow(self) -> None:
        timeout_s = self.cfg.start_timeout_s
        try:
            self._get(f"/_cluster/health?wait_for_status=yellow&timeout={int(timeout_s)}s", timeout=timeout_s + 5)
        except requests.RequestException as err:
            raise LocalNodeError(f"cluster at {self.url} did not turn yellow", "see `reranker cluster logs`") from err

    def _apply_security_roles(self) -> None:
        for path, body in security.role_requests(self.recipe["security"]["users"]):
            response = self._request("PUT", path, 30, json=body)
            if response.status_code not in (200, 201):
                raise LocalNodeError(f"putting {path} failed: {response.text[:200]}",
                                     "check opensearch/security/roles.yml against the security plugin's role format")

    def _apply_ml_settings(self) -> None:
        """The recipe's ML Commons settings file (a dev node's relaxed ones), then its overrides."""
        body = load_json(self.recipe["ml_settings"])
        body["persistent"].update(self.recipe.get("ml_settings_override") or {})
        response = self._request("PUT", "/_cluster/settings", 30, json=body)
        if response.status_code != 200:
            raise LocalNodeError(f"applying ML Commons settings failed: {response.text[:200]}",
                                 f"see {self.log_file}")

    def _pid(self) -> int | None:
        try:
            pid = int(self.layout.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    def _http_ok(self) -> bool:
        try:
            return self._get("", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    @staticmethod
    def _last_error(path: Path) -> str:
        if not path.is_file():
            return "no output"
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        interesting = [l for l in lines if re.search(r"ERROR|Exception|error:", l)]
        return (interesting or lines or ["no output"])[-1].strip()[:300]


# ---------------------------------------------------------------- helpers
def java_version(home: Path) -> int | None:
    """Major version from a JDK's ``release`` file (no JVM start needed)."""
    release = home / "release"
    if not release.is_file():
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)(?:\.(\d+))?', release.read_text(errors="replace"), re.M)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def find_java(explicit: str | None, min_version: int, max_version: int | None = None) -> Path:
    """First JDK in ``min_version..max_version`` among config, OPENSEARCH_JAVA_HOME, JAVA_HOME, /usr/lib/jvm."""
    candidates = [Path(p) for p in (explicit, os.environ.get("OPENSEARCH_JAVA_HOME"), os.environ.get("JAVA_HOME")) if p]
    if JVM_ROOT.is_dir():
        candidates += sorted((p for p in JVM_ROOT.iterdir() if p.is_dir()), key=lambda p: -(java_version(p) or 0))
    for home in candidates:
        version = java_version(home)
        fits = version is not None and version >= min_version and (max_version is None or version <= max_version)
        if fits and (home / "bin" / "java").is_file():
            return home
    looked = ", ".join(str(c) for c in candidates) or "nowhere"
    wanted = f"{min_version}-{max_version}" if max_version else f"{min_version}+"
    raise LocalNodeError(f"no Java {wanted} found (looked at: {looked})",
                         f"install a JDK {wanted} or set OPENSEARCH_JAVA_HOME / local_node.java_home")


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, IndexError):
        return True


def extract_zip(archive: Path, dest: Path, strip_top: bool) -> None:
    """Unzip keeping Unix permissions (zipfile drops them, and bin/ must stay executable)."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = info.filename.split("/", 1)[1] if strip_top and "/" in info.filename else info.filename
            if not name:
                continue
            target = dest / name
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode)


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def recorded_uuids(config: Config) -> dict[int, str]:
    """Local node port -> the cluster UUID `cluster up` recorded for it (plain and secured node)."""
    found: dict[int, str] = {}
    for secure in (False, True):
        node = LocalNode(config.local_node, secure=secure)
        path = node.layout.root / identity.RECORD
        if path.is_file():
            found[node.port] = path.read_text(encoding="utf-8").strip()
    return found


def is_local_cluster(client: OpenSearch, config: Config) -> bool:
    """True only for the node `reranker cluster up` runs: loopback URL, local node port, recorded UUID."""
    url = urlsplit(config.cluster.url)
    if url.hostname not in identity.LOOPBACK:
        return False
    expected = recorded_uuids(config).get(url.port or (443 if url.scheme == "https" else 80))
    if expected is None:
        return False
    try:
        return client.info().get("cluster_uuid") == expected
    except (OSConnectionError, TransportError):
        return False
