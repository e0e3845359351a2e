"""Measure what a step costs: wall time and peak memory (process RSS, and GPU when there is one)."""

from __future__ import annotations

import resource
import time
from pathlib import Path
from types import TracebackType


def _reset_peak_rss() -> bool:
    # Writing 5 to clear_refs resets the kernel's high-water mark (VmHWM) for this process.
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class Measure:
    """Context manager: `seconds`, `peak_rss_mb` (process peak during the block) and `peak_gpu_mb`."""

    def __enter__(self) -> Measure:
        self.exact_rss = _reset_peak_rss()
        self._gpu = False
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
                self._gpu = True
        except ImportError:
            pass
        self._start = time.perf_counter()
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.seconds = time.perf_counter() - self._start
        self.peak_rss_mb = _peak_rss_mb()
        self.peak_gpu_mb = None
        if self._gpu:
            import torch

            self.peak_gpu_mb = torch.cuda.max_memory_allocated() / 2**20
