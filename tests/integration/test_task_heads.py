"""The task heads on the real bundled MiniLM and slices of CoNLL-2003, SQuAD v1.1 and STS-B."""

from __future__ import annotations

import csv
import json

import pytest

from tests.conftest import SHARED_DATA
from tunelab.config import load_config
from tunelab.pipeline import train
from tunelab.registry import RunStore

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not (SHARED_DATA / "conll2003").is_dir(), reason=f"shared data not found at {SHARED_DATA}")]


def _conll_slice(source, target, sentences):
    blocks = source.read_text(encoding="utf-8").split("\n\n")
    target.write_text("\n\n".join(blocks[: sentences + 1]) + "\n", encoding="utf-8")
    return target


def test_ner_on_conll_learns_entities_from_400_sentences(tmp_path):
    source = SHARED_DATA / "conll2003"
    config = load_config(None, {"task": "token-classification", "data.train": str(_conll_slice(source / "eng.train", tmp_path / "t", 400)),
                                "data.validation": str(_conll_slice(source / "eng.testa", tmp_path / "v", 150)),
                                "train.num_train_epochs": 4, "train.learning_rate": 1e-4, "quiet": True})
    run = train(config, RunStore(tmp_path / "runs"))
    scores = run.manifest["metrics"]["validation"]
    assert run.manifest["labels"][0] == "O" and "B-PER" in run.manifest["labels"]  # IOB1 in the file, IOB2 learnt
    assert scores["f1"] > 0.3 and scores["token_accuracy"] > 0.85  # all-O: f1 0, token accuracy ~0.83


def test_squad_articles_held_out_and_scored(tmp_path):
    data = json.loads((SHARED_DATA / "squad_v1.1" / "dev-v1.1.json").read_text(encoding="utf-8"))["data"]
    paths = {}
    for name, articles in (("train", data[:2]), ("validation", data[-1:])):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps({"data": articles}))
    config = load_config(None, {"task": "question-answering", "strategy": "full", "data.train": str(paths["train"]),
                                "data.validation": str(paths["validation"]), "train.num_train_epochs": 1,
                                "train.learning_rate": 1e-4, "quiet": True, "model.max_length": 256, "qa.doc_stride": 64})
    run = train(config, RunStore(tmp_path / "runs"))
    scores = run.manifest["metrics"]["validation"]
    assert scores["n"] > 100 and scores["f1"] > 10.0 and scores["exact_match"] <= scores["f1"]


def test_stsb_zero_shot_cosine_is_the_published_level(tmp_path):
    rows = list(csv.reader((SHARED_DATA / "stsb" / "sts-test.csv").open(encoding="utf-8"), delimiter="\t", quoting=csv.QUOTE_NONE))
    table = tmp_path / "sts.tsv"
    table.write_text("a\tb\tscore\n" + "".join(f"{r[5]}\t{r[6]}\t{r[4]}\n" for r in rows[:400]), encoding="utf-8")
    config = load_config(None, {"task": "similarity", "strategy": "features", "data.train": str(table),
                                "data.validation": str(table), "data.text_column": "a", "data.text_pair_column": "b",
                                "data.label_column": "score", "quiet": True})
    run = train(config, RunStore(tmp_path / "runs"))
    # all-MiniLM-L6-v2 reports 82.0 Spearman on the whole STS-B test set (its first rows, captions, are easier)
    assert 0.75 < run.manifest["metrics"]["validation"]["spearman"] < 0.95 and run.manifest["trainable_params"] == 0
