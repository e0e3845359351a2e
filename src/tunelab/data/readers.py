"""Read a labelled table from CSV, TSV, JSONL, Parquet or the Hugging Face hub into a DataFrame.

Every value comes back as it was written (strings for text files, no NA guessing), so later checks
can name the exact row and field that is wrong. Rows are numbered from 1, the header excluded.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd

from tunelab.errors import UserError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".json": "json", ".parquet": "parquet", ".pq": "parquet"}


def read_table(source: str, split: str = "train", encoding: str = "utf-8") -> pd.DataFrame:
    """Load `source` (a file path or `hf:<dataset>[:<config>][#<split>]`) as a DataFrame."""
    if source.startswith("hf:"):
        return _read_hub(source, split)
    path = Path(source)
    if not path.exists():
        raise UserError(f"{source}: file not found")
    if path.is_dir():
        raise UserError(f"{source}: is a folder; expected a CSV, TSV, JSONL or Parquet file")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"{source}: unknown file type {path.suffix!r}; expected one of {', '.join(sorted(FORMATS))}")
    if fmt == "parquet":
        frame = _read_parquet(path)
    else:
        raw = path.read_bytes()
        if not raw.strip():
            raise UserError(f"{source}: file is empty")
        text = decode_text(raw, source, encoding)
        frame = {"csv": _read_delimited, "tsv": _read_delimited, "jsonl": _read_jsonl, "json": _read_json}[fmt](
            text, source, fmt
        )
    if len(frame) == 0:
        raise UserError(f"{source}: has a header but no data rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame.reset_index(drop=True)


def decode_text(raw: bytes, source: str, encoding: str, setting: str = "data.encoding") -> str:
    """Decode file bytes, or fail naming the line and byte that are not `encoding`."""
    try:
        return raw.decode(encoding).removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise UserError(
            f"{source}: line {line}, byte {exc.start}: not valid {encoding} ({raw[exc.start:exc.start + 1]!r});"
            f" re-save the file as UTF-8 or set {setting} (e.g. {setting}=latin-1)"
        ) from None


def _read_delimited(text: str, source: str, fmt: str) -> pd.DataFrame:
    # TSV as written by GLUE and most NLP corpora: tabs separate, quotes are ordinary characters.
    options = {"sep": "\t", "quoting": csv.QUOTE_NONE} if fmt == "tsv" else {"sep": ","}
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False, **options)
    except pd.errors.EmptyDataError:
        raise UserError(f"{source}: file is empty") from None
    except pd.errors.ParserError as exc:
        raise UserError(f"{source}: malformed {fmt.upper()}: {str(exc).strip().splitlines()[-1]}") from None


def jsonl_records(text: str, source: str) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line; a line that is not a JSON object is an error naming it."""
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{source}: line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise UserError(f"{source}: line {number}: expected a JSON object per line, got {type(record).__name__}")
        records.append((number, record))
    return records


def _read_jsonl(text: str, source: str, fmt: str) -> pd.DataFrame:
    return pd.DataFrame.from_records([record for _, record in jsonl_records(text, source)])


def _read_json(text: str, source: str, fmt: str) -> pd.DataFrame:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{source}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise UserError(f"{source}: expected a JSON list of objects (or JSONL, one object per line)")
    return pd.DataFrame.from_records(data)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a corrupt file
        raise UserError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None


def _read_hub(source: str, split: str) -> pd.DataFrame:
    spec, _, hub_split = source[3:].partition("#")
    name, _, subset = spec.partition(":")
    if not name:
        raise UserError(f"{source}: expected hf:<dataset id>[:<config>][#<split>], e.g. hf:stanfordnlp/sst2#train")
    import datasets

    try:
        dataset = datasets.load_dataset(name, subset or None, split=hub_split or split)
    except Exception as exc:  # offline, unknown id, unknown split: all end the same way for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{source}: could not load from the Hugging Face hub ({first}); offline? use a local file") from None
    return dataset.to_pandas()
