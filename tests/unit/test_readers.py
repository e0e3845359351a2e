from __future__ import annotations

import json

import pandas as pd
import pytest

from tunelab.data import read_table
from tunelab.errors import UserError


def test_tsv_keeps_quotes_as_text(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_text('sentence\tlabel\nhe said "hi \tthere\n"quoted" text\t1\n'.replace("\tthere", " there\t0"))
    frame = read_table(str(path))
    assert frame["sentence"].tolist() == ['he said "hi  there', '"quoted" text']
    assert frame["label"].tolist() == ["0", "1"]


def test_csv_jsonl_json_parquet_agree(tmp_path):
    rows = [{"text": "a, b", "label": "x"}, {"text": "c", "label": "y"}]
    pd.DataFrame(rows).to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    (tmp_path / "d.json").write_text(json.dumps(rows))
    pd.DataFrame(rows).to_parquet(tmp_path / "d.parquet")
    for name in ("d.csv", "d.jsonl", "d.json", "d.parquet"):
        frame = read_table(str(tmp_path / name))
        assert frame["text"].tolist() == ["a, b", "c"], name


def test_empty_cells_stay_empty_strings(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("text,label\nNA,\n")
    frame = read_table(str(path))
    assert frame.loc[0, "text"] == "NA" and frame.loc[0, "label"] == ""


@pytest.mark.parametrize("name, content, message", [
    ("missing.csv", None, "file not found"),
    ("empty.csv", b"", "file is empty"),
    ("blank.csv", b"\n\n", "file is empty"),
    ("header.csv", b"text,label\n", "has a header but no data rows"),
    ("latin.csv", b"text,label\nok,1\ncaf\xe9,0\n", r"line 3, byte 19: not valid utf-8"),
    ("bad.jsonl", b'{"text": "a"}\n{"text": \n', "line 2: not valid JSON"),
    ("list.jsonl", b'["a", 1]\n', "line 1: expected a JSON object"),
    ("data.xlsx", b"x", "unknown file type '.xlsx'"),
    ("rows.csv", b'text,label\n"a",1\n"b",2,extra\n', "malformed CSV"),
    ("broken.parquet", b"not parquet", "not a readable Parquet file"),
])
def test_bad_files_fail_with_one_line_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message) as error:
        read_table(str(path))
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_latin1_is_readable_when_asked(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"text,label\ncaf\xe9,0\n")
    assert read_table(str(path), encoding="latin-1")["text"].tolist() == ["café"]


def test_hub_source_fails_clearly_offline(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nope/nothing' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(UserError, match=r"hf:nope/nothing: could not load from the Hugging Face hub .*offline\?"):
        read_table("hf:nope/nothing")
