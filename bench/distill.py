"""Distillation: a 6-layer MiniLM teacher fine-tuned on SST-2 -> a 3-layer student, accuracy and speed of both.

The teacher is a tunelab `full` run on the first 8,000 rows of ../shared/data/sst2/train.tsv (or
--teacher RUN from --store); the student is `tunelab distill --student-layers 3` on the same rows,
and, for reference, the same 3-layer body fine-tuned on the gold labels alone (alpha 0: no teacher).
Scored on all 872 dev rows. The seed cites DistilBERT: 40% smaller, ~97% of the teacher's score.

    .venv/bin/python bench/distill.py [--rows 8000] [--epochs 3] [--teacher RUN --store DIR] [--layers 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from classification import SST2, slice_tsv  # noqa: E402
from common import machine, prepare, save  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--teacher", default=None, help="an existing full run on the same data")
    parser.add_argument("--store", default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    prepare(args.out)
    from tunelab.config import load_config
    from tunelab.pipeline import distill, train
    from tunelab.registry import RunStore

    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(args.store or Path(folder) / "runs")
        train_file = slice_tsv(SST2 / "train.tsv", Path(folder) / "train.tsv", args.rows)
        data = {"data.train": str(train_file), "data.validation": str(SST2 / "dev.tsv"), "data.text_column": "sentence",
                "train.num_train_epochs": args.epochs, "quiet": True}
        teacher = store.get(args.teacher) if args.teacher else train(load_config(None, {"strategy": "full", **data}), store)
        runs = {}
        for name, alpha in (("student, distilled", 0.5), ("student, gold labels only", 0.0)):
            runs[name] = distill(load_config(None, {**data, "distill.teacher": teacher.id,
                                                    "distill.student_layers": args.layers, "distill.alpha": alpha}), store)
            print(f"done: {name} {runs[name].manifest['metrics']['validation']}", flush=True)
    info = runs["student, distilled"].manifest["strategy_info"]["distillation"]
    t = info["teacher"]
    lines = [f"SST-2: first {args.rows} rows of train.tsv, 872 dev rows; {args.epochs:g} epochs; teacher {teacher.id} (6 layers),"
             f" students keep layers {info['student']['layers_kept']}; latency = median ms per example at batch 1, tokenisation included",
             f"machine: {machine()}", f"date: {time.strftime('%Y-%m-%d')}", "",
             "| model | dev accuracy | share of teacher's accuracy | parameters | size | latency ms | speed-up |",
             "|---|---|---|---|---|---|---|",
             f"| teacher (full fine-tune) | {t['validation']['accuracy']:.4f} | 100% | {t['params'] / 1e6:.1f}M"
             f" | {t['artifact_bytes'] / 2**20:.0f} MB | {t['latency_ms']:.2f} | 1.00x |"]
    for name, run in runs.items():
        s = run.manifest["strategy_info"]["distillation"]["student"]
        accuracy = run.manifest["metrics"]["validation"]["accuracy"]
        lines.append(f"| {name} | {accuracy:.4f} | {accuracy / t['validation']['accuracy']:.1%} | {s['params'] / 1e6:.1f}M"
                     f" | {run.manifest['artifact_bytes'] / 2**20:.0f} MB | {s['latency_ms']:.2f}"
                     f" | {t['latency_ms'] / s['latency_ms']:.2f}x |")
    save(args.out, "distill", "\n".join(lines), {"teacher": teacher.manifest, "students": {k: v.manifest for k, v in runs.items()}})


if __name__ == "__main__":
    main()
