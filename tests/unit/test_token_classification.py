"""NER: CoNLL/JSONL reading, IOB1 -> IOB2, sub-word alignment and windows (hand-built), entity spans, a tiny run."""

from __future__ import annotations

import json

import pytest

from tests.conftest import tiny_config
from tests.task_data import write_conll
from tunelab.data.conll import normalise_scheme, read_tagged, split_words, to_iob2
from tunelab.errors import UserError
from tunelab.tasks.token_classification import align_labels, best_windows, entities, first_subwords, tag_order

LEARN = {"force": True, "train.learning_rate": 3e-3, "train.num_train_epochs": 10, "train.warmup_steps": 0.0,
         "train.freeze_embeddings": False, "train.overfit_patience": 0}


def test_iob1_becomes_iob2():
    assert to_iob2(["I-PER", "I-PER", "O", "I-LOC"]) == (["B-PER", "I-PER", "O", "B-LOC"], 2)
    # IOB1's B- marks a second entity touching one of the same type; it stays B-
    assert to_iob2(["I-PER", "B-PER", "I-PER"]) == (["B-PER", "B-PER", "I-PER"], 1)
    assert to_iob2(["B-ORG", "I-LOC"]) == (["B-ORG", "B-LOC"], 1)  # a type change opens a new entity


def test_conll_reader_skips_docstart_and_names_bad_lines(tmp_path):
    good = tmp_path / "a.conll"
    good.write_text("-DOCSTART- -X- O\n\nEU NNP I-ORG\nrejects VBZ O\n\nPeter NNP I-PER\n")
    sentences = read_tagged(str(good))
    assert [s.tokens for s in sentences] == [["EU", "rejects"], ["Peter"]] and sentences[1].line == 6
    assert normalise_scheme(sentences, "auto", str(good)) == 2 and sentences[0].tags == ["B-ORG", "O"]
    strict = read_tagged(str(good))
    with pytest.raises(UserError, match=r"a\.conll: sentence at line 3, word 1 \('EU'\).*tag_scheme=iob1"):
        normalise_scheme(strict, "iob2", str(good))
    bad = tmp_path / "b.conll"
    bad.write_text("EU I-ORG\nrejects\n")
    with pytest.raises(UserError, match=r"b\.conll: line 2: 1 columns"):
        read_tagged(str(bad), tag_column=1)
    odd = tmp_path / "c.conll"
    odd.write_text("EU ORG\n")
    with pytest.raises(UserError, match="tag 'ORG' is not O, B-<type> or I-<type>"):
        read_tagged(str(odd))


def test_jsonl_reader_checks_one_tag_per_word(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"tokens": ["Anna", "sings"], "tags": ["B-PER", "O"]}) + "\n"
                    + json.dumps({"tokens": ["Bo", "runs"], "tags": ["B-PER"]}) + "\n")
    with pytest.raises(UserError, match=r"a\.jsonl: line 2, field 'tags': expected a list of 2 tags"):
        read_tagged(str(path))


def test_alignment_labels_first_subword_only():
    # [CLS] quit ##o and [SEP]: word 0 = "Quito" (2 sub-words), word 1 = "and"
    word_ids = [None, 0, 0, 1, None]
    offsets = [(0, 0), (0, 4), (4, 5), (0, 3), (0, 0)]
    assert align_labels(word_ids, offsets, [1, 0]) == [-100, 1, -100, 0, -100]


def test_window_starting_mid_word_does_not_claim_it():
    # a second window that begins with the tail (##as ##on) of word 3 from the previous window
    word_ids = [None, 3, 3, 4, 5, None]
    offsets = [(0, 0), (3, 5), (5, 7), (0, 2), (0, 4), (0, 0)]
    assert first_subwords(word_ids, offsets) == {3: 4, 4: 5}


def test_each_word_takes_the_window_where_it_has_most_context():
    first = ([None, 0, 1, 2, 3, None], [(0, 0), (0, 1), (0, 1), (0, 1), (0, 1), (0, 0)])
    second = ([None, 2, 3, 4, 5, None], [(0, 0), (0, 1), (0, 1), (0, 1), (0, 1), (0, 0)])
    chosen = best_windows([first, second])
    assert chosen[0] == (0, 1) and chosen[5] == (1, 4)
    assert chosen[2] == (0, 3)  # context 1 in the first window (min(2, 1)), 0 in the second
    assert chosen[3] == (1, 2)  # context 0 in the first, 1 in the second


def test_entity_spans_carry_character_offsets():
    sentence = split_words("Anna Darason flew to Quito, Ecuador.", 1)
    assert sentence.tokens == ["Anna", "Darason", "flew", "to", "Quito", ",", "Ecuador", "."]
    tags = ["B-PER", "I-PER", "O", "O", "B-LOC", "O", "B-LOC", "O"]
    found = entities(tags, [0.9, 0.7, 1, 1, 0.8, 1, 0.6, 1], sentence)
    assert [(e["type"], e["text"], e["start"], e["end"]) for e in found] == [
        ("PER", "Anna Darason", 0, 12), ("LOC", "Quito", 21, 26), ("LOC", "Ecuador", 28, 35)]
    assert found[0]["score"] == pytest.approx(0.8)


def test_stride_must_leave_room_in_the_window(tiny_model, tmp_path):
    config = tiny_config(tiny_model, tmp_path / "t.conll", None, "full", tmp_path, task="token-classification",
                         **{"model.max_length": 16, "ner.stride": 8})
    with pytest.raises(UserError, match=r"ner.stride: expected between 0 and half of model.max_length \(16\), got 8"):
        config.validate()


def test_tag_order_is_stable():
    assert tag_order({"I-PER", "O", "B-LOC", "B-PER"}) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


@pytest.fixture(scope="module")
def ner_run(tiny_model, tmp_path_factory):
    from tunelab.pipeline import train
    from tunelab.registry import RunStore

    folder = tmp_path_factory.mktemp("ner")
    train_file, dev_file = write_conll(folder / "train.conll", 60, 1, iob1=True), write_conll(folder / "dev.conll", 20, 2)
    store = RunStore(folder / "runs")
    config = tiny_config(tiny_model, train_file, dev_file, "full", folder, task="token-classification",
                         **{"model.max_length": 16, "ner.stride": 4}, **LEARN)
    return train(config, store), store, dev_file, folder


def test_ner_run_learns_and_scores_like_evaluate(ner_run):
    from tunelab.pipeline import evaluate

    run, store, dev_file, _ = ner_run
    assert run.manifest["task_kind"] == "token-classification" and run.manifest["metric"] == "f1"
    assert run.manifest["labels"] == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    scores = run.manifest["metrics"]["validation"]
    assert scores["f1"] > 0.3 and scores["token_accuracy"] > 0.7  # a random tagger scores ~0
    again = evaluate(run.id, str(dev_file), store, quiet=True)
    assert again["f1"] == pytest.approx(scores["f1"]) and set(again["per_type"]) == {"LOC", "PER"}


def test_ner_predict_raw_text_gives_spans_for_every_word_of_long_sentences(ner_run):
    from tunelab.pipeline import predict

    run, store, _, folder = ner_run
    long_text = " ".join(["Anna Darason went to Quito with friends"] * 6)  # 42 words, windows of 16 sub-words
    source = folder / "texts.jsonl"
    source.write_text(json.dumps({"text": long_text}) + "\n" + json.dumps({"text": "Boris visits Oslo."}) + "\n")
    assert predict(run.id, str(source), str(folder / "out.jsonl"), store, quiet=True) == 2
    records = [json.loads(line) for line in (folder / "out.jsonl").read_text().splitlines()]
    assert len(records[0]["tags"]) == len(records[0]["tokens"]) == 42
    for record in records:
        for entity in record["entities"]:
            assert record["text"][entity["start"]:entity["end"]] == entity["text"] and 0 < entity["score"] <= 1
    assert any(e["type"] == "LOC" for e in records[0]["entities"])


def test_ner_features_and_lora_reload(tiny_model, tmp_path):
    from tunelab.pipeline import train
    from tunelab.registry import RunStore
    from tunelab.task_pipeline import load_task_predictor

    train_file, dev_file = write_conll(tmp_path / "train.conll", 30, 1), write_conll(tmp_path / "dev.conll", 10, 2)
    store = RunStore(tmp_path / "runs")
    for strategy, artifact in (("features", "head"), ("lora", "adapter")):
        config = tiny_config(tiny_model, train_file, dev_file, strategy, tmp_path, task="token-classification",
                             **{"model.max_length": 16, "ner.stride": 4, "train.num_train_epochs": 1})
        run = train(config, store)
        assert run.manifest["artifact"] == artifact and (run.path / artifact).is_dir()
        assert not list(run.path.rglob("model.safetensors"))  # the base model is referenced, not copied
        if strategy == "features":  # only the token-level linear head trains: hidden 32 x 5 tags + 5
            assert run.manifest["trainable_params"] == 32 * 5 + 5
        predictor = load_task_predictor(run.path, run.manifest, store.root)
        rows = predictor.task.read(str(dev_file))
        scores = predictor.task.score(predictor.predict(rows), rows, run.manifest["task_info"], run.manifest["labels"])
        assert scores["f1"] == pytest.approx(run.manifest["metrics"]["validation"]["f1"])


def test_unknown_tag_in_validation_names_the_sentence(tiny_model, tmp_path):
    from tunelab.pipeline import train
    from tunelab.registry import RunStore

    train_file = write_conll(tmp_path / "train.conll", 10, 1)
    dev = tmp_path / "dev.conll"
    dev.write_text("Acme B-ORG\nrocks O\n")
    config = tiny_config(tiny_model, train_file, dev, "full", tmp_path, task="token-classification")
    with pytest.raises(UserError, match=r"dev\.conll: sentence at line 1, word 'Acme': tag 'B-ORG' does not occur"):
        train(config, RunStore(tmp_path / "runs"))


def test_ner_run_card_and_export_say_what_it_is(ner_run):
    from tunelab.export import export
    from tunelab.hub import model_card

    run, store, _, _ = ner_run
    card = model_card(run)
    assert "- token-classification" in card and "Finding the entity types" in card and "| validation | f1 |" in card
    with pytest.raises(UserError, match="ONNX export covers single-label classification runs; this is a token-classification run"):
        export(run.id, store)


def test_conll_columns_come_from_flags(tmp_path):
    from tunelab.cli import build_parser
    from tunelab.config import apply_overrides, load_config

    args = build_parser().parse_args(["train", "--task", "token-classification", "--train", "x", "--token-column", "1",
                                      "--tag-column", "0"])
    from tunelab.cli import _config

    config = _config(args)
    assert (config.ner.token_column, config.ner.tag_column) == (1, 0)
    path = tmp_path / "swapped.conll"
    path.write_text("B-PER Anna\nO sings\n")
    sentence = read_tagged(str(path), token_column=config.ner.token_column, tag_column=config.ner.tag_column)[0]
    assert sentence.tokens == ["Anna", "sings"] and sentence.tags == ["B-PER", "O"]
    assert apply_overrides(load_config(), ["ner.tag_column=2"]).ner.tag_column == 2


def test_full_fine_tuning_starts_from_the_ner_recipes_learning_rate(tiny_model, tmp_path):
    from tunelab.pipeline import train
    from tunelab.registry import RunStore

    files = write_conll(tmp_path / "t.conll", 10, 1), write_conll(tmp_path / "d.conll", 4, 2)
    run = train(tiny_config(tiny_model, *files, "full", tmp_path, task="token-classification",
                            **{"model.max_length": 16, "ner.stride": 4, "train.max_steps": 1}), RunStore(tmp_path / "runs"))
    assert run.manifest["strategy_info"]["learning_rate"] == 5e-5  # transformers' run_ner default, not classification's 2e-5
