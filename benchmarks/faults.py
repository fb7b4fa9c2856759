"""Fault campaign runner: runs the fault and fuzz tests on the real node and tabulates what each case left.

Every case in ``tests/integration/test_faults.py`` (and the full-disk, Ray,
swap-under-load, concurrent-deploy and killed-main-job tests) appends a row — the fault, what the user saw, what was left on disk and in
the cluster — to a JSON-lines file this script names; the fuzz tests report
their generated-input counts. The script writes ``benchmarks/results/faults.json``
and regenerates the table between the ``faults`` markers in docs/reliability.md.

    .venv/bin/python benchmarks/faults.py
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reranker_core.files import atomic_write, write_json_atomic  # noqa: E402

TESTS = ["tests/integration/test_faults.py", "tests/integration/test_full_disk.py",
         "tests/integration/test_secure_cluster.py",
         "tests/integration/test_node_without_ml.py", "tests/integration/test_ray_engine.py",
         "tests/integration/test_swap_under_load.py",
         "tests/integration/test_deploy_rerank.py::test_two_operators_deploying_at_once_both_succeed_and_lose_no_model",
         "tests/integration/test_run.py::test_main_job_killed_mid_step_resumes_with_finished_steps_reused"]
START, END = "<!-- faults:start (benchmarks/faults.py writes this table) -->", "<!-- faults:end -->"


def main() -> None:
    out = ROOT / "benchmarks/results"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows_file = Path(tmp) / "rows.jsonl"
        rows_file.touch()
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS],
                              cwd=ROOT, env={**os.environ, "RERANKER_FAULTS_JSON": str(rows_file)},
                              capture_output=True, text=True)
        rows = [json.loads(line) for line in rows_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
    result = {"cases": rows, "pytest": summary, "passed": done.returncode == 0,
              "wall_s": round(time.monotonic() - started, 1)}
    write_json_atomic(out / "faults.json", result)
    _write_fault_table(rows)
    if done.returncode:
        print(done.stdout[-6000:])
    print(f"{len(rows)} fault cases, pytest: {summary}; wrote {out / 'faults.json'} and the table in "
          "docs/reliability.md")
    sys.exit(done.returncode)


def _write_fault_table(rows: list[dict]) -> None:
    lines = [START, "", "| command | fault | what the user sees | what is left |", "|---|---|---|---|"]
    for row in rows:
        cells = [row["case"], row["fault"], row["user_sees"], row["left"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    lines += ["", END]
    page = ROOT / "docs" / "reliability.md"
    text = page.read_text(encoding="utf-8")
    block = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not block.search(text):
        sys.exit(f"error: docs/reliability.md has no {START} ... {END} block to fill")
    new = block.sub(lambda _: "\n".join(lines), text)
    atomic_write(page, lambda tmp: tmp.write_text(new, encoding="utf-8"))


if __name__ == "__main__":
    main()
