"""Helpers the benchmark scripts share: the machine line of every table, and labelled CSV files."""

from __future__ import annotations

import csv
import json
import os
import platform
from pathlib import Path


def machine() -> str:
    """CPU model, cores and library versions, for the results table."""
    import torch
    import transformers

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    gpu = f"CUDA {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads),"
            f" transformers {transformers.__version__}, {gpu}")


def write_rows(path: Path, rows: list[tuple[str, str]]) -> Path:
    """(text, label) rows as a `text,label` CSV that tunelab reads with its defaults."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def prepare(out: Path) -> None:
    """What every benchmark does first: no network, tunelab quiet, the output folder made."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tunelab import console

    console.set_quiet(True)
    out.mkdir(parents=True, exist_ok=True)


def save(out: Path, name: str, table: str, data: object) -> None:
    """Print the table and keep it as <out>/<name>.md, with the raw numbers as <name>.json."""
    print(table)
    (out / f"{name}.md").write_text(table + "\n", encoding="utf-8")
    (out / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
