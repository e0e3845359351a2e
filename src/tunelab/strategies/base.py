"""What every strategy receives and returns; strategies differ only in how they prepare the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.config import RunConfig
from tunelab.models import ModelRef
from tunelab.tasks.classification import ClassificationData


@dataclass
class FitContext:
    """Inputs of one fit: config, checked data, the base model and where to write."""

    config: RunConfig
    data: ClassificationData
    model_ref: ModelRef
    tokenizer: Any
    run_dir: Path  # the (still temporary) run folder: artifacts go here
    scratch: Path  # files that do not belong in the run and need not survive a crash
    store_root: Path  # the run store: other runs (a distillation teacher) and shared caches live there
    resume: bool = False  # continue from the latest checkpoint under `checkpoints`

    @property
    def cache_root(self) -> Path:
        """Shared caches (embeddings) that outlive runs."""
        return self.store_root / ".cache"

    @property
    def checkpoints(self) -> Path:
        """Trainer checkpoints: inside the draft, so a killed run can resume; dropped when the run completes."""
        return self.run_dir / "checkpoints"


@dataclass
class FitResult:
    """What the fit learned about itself, for the run's metrics."""

    trainable_params: int
    total_params: int
    artifact: str  # the run sub-folder holding the weights: model | adapter | head
    history: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    model: Any = None  # the trained in-memory model (not saved twice; lets tests check reload parity)
