"""Forgetting: what full fine-tuning costs the encoder's general language, and what the seed's fixes buy back.

SST-2 (first N rows of train.tsv, all 872 dev rows), bundled MiniLM, full fine-tuning with tunelab's
defaults, then with layer-wise learning-rate decay, gradual unfreezing, and both; LoRA for reference.
Every run measures `--probe-forgetting` (general-English masked-LM loss, pre-trained encoder vs tuned
encoder, one MLM head, fixed masks). Several seeds; mean ± std.

    .venv/bin/python bench/forgetting.py [--rows 2000] [--seeds 2] [--learning-rate 5e-5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from classification import SST2, slice_tsv  # noqa: E402
from common import machine, prepare, save  # noqa: E402

SETUPS = {
    "full (defaults)": {"strategy": "full"},
    "full + layer-wise lr decay 0.8": {"strategy": "full", "train.layerwise_lr_decay": 0.8},
    "full + gradual unfreezing": {"strategy": "full", "train.gradual_unfreezing": True},
    "full + both": {"strategy": "full", "train.layerwise_lr_decay": 0.8, "train.gradual_unfreezing": True},
    "lora (defaults)": {"strategy": "lora"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=5e-5, help="for the full setups (the top of the proven range)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    from tunelab.config import load_config
    from tunelab.pipeline import train
    from tunelab.registry import RunStore

    prepare(args.out)
    results: dict[str, list[dict]] = {name: [] for name in SETUPS}
    with tempfile.TemporaryDirectory() as folder:
        train_file = slice_tsv(SST2 / "train.tsv", Path(folder) / "train.tsv", args.rows)
        store = RunStore(Path(folder) / "runs")
        for name, setup in SETUPS.items():
            for seed in range(args.seeds):
                values = {"data.train": str(train_file), "data.validation": str(SST2 / "dev.tsv"), "data.text_column": "sentence",
                          "train.num_train_epochs": args.epochs, "quiet": True, "probe_forgetting": True, "seed": seed, **setup}
                if setup["strategy"] == "full":
                    values["train.learning_rate"] = args.learning_rate
                run = train(load_config(None, values), store)
                report = run.manifest["forgetting"]
                results[name].append({"accuracy": run.manifest["metrics"]["validation"]["accuracy"],
                                      "general_mlm_change": report["change"], "loss_before": report["mlm_loss_before"],
                                      "loss_after": report["mlm_loss_after"], "seconds": run.manifest["train_seconds"]})
                print(f"done: {name} seed {seed}: {results[name][-1]}", flush=True)

    def spread(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
        mean = statistics.mean(values) * scale
        std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
        return f"{mean:.{digits}f} ± {std:.{digits}f}"

    lines = [f"SST-2: first {args.rows} rows of train.tsv, 872 dev rows; {args.epochs:g} epochs; full lr {args.learning_rate:g};"
             f" {args.seeds} seeds (mean ± std)", f"machine: {machine()}", f"date: {time.strftime('%Y-%m-%d')}", "",
             "| setup | dev accuracy | general-English MLM loss change (forgetting) | train seconds |", "|---|---|---|---|"]
    for name, runs in results.items():
        lines.append(f"| {name} | {spread([r['accuracy'] for r in runs])} | {spread([r['general_mlm_change'] for r in runs], 100, 1)} %"
                     f" | {statistics.median(r['seconds'] for r in runs):.0f} |")
    save(args.out, "forgetting", "\n".join(lines), results)


if __name__ == "__main__":
    main()
