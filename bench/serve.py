"""Serving under load: `tunelab serve` in its own process, clients in this one, on loopback.

Three LoRA runs over the bundled MiniLM (SST-2 slices), served at once. For 1, 4 and 16 concurrent
clients, each sending one SST-2 dev sentence per request for a fixed duration: throughput, p50/p99
latency and errors, with micro-batching off (one forward pass per request) and on, and with every
request to one adapter against requests spread over all three.

    .venv/bin/python bench/serve.py [--seconds 10] [--clients 1,4,16] [--rows 1000]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from classification import SST2, slice_tsv  # noqa: E402
from common import machine, prepare, save  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(store: Path, port: int, batch_wait_ms: float) -> subprocess.Popen:
    """`tunelab serve` as a separate process; returns once /healthz answers."""
    process = subprocess.Popen([sys.executable, "-m", "tunelab", "serve", "--store", str(store), "--port", str(port),
                                "--batch-wait-ms", str(batch_wait_ms)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not start")


def load(port: int, runs: list[str], texts: list[str], clients: int, seconds: float) -> dict:
    """`clients` threads sending one text per request, round-robin over `runs`, for `seconds`."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(index: int) -> None:
        i = index
        while time.monotonic() < stop:
            body = json.dumps({"run": runs[i % len(runs)], "inputs": [texts[i % len(texts)]]}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/predict", data=body,
                                             headers={"Content-Type": "application/json"})
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    response.read()
                with lock:
                    latencies.append(time.perf_counter() - started)
            except (urllib.error.URLError, OSError):
                with lock:
                    errors[0] += 1
            i += clients

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = sorted(latencies)
    return {"requests_per_second": len(ordered) / seconds, "p50_ms": 1000 * statistics.median(ordered) if ordered else 0.0,
            "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0,
            "errors": errors[0], "requests": len(ordered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--rows", type=int, default=1000, help="SST-2 rows each LoRA run trains on (1 epoch)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    prepare(args.out)
    from tunelab.config import load_config
    from tunelab.pipeline import train
    from tunelab.registry import RunStore

    with open(SST2 / "dev.tsv", encoding="utf-8") as handle:
        texts = [row["sentence"] for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]
    results = []
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(Path(folder) / "runs")
        train_file = slice_tsv(SST2 / "train.tsv", Path(folder) / "train.tsv", args.rows)
        runs = [train(load_config(None, {"strategy": "lora", "data.train": str(train_file), "data.text_column": "sentence",
                                         "train.num_train_epochs": 1, "seed": seed, "quiet": True,
                                         "output_dir": str(store.root / f"adapter-{seed}")}), store).id for seed in range(3)]
        for wait_ms in (0.0, 5.0):
            port = free_port()
            server = start_server(store.root, port, wait_ms)
            try:
                load(port, runs, texts, 4, 2.0)  # warm-up: every adapter loaded onto the shared base
                for adapters in (1, 3):
                    for clients in (int(c) for c in args.clients.split(",")):
                        row = load(port, runs[:adapters], texts, clients, args.seconds)
                        row.update({"micro_batching": f"on ({wait_ms:g} ms)" if wait_ms else "off", "adapters": adapters,
                                    "clients": clients})
                        results.append(row)
                        print(f"done: {row}", flush=True)
            finally:
                server.terminate()
                server.wait(timeout=30)
    lines = [f"tunelab serve on loopback, 3 LoRA runs over the bundled MiniLM; one SST-2 dev sentence per request;"
             f" {args.seconds:g} s per cell", f"machine: {machine()}", f"date: {time.strftime('%Y-%m-%d')}", "",
             "| micro-batching | adapters in use | clients | requests/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['micro_batching']} | {r['adapters']} | {r['clients']} | {r['requests_per_second']:.1f} | {r['p50_ms']:.1f}"
              f" | {r['p99_ms']:.1f} | {r['errors']} |" for r in results]
    save(args.out, "serve", "\n".join(lines), results)


if __name__ == "__main__":
    main()
