from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import make_rows, write_csv
from tunelab.config import DataConfig
from tunelab.data import stratified_split
from tunelab.errors import UserError
from tunelab.tasks.classification import compute_metrics, label_text, load_data, ordered_labels


def _config(train, validation=None, **kwargs) -> DataConfig:
    return DataConfig(train=str(train), validation=str(validation) if validation else None, **kwargs)


def test_labels_from_train_and_ids_shared_with_validation(sentiment_files):
    train, dev = sentiment_files
    data = load_data(_config(train, dev), seed=0)
    assert data.labels == ["neg", "pos"]
    assert len(data.train) == 64 and len(data.validation) == 24
    assert set(data.validation.labels.tolist()) == {0, 1}


def test_integer_labels_are_ordered_numerically():
    assert ordered_labels(["10", "2", "1"]) == ["1", "2", "10"]
    assert [label_text(v) for v in (1, 1.0, "1", True)] == ["1", "1", "1", "true"]


def test_missing_validation_gives_seeded_stratified_split(tmp_path):
    train = write_csv(tmp_path / "t.csv", make_rows(100, 3))
    first = load_data(_config(train), seed=5)
    again = load_data(_config(train), seed=5)
    other = load_data(_config(train), seed=6)
    assert len(first.validation) == 10 and len(first.train) == 90
    assert first.validation.texts == again.validation.texts != other.validation.texts
    assert np.bincount(first.validation.labels).tolist() == [5, 5]
    assert first.validation_from_train


def test_split_keeps_singleton_classes_in_train():
    labels = ["a"] * 10 + ["b"] * 10 + ["c"]
    train_rows, held_rows = stratified_split(labels, 0.2, seed=0)
    assert 20 in train_rows and len(held_rows) == 4
    assert sorted(set(train_rows) | set(held_rows)) == list(range(21))


@pytest.mark.parametrize("rows, kwargs, message", [
    ([("good", "pos"), ("  ", "neg")], {}, r"row 2, field 'text': empty text"),
    ([("good", "pos"), ("bad", "")], {}, r"row 2, field 'label': missing label"),
    ([("good", "pos"), ("bad", "pos")], {}, r"only one class \('pos'\)"),
    ([("good", "pos"), ("bad", "neg")], {"label_column": "labl"}, r"no column 'labl' \(set by data.label_column\)"),
    ([("good", "pos"), ("bad", "neg")], {"text_column": "txt"}, r"did you mean 'text'"),
])
def test_bad_training_rows_name_row_and_field(tmp_path, rows, kwargs, message):
    train = write_csv(tmp_path / "t.csv", rows)
    with pytest.raises(UserError, match=message) as error:
        load_data(_config(train, **kwargs), seed=0)
    assert str(train) in str(error.value)


def test_unseen_validation_label_is_an_error(tmp_path, sentiment_files):
    train, _ = sentiment_files
    dev = write_csv(tmp_path / "d.csv", [("fine", "pos"), ("meh", "neutral")])
    with pytest.raises(UserError, match=r"d.csv: row 2, field 'label': label 'neutral' does not occur in the training data"):
        load_data(_config(train, dev), seed=0)


def test_train_test_overlap_is_a_warning(tmp_path, sentiment_files):
    train, _ = sentiment_files
    first_text = make_rows(64, 1)[3][0]
    dev = write_csv(tmp_path / "d.csv", [("something new", "pos"), (first_text.upper(), "neg")])
    data = load_data(_config(train, dev), seed=0)
    assert len(data.warnings) == 1 and "1 of 2 texts also occur" in data.warnings[0] and "row 2" in data.warnings[0]


def test_text_pairs_are_read(tmp_path):
    train = write_csv(tmp_path / "p.csv", [("a cat", "a dog", "no"), ("a cat", "a kitten", "yes")] * 3,
                      header=("premise", "hypothesis", "label"))
    data = load_data(_config(train, train, text_column="premise", text_pair_column="hypothesis"), seed=0)
    assert data.train.pairs[:2] == ["a dog", "a kitten"]


def test_metrics_match_hand_computed_values():
    gold = np.array([0, 0, 1, 1, 2])
    probs = np.eye(3)[[0, 1, 1, 1, 0]]
    metrics = compute_metrics(gold, probs, ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    # per-class F1: a = 0.5 (p 1/2, r 1/2), b = 0.8 (p 2/3, r 1), c = 0
    assert metrics["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
