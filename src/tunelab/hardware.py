"""What this machine can do (cores, bf16, GPUs, free memory) and the numeric precision that suits it."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@functools.cache
def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX), where bf16 pays."""
    if Path("/proc/cpuinfo").is_file():
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
        return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))
    import torch

    # Not Linux: ask oneDNN; without the instructions bf16 is emulated and slower than fp32.
    return bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())


def resolve_precision(requested: str, device: str | None = None) -> str:
    """'auto' -> bf16 on bf16 GPUs and bf16 CPUs, fp16 on older GPUs, else fp32; an explicit choice stays."""
    if requested != "auto":
        return requested
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_supports_bf16() else "fp32"


@contextlib.contextmanager
def autocast(precision: str, device: str) -> Iterator[None]:
    """Mixed-precision inference in `precision` (weights stay as they are); fp32 is a no-op."""
    import torch

    if precision not in ("bf16", "fp16") or (device == "cpu" and precision == "fp16"):
        yield
        return
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.autocast(device_type=device.split(":")[0], dtype=dtype):
        yield


def available_ram_mb() -> float | None:
    """MemAvailable from /proc/meminfo, in MiB (None where unknown)."""
    try:
        line = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemAvailable"))
        return round(int(line.split()[1]) / 1024)
    except (OSError, StopIteration):
        return None


def describe() -> dict[str, Any]:
    """CPU cores and bf16 support, GPU name and memory, free RAM, and the precision 'auto' picks."""
    import torch

    info = {"cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "cpu_bf16": cpu_supports_bf16(),
            "free_ram_mb": available_ram_mb(), "gpu": None, "auto_precision": resolve_precision("auto")}
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        info["gpu"] = {"name": properties.name, "memory_mb": round(properties.total_memory / 2**20),
                       "bf16": torch.cuda.is_bf16_supported(), "count": torch.cuda.device_count()}
    return info
