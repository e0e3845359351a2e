"""Helpers the benchmark scripts share: the machine line of every table, and labelled CSV files."""

from __future__ import annotations

import csv
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
