"""README's "Your own data" commands, run literally on the real node with a generated catalog and tiny models.

The commands are parsed from the README's first ```bash block under that heading, so the README cannot drift
from what works: a renamed flag or file fails here. Then a plain search through the deployed pipeline must
come back scored by the shipped zip, as local onnxruntime scores it.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from reranker_plugin.jobs.search import search
from training.datasets import split_of
from training.onnx_scorer import OnnxZipScorer

from .conftest import PRODUCTS, REUSED, main_job_project, write_graded_judgments
from .conftest import RUN_QUERIES as QUERIES

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
HEADING = "## Your own data"
LOGGED_ONLY = ("cordless hammer drill", "toilet flapper")  # training-split queries only the log holds


def readme_commands() -> list[str]:
    """The command lines of the first bash block under the README's own-data heading, comments stripped."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, f"no ```bash block under {HEADING!r} in README.md"
    lines = [line.split("  #", 1)[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _write_user_files(root: Path) -> None:
    """What a user brings: a CSV catalog, a JSONL query log, CSV judgments (names as the README uses them)."""
    with (root / "products.csv").open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("id", "title"), *((f"p{i}", t) for i, t in enumerate(PRODUCTS))])
    (root / "queries.jsonl").write_text("".join(json.dumps({"user_query": q}) + "\n" for q in
                                                [*QUERIES, *LOGGED_ONLY]), encoding="utf-8")
    write_graded_judgments(root / "judgments.csv")


@pytest.fixture
def project(tmp_path, minilm_tokenizer, client):
    """A user's folder: their files, a reranker.yaml with tiny models and unique names, `.venv/bin/reranker`."""
    _write_user_files(tmp_path)
    (tmp_path / ".venv/bin").mkdir(parents=True)
    launcher = tmp_path / ".venv/bin/reranker"  # what `make install` puts there, running this checkout
    launcher.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -c "
                        "'from reranker_plugin.cli import main; main()' \"$@\"\n", encoding="utf-8")
    launcher.chmod(0o755)
    with main_job_project(client, tmp_path, minilm_tokenizer, "own") as config:
        yield tmp_path, config["deploy"]


def test_readme_own_data_commands_reach_reranked_search(opensearch, client, project):
    root, deploy = project
    commands = readme_commands()
    assert any("run --catalog products.csv" in c and "--judgments judgments.csv" in c for c in commands), commands
    env = {**os.environ, "OPENSEARCH_URL": opensearch.url, "PYTHONPATH": str(REPO), "COLUMNS": "200",
           "OMP_NUM_THREADS": "1"}

    def shell(command: str) -> str:
        done = subprocess.run(["bash", "-ec", command], cwd=root, env=env, capture_output=True, text=True,
                              timeout=1200)
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return " ".join(done.stdout.split())

    outputs = [shell(command) for command in commands]
    assert f"reranked ({deploy['pipeline']})" in outputs[-1]  # the README's search shows the reranked side
    run = next(c for c in commands if " run " in c)
    assert shell(run).count(REUSED) == 6  # fingerprinted: teacher, label, augment, both students, export reused

    verdict = json.loads((root / "runs/student-int8.json").read_text())
    shipped = root / ("runs/student-int8.zip" if verdict["within_noise"] else "runs/student.zip")
    scorer = OnnxZipScorer(shipped)
    for query in ("cordless drill", "garden hose"):
        plain = search(client, deploy["index"], query, ("title",), 10, None)
        reranked = search(client, deploy["index"], query, ("title",), 10, deploy["pipeline"])
        assert plain and {h.doc_id for h in reranked} == {h.doc_id for h in plain}
        local = dict(zip((h.doc_id for h in plain), scorer.score(query, [h.text for h in plain])))
        assert [h.score for h in reranked] == sorted((h.score for h in reranked), reverse=True)
        for hit in reranked:  # the shipped student's logits, not BM25's scores
            assert hit.score == pytest.approx(local[hit.doc_id], abs=1e-3 if verdict["within_noise"] else 1e-4)
    mined = json.loads((root / "runs/pairs/augmented/report.json").read_text())
    assert mined["queries"] == sum(split_of(q) == "train" for q in QUERIES) + len(LOGGED_ONLY)  # --queries mined
