"""SST-2 benchmark: tunelab's three strategies against a plain transformers.Trainer fine-tune, in one run.

Train on the first 8,000 rows of ../shared/data/sst2/train.tsv, score on all 872 rows of dev.tsv,
bundled MiniLM, every strategy with its defaults. The reference is a hand-written Trainer with the
same data, epochs and batch size, and the library's defaults for everything else.

    .venv/bin/python bench/classification.py [--rows 8000] [--epochs 3] [--out bench/out]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from common import machine, prepare, save  # noqa: E402

SST2 = ROOT.parent / "shared" / "data" / "sst2"


def slice_tsv(source: Path, target: Path, rows: int) -> Path:
    """First `rows` data rows of a TSV, header kept."""
    with source.open(encoding="utf-8") as handle:
        lines = [next(handle) for _ in range(rows + 1)]
    target.write_text("".join(lines), encoding="utf-8")
    return target


def plain_trainer(train_file: Path, dev_file: Path, epochs: float, batch_size: int, out: Path,
                  learning_rate: float = 5e-5) -> dict:
    """The reference: the stock Trainer recipe, written the way its documentation shows."""
    import datasets
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    from tunelab.models import bundled_model_path

    files = {"train": str(train_file), "validation": str(dev_file)}
    raw = datasets.load_dataset("csv", data_files=files, delimiter="\t", quoting=3)
    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path())
    encoded = raw.map(lambda b: tokenizer(b["sentence"], truncation=True, max_length=128), batched=True)
    model = AutoModelForSequenceClassification.from_pretrained(bundled_model_path(), num_labels=2)
    args = TrainingArguments(output_dir=str(out), num_train_epochs=epochs, per_device_train_batch_size=batch_size,
                             per_device_eval_batch_size=64, learning_rate=learning_rate, save_strategy="no", report_to="none", seed=42,
                             disable_tqdm=True, logging_strategy="no")
    trainer = Trainer(model=model, args=args, train_dataset=encoded["train"], processing_class=tokenizer)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    logits = trainer.predict(encoded["validation"]).predictions
    accuracy = float((np.argmax(logits, axis=1) == np.array(encoded["validation"]["label"])).mean())
    return {"name": "plain Trainer (reference)", "accuracy": accuracy, "seconds": seconds,
            "examples_per_second": len(encoded["train"]) * epochs / seconds}


def tunelab_strategy(strategy: str, train_file: Path, dev_file: Path, epochs: float, store: Path) -> dict:
    """One tunelab run with the strategy's defaults."""
    from tunelab.config import load_config
    from tunelab.pipeline import train
    from tunelab.registry import RunStore

    config = load_config(None, {"strategy": strategy, "data.train": str(train_file), "data.validation": str(dev_file),
                                "data.text_column": "sentence", "train.num_train_epochs": epochs, "quiet": True})
    run = train(config, RunStore(store))
    manifest = run.manifest
    passes = 1 if strategy == "features" else epochs  # features embeds each text once
    return {"name": f"tunelab {strategy}", "accuracy": manifest["metrics"]["validation"]["accuracy"],
            "seconds": manifest["train_seconds"],
            "examples_per_second": manifest["data"]["train"]["rows"] * passes / manifest["train_seconds"],
            "trainable_params": manifest["trainable_params"], "artifact_bytes": manifest["artifact_bytes"],
            "peak_rss_mb": manifest["peak_rss_mb"], "run": run.id}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--strategies", default="features,full,lora")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    if not (SST2 / "train.tsv").is_file():
        sys.exit(f"bench: SST-2 not found at {SST2}")
    prepare(args.out)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        train_file = slice_tsv(SST2 / "train.tsv", folder / "train.tsv", args.rows)
        dev_file = SST2 / "dev.tsv"
        results = [plain_trainer(train_file, dev_file, args.epochs, args.batch_size, folder / "plain")]
        print(f"done: {results[-1]}", flush=True)
        for strategy in args.strategies.split(","):
            results.append(tunelab_strategy(strategy, train_file, dev_file, args.epochs, folder / "runs"))
            print(f"done: {results[-1]}", flush=True)
    reference = results[0]["examples_per_second"]
    lines = [f"SST-2: first {args.rows} rows of train.tsv, all 872 dev rows; {args.epochs:g} epochs, batch {args.batch_size}",
             f"machine: {machine()}", f"date: {time.strftime('%Y-%m-%d')}", "",
             "| setup | dev accuracy | train seconds | examples/s | speed vs reference |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['name']} | {r['accuracy']:.4f} | {r['seconds']:.1f} | {r['examples_per_second']:.1f}"
                     f" | {r['examples_per_second'] / reference:.2f}x |")
    save(args.out, "classification", "\n".join(lines), results)


if __name__ == "__main__":
    main()
