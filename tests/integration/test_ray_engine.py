"""`augment` and `label` on a real local Ray cluster: head + 2 worker nodes started by the fixture.

The ray engine must write what the local engine writes (same pairs, same
scores within float tolerance, same malformed-line count), survive a worker
node killed mid-run, and resume from the manifest after the driver is killed,
with no pair lost or written twice.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from reranker_core.config import ClusterConfig, EngineConfig
from reranker_core.errors import ConfigError, OutputError
from reranker_plugin.jobs.augment import part_name
from reranker_plugin.jobs.ray_engine import (check_part, check_workers_reach, check_workers_see, nodes_missing,
                                             ray_is_remote, refuse_unseen)
from training.pairs import read_pairs, write_pairs

from .conftest import PRODUCTS, create_products_index
from .faults import Watched, kill_at_progress, record, run_cli, trained_teacher

pytestmark = pytest.mark.integration

STORE = 80 * 2**20  # object store per node: small, this machine runs OpenSearch too


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator:
    """A head node that runs no work and two 1-CPU worker nodes, each its own raylet and worker processes."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": STORE})
    for _ in range(2):
        cluster.add_node(num_cpus=1, object_store_memory=STORE)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def query_log(workdir: Path) -> Path:
    """120 logged queries over the catalog's words, plus 3 malformed lines."""
    words = sorted({w.lower() for title in PRODUCTS for w in title.split() if w.isalpha() and len(w) > 3})
    queries = [f"{a} {b}" for a in words for b in words if a < b][:120]
    lines = [json.dumps({"user_query": q}) for q in queries] + ["{not json", json.dumps({"other": 1}), "[]"]
    path = workdir / "ray-log.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def rows(path: Path) -> list[tuple]:
    return sorted((r["query"], r["product_id"], r["rank"], r["text"]) for r in read_pairs([path]))


def scores(path: Path) -> dict[tuple[str, str], float]:
    return {(r["query"], r["product_id"]): float(r["teacher_score"]) for r in read_pairs([path])}


def same_pairs(got: Path, expected: Path) -> None:
    assert rows(got) == rows(expected)
    want = scores(expected)
    assert scores(got) == pytest.approx(want, abs=1e-5)
    assert len(read_pairs([got])) == len(want)  # no pair twice


def augment_args(workdir: Path, log: Path, index: str, out: str, *engine: str) -> tuple[str, ...]:
    teacher = workdir / "runs/teacher"
    return ("augment", str(teacher), "--log", str(log), "--index", index, "--top-k", "5", "--output", out, *engine)


@pytest.fixture(scope="module")
def reference(opensearch, workdir, query_log, products_index_module) -> Path:
    """The local engine's output: what every ray run must equal."""
    trained_teacher(workdir, opensearch.url)
    done = run_cli(workdir, opensearch.url, *augment_args(workdir, query_log, products_index_module,
                                                           "runs/ray-reference", "--engine", "local"))
    assert done.code == 0, done.err
    return workdir / "runs/ray-reference"


@pytest.fixture(scope="module")
def products_index_module(client) -> Iterator[str]:
    name = create_products_index(client, "products-ray")
    yield name
    client.indices.delete(index=name, ignore_unavailable=True)


def test_ray_engine_writes_what_the_local_engine_writes(opensearch, workdir, query_log, reference,
                                                        products_index_module, ray_cluster):
    out = "runs/ray-equal"
    done = run_cli(workdir, opensearch.url, *augment_args(workdir, query_log, products_index_module, out,
                                                           "--ray-address", ray_cluster.address))
    assert done.code == 0, done.err
    same_pairs(workdir / out, reference)
    local, ray = (json.loads((p / "report.json").read_text()) for p in (reference, workdir / out))
    for key in ("log_lines", "malformed", "queries", "pairs_total", "skipped_judged"):
        assert ray[key] == local[key], key
    assert local["malformed"] == 3
    assert json.loads((workdir / out / "manifest.json").read_text()) == json.loads(
        (reference / "manifest.json").read_text())

    lines = []
    for engine in (("--engine", "local"), ("--ray-address", ray_cluster.address)):
        failed = run_cli(workdir, opensearch.url, *augment_args(workdir, query_log, "products-missing",
                                                                 f"runs/ray-missing-{engine[0]}", *engine))
        assert failed.code == 1 and "Traceback" not in failed.err, failed.err
        lines.append(failed.last_line)
    assert lines[0] == lines[1] and "does not exist" in lines[0]  # a worker's error reads as the local one

    teacher = str(workdir / "runs/teacher")
    for engine, target in ((("--engine", "local"), "runs/label-local.parquet"),
                           (("--ray-address", ray_cluster.address), "runs/label-ray.parquet")):
        labeled = run_cli(workdir, opensearch.url, "label", teacher, "--output", target, *engine)
        assert labeled.code == 0, labeled.err
    same_pairs(workdir / "runs/label-ray.parquet", workdir / "runs/label-local.parquet")


def test_a_worker_node_holding_a_teacher_actor_killed_mid_run_is_retried_and_the_output_is_complete(
        opensearch, workdir, query_log, reference, products_index_module, ray_cluster):
    # Two teacher replicas of 1 CPU on two 1-CPU worker nodes (the head runs no work): while both are up (no CPU
    # left in the cluster) each worker node holds one, so the node killed holds an actor, whichever it is.
    config = workdir / "ray-two-replicas.yaml"
    settings = yaml.safe_load((workdir / "reranker.yaml").read_text(encoding="utf-8"))
    config.write_text(yaml.safe_dump({**settings, "engine": {"scoring_actors": 2, "cpus_per_actor": 1.0}}),
                      encoding="utf-8")
    out = workdir / "runs/ray-worker-killed"
    args = ("--config", str(config),
            *augment_args(workdir, query_log, products_index_module, str(out), "--ray-address", ray_cluster.address))
    watched = Watched(workdir, opensearch.url, args)
    try:
        # the kill point is a state, not a progress line: on a quiet machine Ray Data reports the whole
        # run's progress in one burst at its end, but both replicas are up for the seconds the run works
        with ray_driver(ray_cluster) as ray:
            while ray.available_resources().get("CPU", 0) != 0:
                assert watched.proc.poll() is None, "augment ended before both teacher replicas were up"
                assert time.monotonic() - watched.started < 300, "the teacher replicas never came up"
                time.sleep(0.02)
        point = f"with both teacher replicas up, {time.monotonic() - watched.started:.1f}s in"
        parts_before = len(list(out.glob("part-*.parquet")))
        victim = next(iter(ray_cluster.worker_nodes))
        ray_cluster.remove_node(victim, allow_graceful=False)  # SIGKILL its raylet and worker processes
        assert watched.proc.poll() is None, "augment ended before the kill: the case would test nothing"
        ray_cluster.add_node(num_cpus=1, object_store_memory=STORE)  # a replacement, as an autoscaler would
        code, err = watched.finish(timeout=600)
        assert code == 0, err[-2000:]
        same_pairs(out, reference)
    finally:
        watched.close()
        ray_cluster.wait_for_nodes()
    record("augment --engine ray", f"a Ray worker node holding a teacher actor SIGKILLed {point} "
           f"({parts_before} part(s) written)", "nothing: Ray restarts the actor elsewhere and the run exits 0",
           "every pair once; equal to the local engine's output")


def test_the_driver_killed_mid_run_resumes_from_the_manifest(opensearch, workdir, query_log, reference,
                                                             products_index_module, ray_cluster):
    out = workdir / "runs/ray-driver-killed"
    args = augment_args(workdir, query_log, products_index_module, str(out), "--ray-address", ray_cluster.address)
    point = kill_at_progress(workdir, opensearch.url, args, 0.15, "mining and labeling",
                             ready=lambda: any(out.glob("part-*.parquet")))
    written = len(list(out.glob("part-*.parquet")))
    done = run_cli(workdir, opensearch.url, *args)
    assert done.code == 0, done.err
    report = json.loads((out / "report.json").read_text())
    assert report["parts_done_before"] >= written > 0  # resumed, did not redo the finished parts
    same_pairs(out, reference)
    record("augment --engine ray", f"the driver SIGKILLed {point} ({written} part(s) written)",
           "nothing (killed); the rerun resumes and exits 0", "finished parts kept; every pair once")


@contextmanager
def ray_driver(cluster) -> Iterator:
    """This test process as a Ray driver on ``cluster`` (the CLI tests drive it from their own process)."""
    import ray

    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    try:
        yield ray
    finally:
        ray.shutdown()


def test_the_driver_refuses_when_a_worker_cannot_read_the_output_path(ray_cluster, tmp_path):
    with ray_driver(ray_cluster) as ray:
        out = tmp_path / "shared-out"
        check_workers_see(out)  # one machine, one disk: every worker sees it
        assert list(out.iterdir()) == []  # and the probe is gone
        every = sorted({n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]})
        probe = tmp_path / "probe"
        probe.write_text("driver-token", encoding="utf-8")
        assert nodes_missing(probe, "driver-token") == []
        # what a worker on its own disk finds: no file there, or another run's file at that path
        assert nodes_missing(tmp_path / "absent" / "probe", "driver-token") == every
        assert nodes_missing(probe, "another-token") == every
    refuse_unseen(out, [])
    with pytest.raises(ConfigError) as err:
        refuse_unseen(out, every)
    assert err.value.message.startswith(f"workers cannot see {out} (Ray node(s) {every[0]}")
    assert err.value.fix == "use a shared filesystem path for the output"
    record("augment/label --engine ray", "a worker cannot read the driver's probe file (no shared filesystem)",
           f"error: {err.value.message.replace(str(tmp_path), '<tmp>')} — {err.value.fix}",
           "nothing written: refused before any work")


def _write_part_on_a_worker(out: str, number: int, n: int) -> int:
    rows = [{"query": "q", "product_id": f"p{i}", "text": f"t{i}", "teacher_score": 0.5, "teacher_probs": [0.5]}
            for i in range(n)]
    write_pairs(Path(out) / part_name(number), rows)
    return n


@pytest.mark.parametrize("damage", ["deleted", "truncated", "fewer rows"])
def test_a_part_the_driver_cannot_find_as_its_worker_reported_is_named_and_removed(ray_cluster, tmp_path, damage):
    with ray_driver(ray_cluster) as ray:
        reported = ray.get(ray.remote(num_cpus=1)(_write_part_on_a_worker).remote(str(tmp_path), 3, 7))
    check_part(tmp_path, 3, reported)  # intact: accepted
    path = tmp_path / part_name(3)
    if damage == "deleted":  # the worker wrote to its own disk
        path.unlink()
    elif damage == "truncated":  # a copy still in flight
        path.write_bytes(path.read_bytes()[:40])
    else:  # another run's part at that path
        _write_part_on_a_worker(str(tmp_path), 3, 2)
    with pytest.raises(OutputError) as err:
        check_part(tmp_path, 3, reported)
    assert str(path) in err.value.message and "reported 7 pairs" in err.value.message
    assert "shared filesystem" in err.value.fix
    assert not path.exists()  # the rerun writes it again
    what = {"fewer rows": "replaced by another run's, with fewer rows"}.get(damage, damage)
    record("augment --engine ray", f"a part {what} after its worker reported it",
           f"error: {err.value.message.replace(str(tmp_path), '<out>')} — {err.value.fix}",
           "the part removed, so the rerun writes it again; no pair lost silently")


def test_which_ray_addresses_count_as_remote(ray_cluster):
    for here in (None, "local", "auto", ray_cluster.address, "127.0.0.1:6379", "ray://localhost:10001", "[::1]:6379"):
        assert not ray_is_remote(here), here
    for there in ("10.255.255.1:6379", "ray://10.255.255.1:10001", "head.invalid:6379"):
        assert ray_is_remote(there), there
    remote = EngineConfig(kind="ray", ray_address="10.255.255.1:6379")
    check_workers_reach(remote, ClusterConfig(url="http://10.255.255.2:9200"))  # a routable URL: accepted
    check_workers_reach(EngineConfig(kind="ray", ray_address=ray_cluster.address), ClusterConfig())  # all here
    with pytest.raises(ConfigError):
        check_workers_reach(remote, ClusterConfig(url="http://127.0.0.1:9200"))


@pytest.mark.parametrize("url", ["http://127.0.0.1:9200", "http://localhost:9200", "https://[::1]:9200"])
def test_a_loopback_cluster_url_is_refused_with_a_remote_ray_address(tmp_path, url):
    out = tmp_path / "out"
    args = ("augment", str(tmp_path / "teacher"), "--log", str(tmp_path / "log.jsonl"), "--output", str(out),
            "--ray-address", "ray://10.255.255.1:10001")
    started = time.monotonic()
    done = run_cli(tmp_path, url, *args, timeout=60)
    assert done.code == 2 and "Traceback" not in done.err, done.err  # 2: a configuration error
    assert "is loopback" in done.last_line and "10.255.255.1" in done.last_line and "--url" in done.last_line
    assert not out.exists() and time.monotonic() - started < 30  # refused before any work or Ray connection
    record("augment --engine ray", f"cluster URL {url} with a remote Ray address", done.last_line,
           "nothing written: refused before any work or Ray connection")


def test_label_on_ray_killed_mid_run_resumes_to_the_uninterrupted_pairs(opensearch, workdir, ray_cluster):
    """Chunks of 2 pairs, so the driver dies with some scored and many not."""
    teacher = str(trained_teacher(workdir, opensearch.url))
    config = workdir / "ray-label.yaml"
    config.write_text((workdir / "reranker.yaml").read_text() + "engine: {pairs_per_task: 2}\n", encoding="utf-8")

    def args(target: str) -> tuple[str, ...]:
        return ("--config", str(config), "label", teacher, "--output", target, "--ray-address", ray_cluster.address)

    whole = run_cli(workdir, opensearch.url, *args("runs/label-ray-whole.parquet"))
    assert whole.code == 0, whole.err
    target, parts = workdir / "runs/label-ray-killed.parquet", workdir / "runs/label-ray-killed.parquet.parts"
    point = kill_at_progress(workdir, opensearch.url, args(str(target)), 0.25, "labeling",
                             ready=lambda: any(parts.glob("chunk-*.json")))
    kept = len(list(parts.glob("chunk-*.json")))
    total = json.loads((parts / "manifest.json").read_text())["chunks"]
    assert not target.exists() and 0 < kept < total
    done = run_cli(workdir, opensearch.url, *args(str(target)))
    assert done.code == 0, done.err
    resumed = int(done.err.split("resumed: ", 1)[1].split(" of ", 1)[0])
    assert resumed >= kept and f"of {total} chunks" in done.err  # the finished chunks were not scored again
    assert read_pairs([target]) == read_pairs([workdir / "runs/label-ray-whole.parquet"])  # row for row
    assert not parts.exists()  # spent once the pairs file is whole
    record("label --engine ray", f"the driver SIGKILLed {point} ({kept} of {total} chunks scored)",
           "nothing (killed); the rerun resumes and exits 0", "scored chunks kept; the pairs of an uninterrupted run")
