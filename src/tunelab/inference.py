"""Load a finished run folder and predict with it. Reads run folders only; never imports training."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunelab.embedding import embed
from tunelab.hardware import autocast
from tunelab.models import fingerprint, inference_device, load_classifier, load_encoder, resolve_model
from tunelab.strategies.heads import Head


class Predictor:
    """Class probabilities for texts (and optional second texts) from one run."""

    def __init__(self, manifest: dict[str, Any], tokenizer: Any, model: Any = None, head: Head | None = None) -> None:
        self.manifest = manifest
        self.labels: list[str] = manifest["labels"]
        self.max_length: int = manifest["max_length"]
        self.tokenizer = tokenizer
        self.model = model
        self.head = head
        # A run predicts in the precision it was trained in (its features were embedded in it, too).
        self.precision: str = manifest.get("precision", "fp32")

    def predict_proba(self, texts: Sequence[str], pairs: Sequence[str] | None = None,
                      batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """[n, num_labels] probabilities, in input order."""
        if self.head is not None:
            vectors = embed(self.model, self.tokenizer, texts, pairs, max_length=self.max_length,
                            pooling=self.manifest["pooling"], batch_size=batch_size, progress=progress,
                            precision=self.precision)
            return self.head.predict_proba(vectors)
        logits = self.logits(texts, pairs, batch_size, progress).astype(np.float64)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def logits(self, texts: Sequence[str], pairs: Sequence[str] | None = None, batch_size: int = 64,
               progress: bool = False) -> np.ndarray:
        """[n, num_labels] classifier logits in input order, in length-sorted batches (classifier runs only)."""
        import torch
        from tqdm.auto import tqdm

        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths share a batch
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        device = next(self.model.parameters()).device
        bar = tqdm(total=len(texts), desc="Predicting", unit="text", disable=not progress)
        with torch.inference_mode(), autocast(self.precision, device.type), bar:
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                batch = self.tokenizer([texts[i] for i in rows], [pairs[i] for i in rows] if pairs else None,
                                       truncation=True, max_length=self.max_length, padding=True, return_tensors="pt").to(device)
                out[rows] = self.model(**batch).logits.float().cpu().numpy()
                bar.update(len(rows))
        return out


def load_predictor(run_dir: Path, manifest: dict[str, Any], store_root: Path | None = None) -> Predictor:
    """Rebuild the predictor a run was saved as: full model, base + adapter (merged), or encoder + head."""
    strategy = manifest["strategy"]
    tokenizer_dir = run_dir / ("model" if strategy in ("full", "fewshot", "distill") else "tokenizer")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if strategy in ("full", "distill"):
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(run_dir / "model")
        return Predictor(manifest, tokenizer, model.to(inference_device()).eval())
    if strategy == "fewshot":  # its own tuned encoder, then the head
        from transformers import AutoModel

        encoder = AutoModel.from_pretrained(run_dir / "model").to(inference_device()).eval()
        return Predictor(manifest, tokenizer, encoder, Head.load(run_dir / "head"))
    base = base_model_ref(manifest, store_root)
    if strategy == "features":
        return Predictor(manifest, tokenizer, load_encoder(base).to(inference_device()).eval(), Head.load(run_dir / "head"))
    from peft import PeftModel

    model, _ = load_classifier(base, manifest["labels"])
    model = PeftModel.from_pretrained(model, run_dir / "adapter")
    if hasattr(model, "merge_and_unload") and manifest.get("peft_method", "lora").lower() in ("lora", "adalora", "ia3"):
        model = model.merge_and_unload()  # plain weights: no adapter indirection at inference
    return Predictor(manifest, tokenizer, model.to(inference_device()).eval())


def base_model_ref(manifest: dict[str, Any], store_root: Path | None) -> Any:
    """The run's base model, with a warning when its weights changed since the run was trained."""
    base = manifest["base_model"]
    ref = resolve_model(base["given"], base.get("revision"), store_root)
    if ref.is_local and base.get("fingerprint") and fingerprint(ref) != base["fingerprint"]:
        warnings.warn(
            f"base model {base['given']}: weights differ from those this run was trained on"
            f" ({fingerprint(ref)} != {base['fingerprint']}); predictions may differ", stacklevel=2)
    return ref


def load_run_predictor(run: Any, store_root: Path | None = None) -> Predictor:
    """Predictor for a registry Run."""
    return load_predictor(run.path, run.manifest, store_root)


__all__ = ["Predictor", "load_predictor", "load_run_predictor"]
