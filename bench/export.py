"""Export: PyTorch eager (fp32, and bf16 autocast) vs ONNX fp32 vs ONNX int8 on an SST-2 classifier, in one run.

Trains a tunelab `full` run on the first 8,000 rows of ../shared/data/sst2/train.tsv (or takes --run),
exports it with `tunelab export --quantize`, then times every backend over all 872 dev sentences at
batch 1 and batch 32 (length-sorted, tokenisation included) and scores each on the same rows.

    .venv/bin/python bench/export.py [--rows 8000] [--epochs 3] [--run RUN --store DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from classification import SST2, slice_tsv  # noqa: E402
from common import machine, prepare, save  # noqa: E402


def throughput(predict, texts: list[str], batch_size: int, repeats: int) -> float:
    """Median texts/second of `predict(texts, batch_size)` over `repeats` passes (after one warm-up pass)."""
    predict(texts[:64], batch_size)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(texts, batch_size)
        times.append(time.perf_counter() - start)
    return len(texts) / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--run", default=None, help="an existing full run to export instead of training one")
    parser.add_argument("--store", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    prepare(args.out)
    from transformers import AutoTokenizer

    from tunelab.config import load_config
    from tunelab.export import OnnxPredictor, export_run
    from tunelab.inference import load_run_predictor
    from tunelab.pipeline import run_data_config, train
    from tunelab.registry import RunStore
    from tunelab.tasks.classification import read_examples

    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(args.store or Path(folder) / "runs")
        if args.run:
            run = store.get(args.run)
        else:
            train_file = slice_tsv(SST2 / "train.tsv", Path(folder) / "train.tsv", args.rows)
            run = train(load_config(None, {"strategy": "full", "data.train": str(train_file), "data.validation": str(SST2 / "dev.tsv"),
                                           "data.text_column": "sentence", "train.num_train_epochs": args.epochs, "quiet": True}), store)
        dev, _ = read_examples(str(SST2 / "dev.tsv"), run_data_config(run, {}), run.manifest["labels"], "test")
        torch_predictor = load_run_predictor(run, store.root)
        # export_run reports a disagreeing int8 model instead of raising, so its numbers still get tabulated.
        report = export_run(run, torch_predictor, dev, Path(folder) / "onnx", quantize=True)
        tokenizer = AutoTokenizer.from_pretrained(Path(folder) / "onnx")
        labels, length = run.manifest["labels"], run.manifest["max_length"]
        backends = {}
        for precision in ("fp32", "bf16"):
            def predict(texts, batch_size, precision=precision):
                torch_predictor.precision = precision
                return torch_predictor.predict_proba(texts, batch_size=batch_size)
            backends[f"PyTorch eager {precision}"] = predict
        for kind, file in (("fp32", "model.onnx"), ("int8", "model.int8.onnx")):
            onnx = OnnxPredictor(Path(folder) / "onnx" / file, tokenizer, labels, length)
            backends[f"ONNX Runtime {kind}"] = lambda texts, batch_size, onnx=onnx: onnx.predict_proba(texts, batch_size=batch_size)
        results = []
        for name, predict in backends.items():
            accuracy = float((np.argmax(predict(dev.texts, 32), axis=1) == dev.labels).mean())
            row = {"name": name, "accuracy": accuracy,
                   "batch_1": throughput(predict, dev.texts, 1, args.repeats),
                   "batch_32": throughput(predict, dev.texts, 32, args.repeats)}
            results.append(row)
            print(f"done: {row}", flush=True)
        sizes = {"ONNX Runtime fp32": report["exports"]["fp32"]["bytes"], "ONNX Runtime int8": report["exports"]["int8"]["bytes"]}
    reference = results[0]
    lines = [f"SST-2 full run ({run.id}), all 872 dev sentences; texts/second, median of {args.repeats} passes,"
             " tokenisation included", f"machine: {machine()}", f"date: {time.strftime('%Y-%m-%d')}", "",
             "| backend | dev accuracy | model file | batch 1 texts/s | vs PyTorch fp32 | batch 32 texts/s | vs PyTorch fp32 |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        size = f"{sizes[r['name']] / 2**20:.0f} MB" if r["name"] in sizes else "-"
        lines.append(f"| {r['name']} | {r['accuracy']:.4f} | {size} | {r['batch_1']:.0f} | {r['batch_1'] / reference['batch_1']:.2f}x"
                     f" | {r['batch_32']:.0f} | {r['batch_32'] / reference['batch_32']:.2f}x |")
    lines += ["", f"parity (export report): max |logit difference| fp32 {report['exports']['fp32']['max_abs_logit_difference']:.1e},"
              f" int8 {report['exports']['int8']['max_abs_logit_difference']:.1e}; agreement with PyTorch fp32"
              f" {report['exports']['fp32']['agreement']:.2%} / {report['exports']['int8']['agreement']:.2%}"]
    save(args.out, "export", "\n".join(lines), {"results": results, "export": report})


if __name__ == "__main__":
    main()
