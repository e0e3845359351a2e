"""Learning curve: which strategy wins at which data size, and where the decision tree's thresholds fall.

SST-2 (binary) and TREC (6 coarse classes): 8, 16, 32, 64 examples per class, then 500, 2,000 and
8,000 rows, each strategy with its defaults, several seeds; scored on SST-2 dev (872) and the TREC
test set (500). Also reports each run's plan estimate against the measured time and memory.

    .venv/bin/python bench/learning_curve.py [--datasets sst2,trec] [--per-class 8,16,32,64]
        [--rows 500,2000,8000] [--strategies features,fewshot,lora,full] [--seeds 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "bench"))

from common import machine, write_rows  # noqa: E402


def sst2() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, evaluation) rows of SST-2: train.tsv and dev.tsv."""
    def read(name: str) -> list[tuple[str, str]]:
        with (DATA / "sst2" / name).open(encoding="utf-8") as handle:
            return [(r["sentence"].strip(), r["label"]) for r in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]
    return read("train.tsv"), read("dev.tsv")


def trec() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, evaluation) rows of TREC with its 6 coarse labels ('DESC:manner How did ...' lines, latin-1)."""
    def read(name: str) -> list[tuple[str, str]]:
        rows = []
        for line in (DATA / "trec" / name).read_text(encoding="latin-1").splitlines():
            label, _, text = line.partition(" ")
            if text.strip():
                rows.append((text.strip(), label.split(":")[0]))
        return rows
    return read("TREC.train"), read("TREC.test")


def sample(rows: list[tuple[str, str]], size: str, seed: int) -> list[tuple[str, str]]:
    """'16/class' -> 16 random rows of every label; '500' -> 500 random rows."""
    rng = np.random.default_rng(seed)
    if size.endswith("/class"):
        per_class = int(size.split("/")[0])
        labels = sorted({label for _, label in rows})
        picked = [i for label in labels
                  for i in rng.choice([i for i, r in enumerate(rows) if r[1] == label], per_class, replace=False)]
        return [rows[i] for i in picked]
    return [rows[i] for i in rng.choice(len(rows), min(int(size), len(rows)), replace=False)]  # TREC has 5,452



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="sst2,trec")
    parser.add_argument("--per-class", default="8,16,32,64")
    parser.add_argument("--rows", default="500,2000,8000")
    parser.add_argument("--strategies", default="features,fewshot,lora,full")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    from tunelab import console
    from tunelab.config import load_config
    from tunelab.pipeline import train
    from tunelab.registry import RunStore

    console.set_quiet(True)
    sizes = [f"{n}/class" for n in args.per_class.split(",") if n] + [n for n in args.rows.split(",") if n]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "runs")
        for name in args.datasets.split(","):
            pool, evaluation = {"sst2": sst2, "trec": trec}[name]()
            eval_file = write_rows(Path(tmp) / f"{name}-eval.csv", evaluation)
            for size in sizes:
                for seed in range(args.seeds):
                    train_file = write_rows(Path(tmp) / f"{name}-{size.replace('/', '-')}-{seed}.csv", sample(pool, size, seed))
                    for strategy in args.strategies.split(","):
                        config = load_config(None, {"strategy": strategy, "data.train": str(train_file),
                                                    "data.validation": str(eval_file), "seed": seed, "quiet": True})
                        run = train(config, store).manifest
                        results.append({"dataset": name, "size": size, "seed": seed, "strategy": strategy,
                                        "accuracy": run["metrics"]["validation"]["accuracy"],
                                        "macro_f1": run["metrics"]["validation"]["macro_f1"],
                                        "seconds": run["train_seconds"], "estimate": run["plan"]["estimate"]["seconds"],
                                        "peak_rss_mb": run["peak_rss_mb"], "estimate_rss_mb": run["plan"]["estimate"]["peak_rss_mb"]})
                        print(json.dumps(results[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "learning_curve.json").write_text(json.dumps(results, indent=2) + "\n")
    print(report(results, sizes, args.strategies.split(",")))


def report(results: list[dict], sizes: list[str], strategies: list[str]) -> str:
    """Accuracy mean ± std per (dataset, size) and strategy, then estimate-vs-actual ratios."""
    lines = [f"machine: {machine()}", f"date: {time.strftime('%Y-%m-%d')}", "",
             "| dataset | train size | " + " | ".join(strategies) + " |", "|---|---|" + "---|" * len(strategies)]
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        for size in sizes:
            cells = []
            for strategy in strategies:
                scores = [r["accuracy"] for r in results if (r["dataset"], r["size"], r["strategy"]) == (dataset, size, strategy)]
                spread = f" ± {statistics.stdev(scores):.3f}" if len(scores) > 1 else ""
                cells.append(f"{statistics.mean(scores):.3f}{spread}" if scores else "-")
            lines.append(f"| {dataset} | {size} | " + " | ".join(cells) + " |")
    lines += ["", "| strategy | runs | actual/estimated time (median, min-max) | actual/estimated peak memory (median) |",
              "|---|---|---|---|"]
    for strategy in strategies:
        ratios = [r["seconds"] / r["estimate"] for r in results if r["strategy"] == strategy and r["estimate"]]
        memory = [r["peak_rss_mb"] / r["estimate_rss_mb"] for r in results if r["strategy"] == strategy and r["estimate_rss_mb"]]
        if ratios:
            lines.append(f"| {strategy} | {len(ratios)} | {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
                         f" | {statistics.median(memory):.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
