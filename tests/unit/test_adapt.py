"""Domain adaptation on the tiny model: head construction, corpus readers, the probes, run:<id>."""

from __future__ import annotations

import json

import pytest

from tests.conftest import tiny_config
from tunelab.adapt import adapt, general_probe_path, split_documents
from tunelab.config import load_config
from tunelab.data.corpus import read_corpus
from tunelab.errors import UserError
from tunelab.models import resolve_model
from tunelab.registry import RunStore
from tunelab.strategies import dapt

# A tiny, highly repetitive "domain": a model can memorise it in a few dozen steps.
DOMAIN = [f"the central bank raised interest rates by {n} basis points to fight inflation" for n in range(10, 70)]


def _adapt_config(tiny_model, corpus, tmp_path, **overrides):
    values = {"model.name_or_path": str(tiny_model), "adapt.corpus": str(corpus), "quiet": True,
              "model.max_length": 32, "train.num_train_epochs": 30, "train.per_device_train_batch_size": 8,
              "train.learning_rate": 3e-3, "adapt.head_warmup_steps": 20, "adapt.held_out": 0.2,
              "force": True}  # a tiny random model needs a learning rate the guardrails rightly refuse for real ones
    values.update(overrides)
    return load_config(None, values)


def test_new_mlm_head_is_tied_to_the_input_embeddings(tiny_model):
    model, report = dapt.build_mlm_model(resolve_model(str(tiny_model)))
    assert report["head"] == "built" and report["decoder_tied_to_input_embeddings"]
    assert any("transform" in name for name in report["new_parameters"])
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert model.base_model.pooler is not None  # the pre-trained pooler is kept for later classifiers


def test_adapting_lowers_domain_loss_and_the_run_is_a_base_model(tiny_model, tmp_path, sentiment_files):
    corpus = tmp_path / "domain.txt"
    corpus.write_text("\n".join(DOMAIN) + "\n")
    store = RunStore(tmp_path / "runs")
    run = adapt(_adapt_config(tiny_model, corpus, tmp_path, output_dir=str(tmp_path / "runs" / "fin-dapt")), store)
    probes = run.manifest["metrics"]["probes"]
    assert probes["domain"]["mlm_loss_after"] < 0.8 * probes["domain"]["mlm_loss_before"]
    assert set(probes) == {"domain", "general"} and probes["general"]["mlm_loss_before"] > 0
    shift = run.manifest["domain_shift"]
    assert shift["tokenizer_domain"]["subwords_per_word"] >= 1.0 and shift["loss_ratio"] > 0
    assert run.manifest["adaptation"]["tokens_seen"] > 0 and run.manifest["mlm_head"]["head"] == "built"
    assert json.loads((run.path / "metrics.json").read_text())["history"]
    # The adapted body is a normal starting point for fine-tuning.
    assert resolve_model("run:fin-dapt", store_root=store.root).path.endswith("fin-dapt/model")
    from tunelab.pipeline import train

    train_file, dev_file = sentiment_files
    tuned = train(tiny_config(tiny_model, train_file, dev_file, "lora", tmp_path, **{"model.name_or_path": "run:fin-dapt"}), store)
    assert tuned.manifest["base_model"]["given"] == "run:fin-dapt"


def test_lora_adaptation_is_merged_into_plain_weights(tiny_model, tmp_path):
    corpus = tmp_path / "domain.txt"
    corpus.write_text("\n".join(DOMAIN) + "\n")
    run = adapt(_adapt_config(tiny_model, corpus, tmp_path, **{"adapt.lora": True, "train.num_train_epochs": 2}),
                RunStore(tmp_path / "runs"))
    weights = (run.path / "model" / "model.safetensors").read_bytes()
    assert b"lora_" not in weights[:20000] and run.manifest["lora"] is True


def test_probe_uses_fixed_masks(tiny_model):
    from transformers import AutoTokenizer

    model, _ = dapt.build_mlm_model(resolve_model(str(tiny_model)))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    config = load_config(None, {"model.max_length": 32})
    data = dapt.mlm_dataset(tokenizer, DOMAIN[:20], 32, line_by_line=False, whole_word_mask=False)
    assert all(len(ids) == 32 for ids in data["input_ids"])
    assert dapt.masked_lm_loss(model, tokenizer, data, config) == dapt.masked_lm_loss(model, tokenizer, data, config)


def test_whole_word_masking_and_line_by_line(tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    data = dapt.mlm_dataset(tokenizer, ["unbelievably long words", "short"], 16, line_by_line=True, whole_word_mask=True)
    assert len(data) == 2 and "offset_mapping" in data.column_names
    config = load_config(None, {"adapt.whole_word_mask": True})
    batch = dapt.collator(tokenizer, config, seed=0)([data[0], data[1]])
    assert batch["input_ids"].shape == batch["labels"].shape


def test_corpus_readers(tmp_path):
    (tmp_path / "a.txt").write_text("first doc\n\n  second doc  \n")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "x.txt").write_text("one\n")
    (folder / "y.txt").write_text("two\n")
    (tmp_path / "t.jsonl").write_text('{"body": "from a table"}\n')
    assert read_corpus(str(tmp_path / "a.txt")) == ["first doc", "second doc"]
    assert read_corpus(str(folder)) == ["one", "two"]
    assert read_corpus(str(tmp_path / "t.jsonl"), text_column="body") == ["from a table"]
    assert len(read_corpus(str(general_probe_path()))) >= 100


@pytest.mark.parametrize("name, content, message", [
    ("empty.txt", b"\n \n", "corpus has no text"),
    ("binary.txt", b"\x00\x01\x02abc", "binary file"),
    ("table.csv", b"body\nhello\n", "no text column 'text'"),
    ("missing.txt", None, "corpus not found"),
])
def test_corpus_errors(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_corpus(str(path))


def test_documents_split_is_seeded_and_disjoint():
    texts = [f"doc {i}" for i in range(40)]
    train, held = split_documents(texts, 0.1, seed=1)
    assert len(held) == 4 and not set(train) & set(held) and split_documents(texts, 0.1, seed=1) == (train, held)


def test_run_without_weights_is_not_a_base_model(tiny_model, sentiment_files, tmp_path):
    from tunelab.pipeline import train

    train_file, dev_file = sentiment_files
    store = RunStore(tmp_path / "runs")
    train(tiny_config(tiny_model, train_file, dev_file, "features", tmp_path, output_dir=str(tmp_path / "runs" / "feat")), store)
    with pytest.raises(UserError, match="run:feat: run 'feat' \\(features\\) has no full model weights"):
        resolve_model("run:feat", store_root=store.root)
