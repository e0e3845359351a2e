"""tunelab: adapt pre-trained transformers to your task: features, full fine-tuning or LoRA."""

from __future__ import annotations

__version__ = "0.1.0"
