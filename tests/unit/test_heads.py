from __future__ import annotations

import numpy as np
import pytest

from tunelab.config import FeaturesConfig
from tunelab.strategies.heads import Head, fit_head


def _blobs(classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, 8)) * 3
    y = np.repeat(np.arange(classes), 30)
    return (centers[y] + rng.normal(size=(len(y), 8))).astype(np.float32), y


@pytest.mark.parametrize("kind, classes", [("logistic", 2), ("logistic", 4), ("mlp", 2), ("mlp", 3)])
def test_head_matches_sklearn_and_survives_reload(tmp_path, kind, classes):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    x, y = _blobs(classes)
    config = FeaturesConfig(head=kind, hidden_size=16, max_iter=500)
    head = fit_head(x, y, classes, config, seed=0)
    z = StandardScaler().fit(x).transform(x)
    if kind == "logistic":
        reference = LogisticRegression(C=1.0, max_iter=500, random_state=0).fit(z, y)
    else:
        reference = MLPClassifier(hidden_layer_sizes=(16,), alpha=1.0, max_iter=500, early_stopping=True, random_state=0).fit(z, y)
    np.testing.assert_allclose(head.predict_proba(x), reference.predict_proba(z), atol=1e-4)
    head.save(tmp_path)
    np.testing.assert_allclose(Head.load(tmp_path).predict_proba(x), head.predict_proba(x), atol=1e-7)
    assert (head.predict_proba(x).argmax(1) == y).mean() > 0.7  # chance is at most 0.5


def test_label_absent_from_training_gets_zero_probability():
    x, y = _blobs(2)
    head = fit_head(x, y * 2, 3, FeaturesConfig(), seed=0)  # labels 0 and 2; 1 never seen
    probs = head.predict_proba(x)
    assert probs.shape == (60, 3) and np.all(probs[:, 1] == 0) and np.allclose(probs.sum(1), 1)
