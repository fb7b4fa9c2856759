"""What durability costs: the project's atomic writes with and without fsync.

``atomic_write`` fsyncs the temporary file before renaming it into place and
the folder after, so a power cut cannot leave an empty file under the final
name. This times ``atomic_write(durable=True)`` against ``durable=False`` for
the outputs the project really writes: a 3 MB JSONL (pairs, results), a 90 MB
model-like file (a MiniLM zip / checkpoint) and 100 small JSON files (stamps,
metadata). Rounds alternate the order of the two modes so both see the same
machine load, and ``os.sync()`` runs (untimed) before each timed write, so a
write without fsync does not leave dirty pages for the next one to pay for.
The files go to a scratch folder inside the repository: the disk the real
outputs use.

Writes ``benchmarks/results/fsync_cost.json`` and ``.png``. Needs no cluster
and no model; ~1 min on a 2-core VM with an SSD (I/O bound).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reranker_core.files import atomic_write, write_json_atomic  # noqa: E402

MODES = ("no fsync", "fsync")


def jsonl_text(size: int) -> str:
    """Pair-file-like JSONL of about ``size`` bytes."""
    line = json.dumps({"query": "cordless drill 18v", "product_id": "p000000", "text": "x" * 150,
                       "teacher_score": 2.5, "label": 1.0}) + "\n"
    return line * (size // len(line) + 1)


def cases(jsonl_mb: float, model_mb: float, small_files: int) -> dict[str, Callable[[Path, bool], None]]:
    """Name -> ``write(folder, durable)``: one output of each kind the project writes."""
    text = jsonl_text(int(jsonl_mb * 1e6))
    blob = os.urandom(int(model_mb * 1e6))  # incompressible, like float weights
    small = json.dumps({"step": "teacher", "inputs": {"config": "0" * 64}, "outputs": ["runs/teacher"]}, indent=2)

    def one_jsonl(folder: Path, durable: bool) -> None:
        atomic_write(folder / "pairs.jsonl", lambda tmp: tmp.write_text(text, encoding="utf-8"), durable=durable)

    def one_model(folder: Path, durable: bool) -> None:
        atomic_write(folder / "model.zip", lambda tmp: tmp.write_bytes(blob), durable=durable)

    def many_small(folder: Path, durable: bool) -> None:
        for i in range(small_files):
            atomic_write(folder / f"stamp-{i}.json", lambda tmp: tmp.write_text(small), durable=durable)

    return {f"{jsonl_mb:g} MB JSONL": one_jsonl, f"{model_mb:g} MB model": one_model,
            f"{small_files} small JSON": many_small}


def measure(write: Callable[[Path, bool], None], folder: Path, rounds: int) -> dict[str, list[float]]:
    """Seconds per write in each mode, rounds interleaved (odd rounds start with fsync)."""
    seconds: dict[str, list[float]] = {m: [] for m in MODES}
    for r in range(rounds):
        for mode in (MODES if r % 2 == 0 else MODES[::-1]):
            os.sync()  # start clean: no dirty pages left by the previous write
            started = time.perf_counter()
            write(folder, mode == "fsync")
            seconds[mode].append(time.perf_counter() - started)
    return seconds


def file_system(path: Path) -> str:
    """The type of the file system holding ``path`` (longest mount point that contains it)."""
    best, kind = "", "unknown"
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, fs, *_ = line.split()
        if str(path).startswith(mount) and len(mount) > len(best):
            best, kind = mount, fs
    return kind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="Writes per mode and case, interleaved.")
    parser.add_argument("--jsonl-mb", type=float, default=3.0)
    parser.add_argument("--model-mb", type=float, default=90.0)
    parser.add_argument("--small-files", type=int, default=100)
    parser.add_argument("--dir", type=Path, default=ROOT, help="Where the scratch folder goes (its disk is timed).")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory(prefix=".fsync-cost-", dir=args.dir) as work:
        for name, write in cases(args.jsonl_mb, args.model_mb, args.small_files).items():
            seconds = measure(write, Path(work), args.rounds)
            median = {m: statistics.median(s) for m, s in seconds.items()}
            results.append({"case": name, "median_s": median, "seconds": seconds,
                            "overhead_ms": 1000 * (median["fsync"] - median["no fsync"]),
                            "ratio": median["fsync"] / median["no fsync"]})
            print(f"{name}: no fsync {1000 * median['no fsync']:.1f} ms, fsync {1000 * median['fsync']:.1f} ms "
                  f"(+{results[-1]['overhead_ms']:.1f} ms, x{results[-1]['ratio']:.2f})")
    report = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "file_system": file_system(args.dir.resolve()), "kernel": platform.release()},
              "rounds": args.rounds, "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "fsync_cost.json", report)
    plot(results, args.out / "fsync_cost.png")


def plot(results: list[dict], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.38
    for k, mode in enumerate(MODES):
        xs = [i + (k - 0.5) * width for i in range(len(results))]
        ax.bar(xs, [1000 * r["median_s"][mode] for r in results], width, label=mode)
    for i, r in enumerate(results):
        ax.annotate(f"x{r['ratio']:.1f}", (i, 1000 * max(r["median_s"].values())), ha="center", va="bottom")
    ax.set_xticks(range(len(results)), [r["case"] for r in results])
    ax.set_yscale("log")
    ax.set_ylabel("median ms per case (log)")
    ax.set_title("atomic_write: cost of fsync (file + folder)")
    ax.legend()
    fig.tight_layout()
    atomic_write(target, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


if __name__ == "__main__":
    main()
