"""Extractive QA: SQuAD scoring, answer positions and n-best search on hand-built offsets, readers, a tiny run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import tiny_config
from tests.task_data import write_squad
from tunelab.data.squad import read_questions
from tunelab.errors import UserError
from tunelab.tasks.question_answering import answer_positions, best_span, exact_match, normalize_answer, squad_scores, token_f1

LEARN = {"force": True, "train.learning_rate": 3e-3, "train.num_train_epochs": 8, "train.warmup_steps": 0.0,
         "train.freeze_embeddings": False, "train.overfit_patience": 0, "model.max_length": 48, "qa.doc_stride": 16}


def test_official_normalisation_and_scores():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("an apple, a pear") == "apple pear"
    assert exact_match("the Denver Broncos", "Denver Broncos") == 1.0
    assert token_f1("Denver Broncos won", "Denver Broncos") == pytest.approx(0.8)  # p 2/3, r 1
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0
    assert squad_scores("Broncos", ["Denver Broncos", "Broncos"]) == (1.0, 1.0)  # the best gold answer counts
    assert squad_scores("", []) == (1.0, 1.0)  # SQuAD v2: no answer is right when there is none


def test_answer_positions_from_offsets():
    # [CLS] who ? [SEP] anna lives in paris . [SEP]: context tokens 4..8, "anna lives in paris ."
    offsets = [None, None, None, None, (0, 4), (5, 10), (11, 13), (14, 19), (19, 20), None]
    assert answer_positions(offsets, 14, 19) == (7, 7)  # "paris"
    assert answer_positions(offsets, 5, 19) == (5, 7)  # "lives in paris"
    assert answer_positions(offsets, 30, 35) == (0, 0)  # beyond this window: point at [CLS]
    window = [None, (20, 25), (26, 30), None]  # a later window starting at character 20
    assert answer_positions(window, 14, 19) == (0, 0)


def test_best_span_respects_order_length_and_context():
    context = "anna lives in paris ."
    offsets = [None, None, None, None, (0, 4), (5, 10), (11, 13), (14, 19), (20, 21), None]
    start, end = np.full(10, -5.0), np.full(10, -5.0)
    start[7], end[7] = 4.0, 4.0  # "paris"
    start[2], end[2] = 9.0, 9.0  # the question: never an answer
    answer = best_span([(start, end, offsets)], context, n_best=5, max_answer_length=3, null_threshold=None)
    assert (answer["answer"], answer["start"], answer["end"]) == ("paris", 14, 19) and 0 < answer["score"] <= 1
    start[4] = 6.0  # "anna lives in paris" scores higher but is 4 tokens long
    assert best_span([(start, end, offsets)], context, 5, 3, None)["answer"] == "paris"
    assert best_span([(start, end, offsets)], context, 5, 4, None)["answer"] == "anna lives in paris"
    end[3] = 50.0  # the best end lies before every start, outside the context: never chosen
    assert best_span([(start, end, offsets)], context, 5, 4, None)["answer"] == "anna lives in paris"
    start[0], end[0] = 20.0, 20.0  # SQuAD v2: [CLS] beats every span
    assert best_span([(start, end, offsets)], context, 5, 5, 0.0)["answer"] == ""
    assert best_span([(start, end, offsets)], context, 5, 5, None)["answer"] != ""  # v1.1 always answers


def test_squad_reader_repairs_shifted_starts_and_names_bad_answers(tmp_path):
    data = {"data": [{"title": "T", "paragraphs": [{"context": "Anna lives in Paris.", "qas": [
        {"id": "q1", "question": "  Where?", "answers": [{"text": "Paris", "answer_start": 12}]}]}]}]}
    path = tmp_path / "a.json"
    path.write_text(json.dumps(data))
    question = read_questions(str(path))[0]
    assert question.answers == [("Paris", 14)] and question.question == "Where?"  # moved to the real occurrence
    data["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["text"] = "Rome"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"a\.json: article 1, paragraph 1, question 1: answer 'Rome' does not occur"):
        read_questions(str(path))


def test_squad_v2_unanswerable_questions_are_read_and_flagged(tmp_path, tiny_model):
    from tunelab.config import load_config
    from tunelab.tasks import task_for

    data = {"version": "v2.0", "data": [{"title": "T", "paragraphs": [{"context": "Anna lives in Paris.", "qas": [
        {"id": "a", "question": "Where?", "answers": [{"text": "Paris", "answer_start": 14}], "is_impossible": False},
        {"id": "b", "question": "Why?", "answers": [], "plausible_answers": [{"text": "Paris", "answer_start": 14}],
         "is_impossible": True}]}]}]}
    path = tmp_path / "v2.json"
    path.write_text(json.dumps(data))
    questions = read_questions(str(path))
    assert [q.answers for q in questions] == [[("Paris", 14)], []]
    task = task_for(load_config(None, {"task": "question-answering"}).validate())
    assert task.learn(questions, str(path))[1] == {"version_2": True, "unanswerable_train": 1}
    from transformers import AutoTokenizer

    encoded = task.encode(AutoTokenizer.from_pretrained(tiny_model), questions, {}, [])
    assert encoded["start_positions"][1] == encoded["end_positions"][1] == 0  # no answer: [CLS]
    assert encoded["start_positions"][0] > 0


def test_jsonl_reader_takes_both_answer_layouts_and_rejects_duplicates(tmp_path):
    path = tmp_path / "a.jsonl"
    rows = [{"id": "a", "question": "Who?", "context": "Anna sings.", "answers": {"text": ["Anna"], "answer_start": [0]}},
            {"id": "b", "question": "What?", "context": "Anna sings.", "answers": [{"text": "sings", "answer_start": 5}]},
            {"id": "c", "question": "When?", "context": "Anna sings.", "answers": []}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    questions = read_questions(str(path))
    assert [q.answers for q in questions] == [[("Anna", 0)], [("sings", 5)], []]
    path.write_text("\n".join(json.dumps(r) for r in rows + [rows[0]]))
    with pytest.raises(UserError, match=r"a\.jsonl: line 4: question id 'a' occurs twice"):
        read_questions(str(path))


def test_long_contexts_are_windowed_and_the_answer_lands_in_one(tiny_model):
    from transformers import AutoTokenizer

    from tunelab.config import load_config
    from tunelab.data.squad import Question
    from tunelab.tasks import task_for

    filler = " ".join(["word"] * 60)
    context = f"{filler} Anna lives in Paris. {filler}"
    question = Question("q", "Where does Anna live?", context, [("Paris", context.index("Paris"))])
    task = task_for(load_config(None, {"task": "question-answering", "model.max_length": 32, "qa.doc_stride": 8}).validate())
    encoded = task.encode(AutoTokenizer.from_pretrained(tiny_model), [question], {}, [])
    assert len(encoded) > 4  # 120+ context tokens in windows of ~24
    hits = [(s, e) for s, e in zip(encoded["start_positions"], encoded["end_positions"], strict=True) if s]
    assert hits and all(s == e for s, e in hits)  # "paris" is one token wherever it is inside a window
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    s = hits[0][0]
    window = next(i for i, (a, _) in enumerate(zip(encoded["start_positions"], encoded["end_positions"], strict=True)) if a)
    assert tokenizer.convert_ids_to_tokens(encoded[window]["input_ids"][s]) == "paris"


@pytest.fixture(scope="module")
def qa_run(tiny_model, tmp_path_factory):
    from tunelab.pipeline import train
    from tunelab.registry import RunStore

    folder = tmp_path_factory.mktemp("qa")
    train_file, dev_file = write_squad(folder / "train.json", 10, 1), write_squad(folder / "dev.json", 3, 2)
    store = RunStore(folder / "runs")
    run = train(tiny_config(tiny_model, train_file, dev_file, "full", folder, task="question-answering", **LEARN), store)
    return run, store, dev_file, folder


def test_qa_run_scores_and_predicts_spans(qa_run):
    from tunelab.pipeline import evaluate, predict

    run, store, dev_file, folder = qa_run
    scores = run.manifest["metrics"]["validation"]
    assert run.manifest["metric"] == "f1" and 0 <= scores["exact_match"] <= scores["f1"] <= 100
    metrics = evaluate(run.id, str(dev_file), store, quiet=True)
    assert metrics["f1"] == pytest.approx(scores["f1"]) and sum(b["n"] for b in metrics["by_answer_length"].values()) == 18
    assert predict(run.id, str(dev_file), str(folder / "answers.jsonl"), store, quiet=True) == 18
    records = [json.loads(line) for line in (folder / "answers.jsonl").read_text().splitlines()]
    contexts = {q.id: q.context for q in read_questions(str(dev_file))}
    for record in records:
        assert contexts[record["id"]][record["start"]:record["end"]] == record["answer"] and record["answer"]


def test_qa_validation_split_keeps_articles_whole(tiny_model, tmp_path):
    from tunelab.config import load_config
    from tunelab.tasks import task_for

    train_file = write_squad(tmp_path / "train.json", 10, 1)
    task = task_for(load_config(None, {"task": "question-answering", "data.train": str(train_file)}).validate())
    data = task.load_data()
    assert data.validation_from_train and {q.title for q in data.train}.isdisjoint({q.title for q in data.validation})
    assert len(data.train) + len(data.validation) == 60


def test_a_single_article_is_split_by_paragraph(tmp_path):
    from tunelab.config import load_config
    from tunelab.tasks import task_for

    train_file = write_squad(tmp_path / "one.json", 1, 1)  # one article, three paragraphs
    data = task_for(load_config(None, {"task": "question-answering", "data.train": str(train_file)}).validate()).load_data()
    assert data.validation and {q.context for q in data.train}.isdisjoint({q.context for q in data.validation})
