"""Strategies: how the pre-trained model is prepared and trained (features, full, lora)."""

from __future__ import annotations

from collections.abc import Callable

from tunelab.strategies.base import FitContext, FitResult

# Proven starting points: full fine-tuning wants a small step, LoRA's few new weights a larger one.
DEFAULT_LEARNING_RATE = {"full": 2e-5, "lora": 5e-4, "features": None, "fewshot": 2e-5, "adapt": 5e-5, "adapt-lora": 5e-4,
                         "distill": 5e-5}


# Full fine-tuning of the task heads starts where the field's stock recipes do: transformers' run_ner (5e-5)
# and run_qa (3e-5) examples; the other heads keep classification's 2e-5.
TASK_FULL_LEARNING_RATE = {"token-classification": 5e-5, "question-answering": 3e-5}


def fit_function(strategy: str) -> Callable[[FitContext], FitResult]:
    """The fit entry point of a strategy, imported only when used."""
    if strategy == "features":
        from tunelab.strategies.features import fit
    elif strategy == "fewshot":
        from tunelab.strategies.fewshot import fit
    elif strategy == "distill":
        from tunelab.strategies.distill import fit
    else:
        from tunelab.strategies.finetune import fit
    return fit


__all__ = ["DEFAULT_LEARNING_RATE", "TASK_FULL_LEARNING_RATE", "FitContext", "FitResult", "fit_function"]
