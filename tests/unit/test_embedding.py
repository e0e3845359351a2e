from __future__ import annotations

import numpy as np
import torch

from tunelab.embedding import EmbeddingCache, embed, pool


def test_cache_computes_each_text_once_and_reuses_it(tmp_path):
    calls = []

    def compute(texts, pairs):
        calls.append(list(texts))
        return np.array([[len(t), i] for i, t in enumerate(texts)], dtype=np.float32)

    cache = EmbeddingCache(tmp_path, "model-a")
    first = cache.get_or_compute(["aa", "b", "aa"], None, compute)
    assert calls == [["aa", "b"]] and (cache.hits, cache.misses) == (0, 2)
    np.testing.assert_array_equal(first[0], first[2])
    again = EmbeddingCache(tmp_path, "model-a").get_or_compute(["b", "aa", "ccc"], None, compute)
    assert calls[-1] == ["ccc"]
    np.testing.assert_array_equal(again[0], first[1])
    other = EmbeddingCache(tmp_path, "model-b")
    other.get_or_compute(["aa"], None, compute)
    assert other.misses == 1  # a different model key never sees model-a's vectors


def test_pairs_hash_differently_from_single_texts(tmp_path):
    cache = EmbeddingCache(tmp_path, "k")
    compute = lambda texts, pairs: np.ones((len(texts), 2), dtype=np.float32)  # noqa: E731
    cache.get_or_compute(["a b"], None, compute)
    cache.get_or_compute(["a"], ["b"], compute)
    assert cache.misses == 1


def test_mean_pooling_ignores_padding():
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert pool(hidden, mask, "mean").tolist() == [[2.0, 2.0]]
    assert pool(hidden, mask, "cls").tolist() == [[1.0, 1.0]]


def test_embeddings_do_not_depend_on_batch_composition(tiny_model):
    from transformers import AutoModel, AutoTokenizer

    model, tokenizer = AutoModel.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(tiny_model)
    texts = ["short", "a much longer sentence with many more tokens in it", "medium length text"]
    together = embed(model, tokenizer, texts, batch_size=3, progress=False)
    alone = np.concatenate([embed(model, tokenizer, [t], batch_size=1, progress=False) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
