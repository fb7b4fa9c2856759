"""How much each ranker loses when test queries are typed the way people type them.

Every test-split query is perturbed by each family of ``training/perturb.py``
(typo, units, drop, order) at two rates (``strengths``: units are respelled
more often, as few queries hold a number), with a seed no training run uses
(``BENCHMARK_SEED``); the judged products stay the same. Each system ranks the
clean and the perturbed lists, and the benchmark reports, per family and
strength, the loss (clean − perturbed) in NDCG@5 and pairwise accuracy with
paired 95% bootstrap intervals, over all test queries and over the queries the
family changed. With two or more students it also reports each later
student's clean difference and loss difference with the first (the reference,
e.g. the plain student), paired (the robust student's bar: at most a third of
the loss).

Systems: BM25 through the cluster (the main job's ``products`` index; skip with
``--no-bm25``) and any checkpoints or zips (``--system NAME=PATH``; default:
the teacher and the shipped student of the main job).

Writes ``benchmarks/results/robustness.json`` and ``robustness.png``.

    .venv/bin/python benchmarks/robustness.py [--system robust=runs/robust.zip ...] [--max-queries N]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reranker_core.config import load_config, override  # noqa: E402
from reranker_core.files import atomic_write, write_json_atomic  # noqa: E402
from training.bootstrap import PerQuery, average_draws, contrast, per_query  # noqa: E402
from training.datasets import load_dataset  # noqa: E402
from training.evaluate import JudgedList, judged_lists, load_scorer, ranked_lists  # noqa: E402
from training.metrics import RankedList  # noqa: E402
from training.perturb import BENCHMARK_SEED, FAMILIES, STRENGTHS, perturb, strengths  # noqa: E402

METRICS = ("ndcg@5", "pairwise_accuracy")


def shipped_zip(runs: Path) -> Path:
    """The zip `reranker run` shipped: int8 when its verdict said within noise, else fp32."""
    verdict = runs / "student-int8.json"
    if verdict.is_file() and json.loads(verdict.read_text()).get("within_noise"):
        return runs / "student-int8.zip"
    return runs / "student.zip"


def perturbed(lists: list[JudgedList], family: str, strength: float, seed: int) -> list[JudgedList]:
    return [replace(j, query=perturb(j.query, family, strength, seed)) for j in lists]


class Ranker:
    """A system's ranked lists, each (list, query text) scored once: unchanged queries reuse the clean scores."""

    def __init__(self, name: str, rank) -> None:
        self.name, self._rank, self._done = name, rank, {}

    def lists(self, lists: list[JudgedList]) -> list[RankedList]:
        todo = [i for i, j in enumerate(lists) if (i, j.query) not in self._done]
        for i, ranked in zip(todo, self._rank([lists[i] for i in todo]) if todo else []):
            self._done[i, lists[i].query] = ranked
        return [self._done[i, j.query] for i, j in enumerate(lists)]


def model_ranker(name: str, path: Path) -> Ranker:
    scorer = load_scorer(path)
    return Ranker(name, lambda lists: ranked_lists(scorer, lists))


def bm25_ranker(config, index: str) -> Ranker:
    from reranker_plugin.connection import connect
    from reranker_plugin.jobs.evaluate import rank_through_cluster

    client = connect(config.cluster)
    fields = tuple(config.template.fields or ("title",))

    def rank(lists: list[JudgedList]) -> list[RankedList]:  # one search per list: perturbed queries may collide
        return [rank_through_cluster(client, index, {j.query: dict(zip(j.product_ids, j.labels))}, fields,
                                     [None])["bm25"][0] for j in lists]
    return Ranker("BM25", rank)


def subset(q: PerQuery, keep: list[int]) -> PerQuery:
    return PerQuery({k: v[keep] for k, v in q.values.items()}, q.pair_correct[keep], q.pair_total[keep])


def rounded(found: dict) -> dict:
    return {k: [round(x, 5) for x in found[k]] for k in METRICS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="reranker.yaml (default: ./reranker.yaml)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/homedepot/train.csv.zip")
    parser.add_argument("--kind", default="homedepot")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs", help="The main job's outputs.")
    parser.add_argument("--system", action="append", default=[], metavar="NAME=PATH",
                        help="A checkpoint or zip to measure (repeatable); default: the teacher and the shipped "
                             "student. The first two students' losses are also compared, paired.")
    parser.add_argument("--no-bm25", action="store_true", help="Leave out BM25 (it needs the cluster).")
    parser.add_argument("--index", default="products", help="The main job's product index (BM25).")
    parser.add_argument("--max-queries", type=int, default=None, help="Test queries (sorted); default all.")
    parser.add_argument("--family", action="append", choices=FAMILIES, help="Only these families (repeatable).")
    parser.add_argument("--strength", action="append", choices=list(STRENGTHS),
                        help="Only these named rates (repeatable); default both.")
    parser.add_argument("--draws", type=int, default=1,
                        help="Perturb each query this many times (seeds BENCHMARK_SEED, +1, ...) and average each "
                             "query's loss over the draws that changed it: less noise from the draw itself.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()

    started = time.monotonic()
    config = load_config(args.config)
    config = override(config, data=override(config.data, path=str(args.data), kind=args.kind))
    dataset = load_dataset(config.data.kind, Path(config.data.path), config.data.grade_map,
                           Path(config.data.catalog) if config.data.catalog else None)
    test = judged_lists(dataset, "test", config.template, config.data.split_fractions, config.data.split_salt,
                        args.max_queries)
    systems = [tuple(s.split("=", 1)) for s in args.system] or [
        ("teacher", str(args.runs / "teacher")), ("shipped student", str(shipped_zip(args.runs)))]
    rankers = ([] if args.no_bm25 else [bm25_ranker(config, args.index)]) + [
        model_ranker(name, Path(path)) for name, path in systems]
    clean = {r.name: per_query(r.lists(test)) for r in rankers}
    print(f"clean test split scored ({len(test)} lists) in {time.monotonic() - started:.0f}s", flush=True)
    students = [name for name, _ in systems if name != "teacher"]
    pairs = [(students[0], other) for other in students[1:]]  # the first student is the reference
    rates = {f: {name: rate for name, rate in strengths(f).items() if not args.strength or name in args.strength}
             for f in args.family or FAMILIES}
    conditions = []
    for family, named in rates.items():
        for strength_name, strength in named.items():
            draws = [perturbed(test, family, strength, BENCHMARK_SEED + d) for d in range(args.draws)]
            changed_in = [[a.query != b.query for a, b in zip(test, drawn)] for drawn in draws]
            changed = [i for i in range(len(test)) if any(c[i] for c in changed_in)]
            row = {"family": family, "strength": strength_name, "rate": strength, "changed_queries": len(changed),
                   "examples": [[test[i].query, draws[0][i].query] for i in changed[:5]], "systems": {}}
            noisy = {}
            for r in rankers:
                noisy[r.name] = average_draws(clean[r.name], [per_query(r.lists(d)) for d in draws], changed_in)
                row["systems"][r.name] = {
                    "all": rounded(contrast([(1, clean[r.name]), (-1, noisy[r.name])])),
                    "changed": rounded(contrast([(1, subset(clean[r.name], changed)),
                                                 (-1, subset(noisy[r.name], changed))])) if changed else None}
            for a, b in pairs if changed else ():
                row[f"loss {a} - loss {b} (changed)"] = rounded(contrast(
                    [(1, subset(clean[a], changed)), (-1, subset(noisy[a], changed)),
                     (-1, subset(clean[b], changed)), (1, subset(noisy[b], changed))]))
            conditions.append(row)
            loss = {n: s["changed"]["pairwise_accuracy"][0] if s["changed"] else 0.0
                    for n, s in row["systems"].items()}
            print(f"{family} {strength_name}: {len(changed)} queries changed; pairwise loss on them "
                  + ", ".join(f"{n} {v:+.4f}" for n, v in loss.items()), flush=True)
    data = {"dataset": dataset.name, "test_queries": len(test), "seed": BENCHMARK_SEED, "draws": args.draws,
            "strengths": rates,
            "systems": ({} if args.no_bm25 else {"BM25": f"through the cluster, index {args.index!r}"}) | dict(systems),
            "clean": {n: rounded(contrast([(1, q)])) for n, q in clean.items()},
            "clean differences": {f"{a} - {b}": rounded(contrast([(1, clean[a]), (-1, clean[b])]))
                                  for a, b in pairs},
            "conditions": conditions, "seconds": round(time.monotonic() - started, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "robustness.json", data)
    _plot(data, args.out / "robustness.png")
    print(f"wrote {args.out / 'robustness.json'} and {args.out / 'robustness.png'}")


def _plot(data: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    labels = [f"{c['family']}\n{c['strength']}\n({c['changed_queries']} q.)" for c in data["conditions"]]
    names = list(data["clean"])
    width = 0.8 / len(names)
    for i, metric in enumerate(METRICS):
        ax = fig.add_subplot(1, len(METRICS), i + 1)
        for k, name in enumerate(names):
            found = [c["systems"][name]["changed"] or {metric: [0, 0, 0]} for c in data["conditions"]]
            value = [f[metric][0] for f in found]
            err = [[v - f[metric][1] for v, f in zip(value, found)], [f[metric][2] - v for v, f in zip(value, found)]]
            ax.bar([x + k * width for x in range(len(labels))], value, width, yerr=err, capsize=2, label=name)
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(labels))], labels, fontsize=7)
        ax.set_title(f"{metric.replace('_', ' ')} lost on the changed queries (clean − perturbed)", fontsize=9)
        ax.axhline(0, color="grey", lw=0.5)
        ax.legend(fontsize=7)
    draws = f", {data['draws']} draws per query" if data.get("draws", 1) > 1 else ""
    fig.suptitle(f"{data['dataset']} test split ({data['test_queries']} queries{draws}): robustness to how people type")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


if __name__ == "__main__":
    main()
