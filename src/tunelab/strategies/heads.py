"""Small heads over frozen embeddings: fit with scikit-learn, stored as plain safetensors arrays.

Arrays rather than a pickle: a run pulled from a hub can be loaded without executing its code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tunelab.config import FeaturesConfig


@dataclass
class Head:
    """A standardiser plus a logistic-regression or MLP classifier, as arrays."""

    kind: str
    arrays: dict[str, np.ndarray]
    num_labels: int

    @property
    def parameter_count(self) -> int:
        """Learned weights and biases (the standardiser's statistics excluded)."""
        return int(sum(a.size for k, a in self.arrays.items() if k.startswith(("weight", "bias"))))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities over the full label set, [n, num_labels]."""
        z = (x - self.arrays["mean"]) / self.arrays["scale"]
        layers = sorted(int(k.split("_")[1]) for k in self.arrays if k.startswith("weight_"))
        for i in layers[:-1]:
            z = np.maximum(z @ self.arrays[f"weight_{i}"] + self.arrays[f"bias_{i}"], 0.0)
        logits = z @ self.arrays[f"weight_{layers[-1]}"] + self.arrays[f"bias_{layers[-1]}"]
        if logits.shape[1] == 1:  # scikit-learn's binary form: one logit for the second class
            positive = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            probs = np.stack([1.0 - positive, positive], axis=1)
        else:
            logits = logits - logits.max(axis=1, keepdims=True)
            probs = np.exp(logits)
            probs /= probs.sum(axis=1, keepdims=True)
        full = np.zeros((len(x), self.num_labels), dtype=np.float64)
        full[:, self.arrays["classes"].astype(int)] = probs
        return full

    def save(self, folder: Path) -> None:
        """Write head.safetensors and head.json into `folder`."""
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v) for k, v in self.arrays.items()}, str(folder / "head.safetensors"))
        (folder / "head.json").write_text(json.dumps({"kind": self.kind, "num_labels": self.num_labels}, indent=2))

    @classmethod
    def load(cls, folder: Path) -> Head:
        """Read a head written by `save`."""
        from safetensors.numpy import load_file

        meta = json.loads((folder / "head.json").read_text())
        return cls(meta["kind"], load_file(str(folder / "head.safetensors")), meta["num_labels"])


def fit_head(x: np.ndarray, y: np.ndarray, num_labels: int, config: FeaturesConfig, seed: int) -> Head:
    """Standardise the embeddings and fit the configured head on them."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    arrays = {"mean": scaler.mean_.astype(np.float32), "scale": scaler.scale_.astype(np.float32)}
    if config.head == "logistic":
        model = LogisticRegression(C=config.C, max_iter=config.max_iter, random_state=seed).fit(z, y)
        arrays.update(weight_0=model.coef_.T.astype(np.float32), bias_0=model.intercept_.astype(np.float32))
    else:
        model = MLPClassifier(
            hidden_layer_sizes=(config.hidden_size,), alpha=1.0 / config.C, max_iter=config.max_iter,
            early_stopping=len(y) >= 50, random_state=seed,
        ).fit(z, y)
        for i, (w, b) in enumerate(zip(model.coefs_, model.intercepts_, strict=False)):
            arrays[f"weight_{i}"], arrays[f"bias_{i}"] = w.astype(np.float32), b.astype(np.float32)
    arrays["classes"] = model.classes_.astype(np.int64)
    return Head(config.head, arrays, num_labels)
