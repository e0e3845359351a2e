"""Questions over contexts for extractive QA: SQuAD v1.1/v2.0 JSON, or JSONL with question/context/answers.

Every answer is checked against its context: a SQuAD answer whose `answer_start` is off by a few
characters (it happens in the wild) is moved to the nearest exact occurrence; one that is not in the
context at all is an error naming the question.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tunelab.data.readers import decode_text, jsonl_records
from tunelab.errors import UserError


@dataclass
class Question:
    """One question; `answers` are (text, character start) pairs, empty when unanswerable (SQuAD v2)."""

    id: str
    question: str
    context: str
    answers: list[tuple[str, int]] = field(default_factory=list)
    title: str = ""
    where: str = ""  # file and position, for messages


def read_questions(source: str, with_answers: bool = True, encoding: str = "utf-8") -> list[Question]:
    """All questions of a SQuAD JSON or QA JSONL file, in file order."""
    path = Path(source)
    if not path.is_file():
        raise UserError(f"{source}: file not found")
    text = decode_text(path.read_bytes(), source, encoding)
    if path.suffix.lower() == ".json":
        questions = _read_squad(text, source, with_answers)
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        questions = _read_jsonl(text, source, with_answers)
    else:
        raise UserError(f"{source}: expected SQuAD .json or .jsonl with question, context and answers")
    if not questions:
        raise UserError(f"{source}: no questions found")
    seen: set[str] = set()
    for q in questions:
        if q.id in seen:
            raise UserError(f"{q.where}: question id {q.id!r} occurs twice")
        seen.add(q.id)
    return questions


def _read_squad(text: str, source: str, with_answers: bool) -> list[Question]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{source}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise UserError(f"{source}: expected SQuAD JSON: {{\"data\": [{{\"title\", \"paragraphs\": [...]}}]}}")
    questions = []
    for a, article in enumerate(data["data"], start=1):
        for p, paragraph in enumerate(article.get("paragraphs", []), start=1):
            context = paragraph.get("context")
            if not isinstance(context, str) or not context.strip():
                raise UserError(f"{source}: article {a}, paragraph {p}: missing context")
            for n, qa in enumerate(paragraph.get("qas", []), start=1):
                where = f"{source}: article {a}, paragraph {p}, question {n}"
                answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                if not isinstance(answers, list):
                    raise UserError(f"{where}: answers must be a list of {{text, answer_start}}")
                pairs = [(x.get("text"), x.get("answer_start")) for x in answers if isinstance(x, dict)]
                questions.append(_question(qa.get("id", f"{a}-{p}-{n}"), qa.get("question"), context, pairs,
                                           article.get("title", ""), where, with_answers))
    return questions


def _read_jsonl(text: str, source: str, with_answers: bool) -> list[Question]:
    questions = []
    for number, record in jsonl_records(text, source):
        where = f"{source}: line {number}"
        raw = record.get("answers", [] if not with_answers else None)
        if isinstance(raw, dict):  # the datasets layout: {"text": [...], "answer_start": [...]}
            texts, starts = raw.get("text", []), raw.get("answer_start", [])
            if len(texts) != len(starts):
                raise UserError(f"{where}, field 'answers': {len(texts)} texts but {len(starts)} answer_start values")
            pairs = list(zip(texts, starts, strict=True))
        elif isinstance(raw, list):
            pairs = [(x.get("text"), x.get("answer_start")) if isinstance(x, dict) else (None, None) for x in raw]
        else:
            raise UserError(f"{where}, field 'answers': expected {{text: [...], answer_start: [...]}} or a list")
        questions.append(_question(str(record.get("id", number)), record.get("question"), record.get("context"),
                                   pairs, str(record.get("title", "")), where, with_answers))
    return questions


def _question(qid: str, question: object, context: object, pairs: list, title: str, where: str, with_answers: bool) -> Question:
    if not isinstance(question, str) or not question.strip():
        raise UserError(f"{where}, field 'question': empty or missing")
    if not isinstance(context, str) or not context.strip():
        raise UserError(f"{where}, field 'context': empty or missing")
    answers = []
    for text, start in pairs if with_answers else []:
        if not isinstance(text, str) or not text.strip() or not isinstance(start, int) or start < 0:
            raise UserError(f"{where}: each answer needs a non-empty text and an integer answer_start, got {text!r}, {start!r}")
        answers.append((text, _locate(text, start, context, where)))
    return Question(str(qid), question.lstrip(), context, answers, title, where)


def _locate(text: str, start: int, context: str, where: str) -> int:
    if context[start:start + len(text)] == text:
        return start
    found = [i for i in range(max(0, start - 50), min(len(context), start + 50)) if context.startswith(text, i)]
    if found:
        return min(found, key=lambda i: abs(i - start))
    if text in context:
        return context.index(text)
    raise UserError(f"{where}: answer {text!r} does not occur in the context")
