"""The secured node (OpenSearch 2.19.1 + security plugin): HTTPS, basic auth and a restricted role.

Deploy -> pipeline -> search must work over HTTPS as the restricted user; a user
without the role, a wrong password and a wrong CA each get one line; the
restricted user cannot read indices outside its role. Credentials travel in the
environment, never on the command line. The node is killed mid-deploy,
mid-search and mid-indexing, and the CLI recovers after a restart.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from reranker_core.config import ClusterConfig, LocalNodeConfig
from reranker_plugin.connection import PermissionDenied, connect, make_client
from reranker_plugin.jobs.search import search
from reranker_plugin.mlcommons.client import MLCommons
from reranker_plugin.mlcommons.pipeline import get_pipeline, pipeline_model_id
from reranker_plugin.node.local import LocalNode
from training.onnx_scorer import OnnxZipScorer

from .conftest import create_products_index, model_and_pipeline_names
from .faults import record

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-c", "from reranker_plugin.cli import main; main()"]


@pytest.fixture(scope="module")
def secure_node() -> Iterator[LocalNode]:
    """The secured local node, started for this module and stopped after it (unless it was already up)."""
    node = LocalNode(LocalNodeConfig(), secure=True)
    was_running = node.status().running
    node.up()
    yield node
    if not was_running and not os.environ.get("RERANKER_KEEP_NODE"):
        node.down()


def cluster_config(node: LocalNode, user: str, **changes) -> ClusterConfig:
    creds = node.credentials
    return ClusterConfig(**{"url": node.url, "username": user, "password": creds.passwords[user],
                            "ca_certs": str(creds.ca_certs), **changes})


def env_for(node: LocalNode, user: str, **changes: str) -> dict[str, str]:
    """What a user exports to point the CLI at the secured node (the password only in the environment)."""
    cfg = cluster_config(node, user)
    env = {**os.environ, "OPENSEARCH_URL": cfg.url, "OPENSEARCH_USER": user, "OPENSEARCH_PASSWORD": cfg.password,
           "OPENSEARCH_CA_CERTS": cfg.ca_certs, "COLUMNS": "200"}
    return {**env, **changes}


def cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)


def last_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def refused(call, *args, **kwargs) -> str:
    """The one-line message of the PermissionDenied (HTTP 403, a role lacks the permission) the call raises."""
    with pytest.raises(PermissionDenied) as caught:
        call(*args, **kwargs)
    line = str(caught.value)
    print(line)  # shown with -s: the exact line a user sees
    assert "\n" not in line and line.startswith("OpenSearch refused")
    return line


def cli_refused(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """The CLI run as ``env``'s user fails with exit code 1 and one ``error:`` line, no traceback and no
    password in its output; that line."""
    done = cli(env, *args, timeout=timeout)
    line = last_line(done)
    print(line)  # shown with -s: the exact line a user sees
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert line.startswith("error:"), line
    assert env["OPENSEARCH_PASSWORD"] not in done.stdout + done.stderr
    return line


@pytest.fixture(scope="module")
def admin(secure_node):
    return connect(cluster_config(secure_node, "admin"))


@pytest.fixture
def product_index(secure_node, admin) -> Iterator[str]:
    """A products-* index created and filled by the restricted user itself (its role allows that)."""
    name = create_products_index(make_client(cluster_config(secure_node, "reranker")), "products-sec")
    yield name
    admin.indices.delete(index=name, ignore_unavailable=True)


@pytest.fixture
def names(admin) -> Iterator[dict[str, str]]:
    yield from model_and_pipeline_names(admin, "sec")


def deploy_args(zip_path: Path, index: str, names: dict[str, str]) -> list[str]:
    return ["deploy", str(zip_path), "--name", names["model"], "--index", index, "--field", "title",
            "--pipeline", names["pipeline"]]


def test_restricted_user_deploys_and_reranks_over_https(secure_node, admin, product_index, names, tiny_zip):
    env = env_for(secure_node, "reranker")
    done = cli(env, *deploy_args(tiny_zip, product_index, names))
    assert done.returncode == 0, done.stderr
    assert env["OPENSEARCH_PASSWORD"] not in done.stdout + done.stderr

    user = connect(cluster_config(secure_node, "reranker"))
    model_id = pipeline_model_id(get_pipeline(user, names["pipeline"]))
    assert MLCommons(user).get_model(model_id)["model_state"] == "DEPLOYED"
    scorer = OnnxZipScorer(tiny_zip)
    for query in ("cordless drill", "white paint"):
        plain = search(user, product_index, query, ("title",), 10, None)
        reranked = search(user, product_index, query, ("title",), 10, names["pipeline"])
        assert plain and {h.doc_id for h in plain} == {h.doc_id for h in reranked}
        local = dict(zip((h.doc_id for h in plain), scorer.score(query, [h.text for h in plain])))
        assert [h.doc_id for h in reranked] == sorted(local, key=local.get, reverse=True)
        assert all(abs(h.score - local[h.doc_id]) < 1e-3 for h in reranked)

    listed = cli(env, "models", "list")
    assert listed.returncode == 0 and names["model"] in listed.stdout


def test_restricted_user_cannot_read_other_indices(secure_node, admin):
    other = f"orders-{uuid.uuid4().hex[:8]}"
    admin.index(index=other, body={"customer": "someone"}, refresh=True)
    try:
        user = make_client(cluster_config(secure_node, "reranker"))
        for index in (other, ".plugins-ml-model"):
            line = refused(user.search, index=index, body={"query": {"match_all": {}}})
            assert "no permission for [indices:data/read/search]" in line
        assert admin.count(index=other)["count"] == 1
    finally:
        admin.indices.delete(index=other, ignore_unavailable=True)
    record("search (restricted user)", "reads an index outside products*", "refused (403) in one line",
           "nothing read")


def test_user_without_the_role_is_refused_in_one_line(secure_node, admin, product_index, names, tiny_zip):
    line = cli_refused(env_for(secure_node, "outsider"), *deploy_args(tiny_zip, product_index, names))
    assert line.startswith("error: OpenSearch refused") and "'outsider'" in line and "reranker_deployer" in line
    assert not [m for m in MLCommons(admin).list_models() if m.name == names["model"]]
    assert get_pipeline(admin, names["pipeline"]) is None
    record("deploy", "user without the reranker_deployer role", line, "no model registered, no pipeline")


@pytest.mark.parametrize("change, cause, expected", [
    ({"OPENSEARCH_PASSWORD": "not-the-password"}, "wrong password", "rejected the credentials"),
    ({"OPENSEARCH_CA_CERTS": "/etc/ssl/certs/ca-certificates.crt"}, "wrong CA bundle", "TLS handshake"),
])
def test_wrong_credentials_or_ca_is_one_line(secure_node, change, cause, expected):
    env = env_for(secure_node, "reranker", **change)
    line = cli_refused(env, "models", "list", timeout=60)
    assert expected in line
    record("any cluster command", f"secured cluster, {cause}", line, "nothing written")


# ----------------------------------------------------------- node killed
def kill_node(node: LocalNode) -> None:
    pid = int(node.layout.pidfile.read_text().strip())
    os.kill(pid, signal.SIGKILL)
    while node.status().running:
        time.sleep(0.2)


def test_node_killed_during_deploy_then_restart_and_rerun_converges(secure_node, admin, product_index, names,
                                                                     tiny_zip):
    env = env_for(secure_node, "reranker")
    proc = subprocess.Popen([*CLI, *deploy_args(tiny_zip, product_index, names)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ml = MLCommons(admin)
    deadline = time.monotonic() + 120
    while not [m for m in ml.list_models() if m.name == names["model"]] and time.monotonic() < deadline:
        time.sleep(0.05)  # the model is registered: the upload or the deploy is under way
    kill_node(secure_node)
    _, err = proc.communicate(timeout=300)
    line = [x for x in err.strip().splitlines() if x.strip()][-1]
    assert proc.returncode != 0 and "Traceback" not in err and line.startswith("error:")
    assert "{}" not in line and ("lost" in line or "cannot reach" in line), line
    left_by_killed_jvm = secure_node.layout.tmp / "left-by-the-killed-node"
    left_by_killed_jvm.write_text("x")
    assert cli(env, "cluster", "up", "--secure", timeout=600).returncode == 0
    assert not left_by_killed_jvm.exists()  # each start clears the last one's temp files (~380 MB)
    again = cli(env, *deploy_args(tiny_zip, product_index, names))
    assert again.returncode == 0, again.stderr
    user = connect(cluster_config(secure_node, "reranker"))
    model_id = pipeline_model_id(get_pipeline(user, names["pipeline"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # refreshing ML Commons' system index is deliberate: listing is a search
        admin.indices.refresh(index=".plugins-ml-model", ignore_unavailable=True)
    assert MLCommons(admin).get_model(model_id)["model_state"] == "DEPLOYED"
    assert search(user, product_index, "cordless drill", ("title",), 5, names["pipeline"])
    time.sleep(2.5)  # a half upload younger than the deploy timeout may be another deploy's: it is left alone
    assert cli(env, *deploy_args(tiny_zip, product_index, names), "--timeout", "2").returncode == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        admin.indices.refresh(index=".plugins-ml-model", ignore_unavailable=True)
    mine = [m for m in MLCommons(admin).list_models() if m.name == names["model"]]
    assert [m.model_id for m in mine] == [model_id]  # one model, the pipeline's: the stale half one is gone
    record("deploy", "OpenSearch node SIGKILLed mid-deploy", line,
           "after `cluster up`, the rerun deploys; a deploy after the deploy timeout removes the killed one's "
           "half model; one model deployed, the pipeline uses it")


def test_node_killed_during_search_and_indexing_gives_one_line_and_recovers(secure_node, admin, product_index,
                                                                            names, tiny_zip, tmp_path):
    env = env_for(secure_node, "reranker")
    assert cli(env, *deploy_args(tiny_zip, product_index, names)).returncode == 0
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("".join(f'{{"id": "c{i}", "title": "cordless drill model {i}"}}\n' for i in range(60_000)),
                       encoding="utf-8")
    target = f"products-big-{uuid.uuid4().hex[:8]}"
    indexing = subprocess.Popen([*CLI, "index-catalog", str(catalog), "--index", target], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    searches: list[subprocess.CompletedProcess] = []
    killed = threading.Event()

    def search_loop() -> None:
        # Until one search has *started* after the kill: stopping when indexing ends would race the kill (the
        # search in flight can finish before it, and indexing dies at once), leaving no search against a dead node.
        while len(searches) < 200:
            started_after_kill = killed.is_set()
            searches.append(cli(env, "search", "cordless drill", "--index", product_index,
                                "--pipeline", names["pipeline"], timeout=120))
            if started_after_kill:
                return

    searcher = threading.Thread(target=search_loop)
    searcher.start()
    user = make_client(cluster_config(secure_node, "reranker"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill once indexing is under way and a search went through
        if searches and user.indices.exists(index=target) and user.count(index=target)["count"] > 0:
            break
        time.sleep(0.2)
    kill_node(secure_node)
    killed.set()
    _, index_err = indexing.communicate(timeout=300)
    searcher.join(timeout=300)
    try:
        assert searches[0].returncode == 0
        failed = [s for s in searches if s.returncode != 0]
        assert failed, "no search ran while the node was down"
        for done in [failed[-1]]:
            assert "Traceback" not in done.stderr and last_line(done).startswith("error:")
        index_line = [x for x in index_err.strip().splitlines() if x.strip()][-1]
        assert indexing.returncode != 0 and "Traceback" not in index_err and index_line.startswith("error:")

        up = cli(env, "cluster", "up", "--secure", timeout=600)  # also redeploys the pipeline's model if needed
        assert up.returncode == 0, up.stderr
        again = cli(env, "index-catalog", str(catalog), "--index", target, timeout=600)
        assert again.returncode == 0, again.stderr
        user.indices.refresh(index=target)
        assert user.count(index=target)["count"] == 60_000
        after = cli(env, "search", "cordless drill", "--index", product_index, "--pipeline", names["pipeline"])
        assert after.returncode == 0, after.stderr
    finally:
        admin.indices.delete(index=target, ignore_unavailable=True)
    record("search", "OpenSearch node SIGKILLed during searches through the pipeline", last_line(failed[-1]),
           "after `cluster up`, the same search reranks again")
    record("index-catalog", "OpenSearch node SIGKILLed mid-indexing (60,000 products)", index_line,
           "after `cluster up`, the rerun indexes every product once (count 60,000)")
