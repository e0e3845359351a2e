"""Training speed: the plain transformers.Trainer (fp32 library defaults) against tunelab's defaults, in one run.

Same data (first 8,000 rows of ../shared/data/sst2/train.tsv, all 872 dev rows), model (bundled MiniLM),
epochs, batch size and learning rate. Prints examples/second of `trainer.train()` for both and their
ratio, dev accuracy for both, and the achieved FLOP/s as a share of this machine's bf16 matmul peak,
measured in the same run. Ablations (each one tunelab knob changed) show what every default buys;
the last table is the `features` strategy's embedding throughput, first run vs cached.

FLOPs are the usual 6 * N * T estimate: N the parameters outside the embedding tables, T the real
(non-padding) tokens trained on; padding and attention scores are not counted, so the share is a floor.

    .venv/bin/python bench/speed.py [--rows 8000] [--epochs 3] [--ablations fp32,freeze,compile]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from classification import SST2, plain_trainer, slice_tsv  # noqa: E402
from common import machine, prepare, save  # noqa: E402

LEARNING_RATE = 2e-5  # tunelab's full fine-tuning default, given to the reference too


def matmul_peak(dtype_name: str, size: int = 2048, repeats: int = 15) -> float:
    """Median GFLOP/s of a square matrix product in this dtype, on this machine, now."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def training_flops(train_file: Path, epochs: float) -> float:
    """6 * non-embedding parameters * real tokens * epochs."""
    import csv

    from transformers import AutoModel, AutoTokenizer

    from tunelab.models import bundled_model_path

    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path())
    with train_file.open(encoding="utf-8") as handle:
        texts = [row["sentence"] for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]
    tokens = sum(len(ids) for ids in tokenizer(texts, truncation=True, max_length=128)["input_ids"])
    parameters = AutoModel.from_pretrained(bundled_model_path()).num_parameters(exclude_embeddings=True)
    return 6.0 * parameters * tokens * epochs


def tunelab_full(name: str, train_file: Path, dev_file: Path, epochs: float, batch_size: int, store: Path,
                 **overrides: object) -> dict:
    """One tunelab full fine-tune with its defaults plus `overrides`; speed from the Trainer's own train_runtime."""
    from tunelab.config import load_config
    from tunelab.pipeline import train
    from tunelab.registry import RunStore

    values = {"strategy": "full", "data.train": str(train_file), "data.validation": str(dev_file),
              "data.text_column": "sentence", "train.num_train_epochs": epochs, "quiet": True,
              "train.per_device_train_batch_size": batch_size, "train.learning_rate": LEARNING_RATE, **overrides}
    run = train(load_config(None, values), RunStore(store))
    history = json.loads((run.path / "metrics.json").read_text())["history"]
    runtime = next(entry["train_runtime"] for entry in history if "train_runtime" in entry)
    rows = run.manifest["data"]["train"]["rows"]
    return {"name": name, "accuracy": run.manifest["metrics"]["validation"]["accuracy"], "seconds": runtime,
            "examples_per_second": rows * epochs / runtime, "precision": run.manifest["precision"],
            "run_seconds": run.manifest["train_seconds"]}


def embedding_throughput(train_file: Path, cache_root: Path) -> list[dict]:
    """Texts/second of the features strategy's embedding: fp32, bf16, and a second (cached) bf16 pass."""
    import csv

    from transformers import AutoTokenizer

    from tunelab.embedding import EmbeddingCache, embed
    from tunelab.models import bundled_model_path, load_encoder, resolve_model

    with train_file.open(encoding="utf-8") as handle:
        texts = [row["sentence"] for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]
    ref = resolve_model("default")
    encoder, tokenizer = load_encoder(ref), AutoTokenizer.from_pretrained(bundled_model_path())
    results = []
    for precision in ("fp32", "bf16"):
        cache = EmbeddingCache(cache_root, f"speed-{precision}")
        for attempt in ("first run", "cached"):
            start = time.perf_counter()
            cache.get_or_compute(texts, None, lambda t, p, precision=precision: embed(
                encoder, tokenizer, t, p, max_length=128, batch_size=64, progress=False, precision=precision))
            seconds = time.perf_counter() - start
            results.append({"name": f"{precision}, {attempt}", "texts_per_second": len(texts) / seconds,
                            "hits": cache.hits, "misses": cache.misses})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--ablations", default="fp32,unfreeze,eager,compile",
                        help="comma list of: fp32 (no bf16), unfreeze (train the embeddings too), eager (eager attention"
                             " instead of SDPA), compile (torch.compile)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    if not (SST2 / "train.tsv").is_file():
        sys.exit(f"bench: SST-2 not found at {SST2}")
    from tunelab.hardware import resolve_precision

    prepare(args.out)
    peaks = {"fp32": matmul_peak("fp32"), "bf16": matmul_peak("bf16")}
    print(f"matmul peak GFLOP/s: {peaks}", flush=True)
    ablations = {"fp32": {"train.precision": "fp32"},
                 "unfreeze": {"train.freeze_embeddings": False}, "eager": {"model.attn_implementation": "eager"},
                 "compile": {"train.torch_compile": True}}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        train_file = slice_tsv(SST2 / "train.tsv", folder / "train.tsv", args.rows)
        dev_file = SST2 / "dev.tsv"
        flops = training_flops(train_file, args.epochs)
        results = [plain_trainer(train_file, dev_file, args.epochs, args.batch_size, folder / "plain",
                                 learning_rate=LEARNING_RATE)]
        results[-1]["precision"] = "fp32"
        print(f"done: {results[-1]}", flush=True)
        results.append(tunelab_full(f"tunelab full, defaults ({resolve_precision('auto')})", train_file, dev_file,
                                    args.epochs, args.batch_size, folder / "runs"))
        print(f"done: {results[-1]}", flush=True)
        for name in filter(None, args.ablations.split(",")):
            results.append(tunelab_full(f"tunelab full, defaults but {name}", train_file, dev_file, args.epochs,
                                        args.batch_size, folder / "runs", **ablations[name]))
            print(f"done: {results[-1]}", flush=True)
        embedding = embedding_throughput(train_file, folder / "cache")
    reference = results[0]
    lines = [f"SST-2: first {args.rows} rows of train.tsv, 872 dev rows; {args.epochs:g} epochs, batch {args.batch_size},"
             f" lr {LEARNING_RATE:g}; speed = train examples x epochs / trainer.train() seconds",
             f"machine: {machine()}", f"date: {time.strftime('%Y-%m-%d')}",
             f"matmul peak (2048^2, median): fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s;"
             f" training FLOPs (6*N*T): {flops / 1e12:.2f} TFLOP", "",
             "| setup | precision | dev accuracy | vs reference (points) | train seconds | examples/s | speed vs reference"
             " | GFLOP/s | share of bf16 peak |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        achieved = flops / r["seconds"] / 1e9
        lines.append(f"| {r['name']} | {r['precision']} | {r['accuracy']:.4f} | {100 * (r['accuracy'] - reference['accuracy']):+.1f}"
                     f" | {r['seconds']:.1f} | {r['examples_per_second']:.1f}"
                     f" | {r['examples_per_second'] / reference['examples_per_second']:.2f}x | {achieved:.0f}"
                     f" | {achieved / peaks['bf16']:.0%} |")
    lines += ["", "features strategy, embedding the same texts (batch 64, length-sorted):", "",
              "| pass | texts/s | cache hits | computed |", "|---|---|---|---|"]
    lines += [f"| {e['name']} | {e['texts_per_second']:.0f} | {e['hits']} | {e['misses']} |" for e in embedding]
    save(args.out, "speed", "\n".join(lines), {"peaks": peaks, "flops": flops, "training": results, "embedding": embedding})


if __name__ == "__main__":
    main()
