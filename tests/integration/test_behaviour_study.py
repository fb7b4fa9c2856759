"""The behaviour study (benchmarks/behaviour_study.py) end to end on the real node with tiny models: after the
main job, each noise level simulates clicks, trains the behaviour teacher on the reused plain cross-encoder,
relabels the pool and trains a student of the baseline's steps; the JSON keeps every level measured."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from reranker_core.config import load_config, override
from reranker_plugin.jobs.main_job import run_main_job
from training.models import read_meta

from .test_run import workspace  # noqa: F401  (the fixture: dataset, tiny models, unique names)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]
STUDY = Path(__file__).resolve().parents[2] / "benchmarks" / "behaviour_study.py"


def test_each_noise_level_distils_a_student_from_the_behaviour_teacher_on_the_same_pool(
        opensearch, client, workspace, request):  # noqa: F811
    root, _ = workspace
    config = load_config(root / "reranker.yaml")
    run_main_job(override(config, cluster=override(config.cluster, url=opensearch.url)), ship="fp32")
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    request.addfinalizer(lambda: client.indices.delete(index=",".join(
        f"ubi-{kind}-{prefix}-noise-{n}" for kind in ("events", "queries") for n in (0, 1)), ignore_unavailable=True))
    out = root / "study.json"

    def study(*levels: str) -> str:
        done = subprocess.run([sys.executable, str(STUDY), "--sessions", "300", "--max-queries", "20",
                               "--prefix", prefix, "--out", str(out), *[a for n in levels for a in ("--noise", n)]],
                              cwd=root, capture_output=True, text=True, timeout=900,
                              env={**os.environ, "OPENSEARCH_URL": opensearch.url})
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    first = study("0", "1")
    # each level's label and augment steps read the plain cross-encoder's scores from the main job's pool
    assert first.count("reusing the plain cross-encoder's scores") == 4
    result = json.loads(out.read_text())
    assert set(result["levels"]) == {"noise-0", "noise-1"} and out.with_suffix(".png").is_file()
    baseline_steps = read_meta(root / "runs/student")["steps"]
    for name, noise in (("noise-0", 0.0), ("noise-1", 1.0)):
        level = result["levels"][name]
        assert level["noise"] == noise and level["simulation"]["click_model"]["noise"] == noise
        assert level["behaviour_encoder"] == {"warm_start": False, "epochs": config.teacher.epochs}
        assert level["steps"] == read_meta(root / level["student"])["steps"] == baseline_steps
        low, mid, high = (level["difference"]["ndcg@5"][i] for i in (1, 0, 2))
        assert low <= mid <= high
        teacher = root / level["teacher"]
        kinds = [m["kind"] for m in read_meta(teacher)["members"]]
        assert kinds[0] == "cross_encoder" and "behaviour_cross_encoder" in kinds
        # the plain cross-encoder is the main job's, reused, not trained again
        assert ((teacher / "cross_encoder/model.safetensors").read_bytes()
                == (root / "runs/teacher/cross_encoder/model.safetensors").read_bytes())
        pool = {p.name for p in (root / "runs/behaviour-study" / name / "pairs").iterdir()}
        assert pool == {p.name for p in (root / "runs/pairs").iterdir()}  # the same pool's files, relabeled
    assert client.count(index=f"ubi-events-{prefix}-noise-0")["count"] > 0

    again = study("0")  # a level already done: every step skipped, the other level kept in the JSON
    assert again.count("already done") == 6
    assert set(json.loads(out.read_text())["levels"]) == {"noise-0", "noise-1"}
