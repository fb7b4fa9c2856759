"""A real node without ML Commons and neural-search: every cluster command says so in one line."""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from reranker_plugin.node.assets import load_yaml, opensearch_version
from reranker_plugin.node.local import default_home, extract_zip, find_java
from reranker_plugin.node.maven import Artifact, MavenCache

from .faults import record, run_cli

pytestmark = pytest.mark.integration

PORT = 9202


@pytest.fixture(scope="module")
def bare_node() -> Iterator[str]:
    """The pinned core distribution alone (no plugins), from the same Maven cache, on port 9202.

    It lives under the node home (which the node's user can enter), not in pytest's private tmp.
    """
    recipe = load_yaml("local-node.yml")
    version = opensearch_version()
    spec = {**recipe["core"], "version": version}
    core = MavenCache(recipe["maven_repository"], default_home() / "maven").fetch(Artifact(**spec))
    root = Path(tempfile.mkdtemp(dir=default_home(), prefix="bare-node-"))
    root.chmod(0o755)
    extract_zip(core, root, strip_top=True)
    (root / "config/opensearch.yml").write_text(
        f"cluster.name: bare\ndiscovery.type: single-node\nnetwork.host: 127.0.0.1\nhttp.port: {PORT}\n"
        f"path.data: {root / 'data'}\npath.logs: {root / 'logs'}\n", encoding="utf-8")
    (root / "tmp").mkdir()  # its JVM temp dir, removed with it (OpenSearch's default in /tmp is never removed)
    env = {**os.environ, "OPENSEARCH_JAVA_HOME": str(find_java(None, int(recipe["java"]["min_version"]))),
           "OPENSEARCH_JAVA_OPTS": "-Xms512m -Xmx512m", "OPENSEARCH_TMPDIR": str(root / "tmp")}
    user = pwd.getpwnam("nobody") if os.geteuid() == 0 else None
    if user:  # OpenSearch will not run as root
        for path in [root, *root.rglob("*")]:
            os.lchown(path, user.pw_uid, user.pw_gid)
    with (root / "stdout.log").open("wb") as out:  # a pipe would stay open in the daemon
        subprocess.run([str(root / "bin/opensearch"), "-d", "-p", str(root / "pid")], env=env, check=True,
                       user=user.pw_uid if user else None, group=user.pw_gid if user else None,
                       extra_groups=[] if user else None, stdout=out, stderr=subprocess.STDOUT, timeout=120)
    url = f"http://127.0.0.1:{PORT}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).ok:
                break
        except requests.RequestException:
            time.sleep(1)
    else:
        raise AssertionError(f"the bare node did not start; see {root / 'logs'}")
    yield url
    os.kill(int((root / "pid").read_text()), signal.SIGKILL)
    shutil.rmtree(root, ignore_errors=True)


def test_a_node_without_ml_commons_is_named_in_one_line(bare_node, tmp_path: Path, tiny_zip):
    for args in (("models", "list"), ("deploy", str(tiny_zip), "--name", "x", "--field", "title")):
        done = run_cli(tmp_path, bare_node, *args, timeout=120)
        assert done.code == 1 and "Traceback" not in done.err, done.err
        assert "lacks plugin(s) opensearch-ml, opensearch-neural-search" in done.last_line
    record("any cluster command", "a node without ML Commons and neural-search", done.last_line, "nothing written")
