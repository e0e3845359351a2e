"""Tagged sentences for token classification: CoNLL column files and JSONL `tokens` + `tags` lists.

Tags are normalised to IOB2 (every entity starts with B-), the scheme seqeval scores strictly;
CoNLL-2003 itself ships IOB1, where I- starts an entity unless it touches one of the same type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tunelab.data.readers import decode_text, jsonl_records
from tunelab.errors import UserError

DOCSTART = "-DOCSTART-"


@dataclass
class TaggedSentence:
    """Words and their tags (tags empty for unlabelled input); `line` is where the sentence starts in its file."""

    tokens: list[str]
    tags: list[str]
    line: int
    text: str | None = None  # raw input text, when the words were split from it
    spans: list[tuple[int, int]] | None = None  # each word's character span in `text`


def read_tagged(source: str, token_column: int = 0, tag_column: int = -1, tokens_field: str = "tokens",
                tags_field: str = "tags", with_tags: bool = True, encoding: str = "utf-8") -> list[TaggedSentence]:
    """Sentences from a CoNLL file (any suffix but .jsonl/.json) or a JSONL file; tags checked, not yet converted."""
    path = Path(source)
    if not path.is_file():
        raise UserError(f"{source}: file not found")
    text = decode_text(path.read_bytes(), source, encoding)
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        sentences = _read_jsonl(text, source, tokens_field, tags_field, with_tags)
    else:
        sentences = _read_columns(text, source, token_column, tag_column, with_tags)
    if not sentences:
        raise UserError(f"{source}: no sentences found")
    for sentence in sentences:
        for tag in sentence.tags:
            if tag != "O" and (len(tag) < 3 or tag[:2] not in ("B-", "I-")):
                raise UserError(f"{source}: sentence at line {sentence.line}: tag {tag!r} is not O, B-<type> or I-<type>")
    return sentences


def _read_columns(text: str, source: str, token_column: int, tag_column: int, with_tags: bool) -> list[TaggedSentence]:
    sentences, tokens, tags, start = [], [], [], 1
    for number, line in enumerate(text.splitlines() + [""], start=1):
        fields = line.split()
        if not fields or fields[0] == DOCSTART:
            if tokens:
                sentences.append(TaggedSentence(tokens, tags, start))
            tokens, tags, start = [], [], number + 1
            continue
        needed = max(token_column, tag_column if with_tags else 0)
        if needed >= len(fields) or (with_tags and -tag_column > len(fields)):
            raise UserError(f"{source}: line {number}: {len(fields)} columns; ner.token_column={token_column} and"
                            f" ner.tag_column={tag_column} need more (CoNLL: a word and its tag per line)")
        tokens.append(fields[token_column])
        if with_tags:
            tags.append(fields[tag_column])
    return sentences


def _read_jsonl(text: str, source: str, tokens_field: str, tags_field: str, with_tags: bool) -> list[TaggedSentence]:
    sentences = []
    for number, record in jsonl_records(text, source):
        tokens = record.get(tokens_field)
        if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) and t.strip() for t in tokens):
            raise UserError(f"{source}: line {number}, field {tokens_field!r}: expected a non-empty list of words (ner.tokens_field)")
        tags = record.get(tags_field) if with_tags else []
        if with_tags:
            if not isinstance(tags, list) or len(tags) != len(tokens):
                raise UserError(f"{source}: line {number}, field {tags_field!r}: expected a list of {len(tokens)} tags,"
                                f" one per word (ner.tags_field)")
            tags = [str(t) for t in tags]
        sentences.append(TaggedSentence(tokens, tags, number))
    return sentences


WORD = re.compile(r"\w+(?:[-'’.]\w+)*|[^\w\s]")  # words keep inner hyphens/apostrophes; punctuation stands alone


def split_words(text: str, line: int) -> TaggedSentence:
    """Raw text as words with character spans, the way CoNLL-style corpora tokenise (punctuation separate)."""
    matches = list(WORD.finditer(text))
    return TaggedSentence([m.group() for m in matches], [], line, text, [m.span() for m in matches])


def to_iob2(tags: list[str]) -> tuple[list[str], int]:
    """IOB1 (or any I- that starts an entity) to IOB2; also returns how many tags changed."""
    out, changed = [], 0
    for i, tag in enumerate(tags):
        if tag.startswith("I-"):
            previous = out[i - 1] if i else "O"
            if previous == "O" or previous[2:] != tag[2:]:
                tag, changed = "B-" + tag[2:], changed + 1
        out.append(tag)
    return out, changed


def normalise_scheme(sentences: list[TaggedSentence], scheme: str, source: str) -> int:
    """Convert every sentence's tags to IOB2 in place; with scheme `iob2`, an entity opened by I- is an error."""
    total = 0
    for sentence in sentences:
        converted, changed = to_iob2(sentence.tags)
        if changed and scheme == "iob2":
            first = next(i for i, (a, b) in enumerate(zip(sentence.tags, converted, strict=True)) if a != b)
            raise UserError(f"{source}: sentence at line {sentence.line}, word {first + 1} ({sentence.tokens[first]!r}):"
                            f" tag {sentence.tags[first]!r} starts an entity, which IOB2 forbids; set ner.tag_scheme=iob1 to convert")
        sentence.tags = converted
        total += changed
    return total
