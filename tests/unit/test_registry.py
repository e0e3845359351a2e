from __future__ import annotations

import json

import pytest

from tunelab.errors import UserError
from tunelab.registry import MANIFEST, RunStore, write_json


def _write_run(store: RunStore, output_dir=None, prefix="full"):
    with store.writing(output_dir, prefix) as draft:
        (draft.path / "weights.bin").write_bytes(b"1234")
        write_json(draft.path / MANIFEST, {"kind": "run", "id": draft.id, "strategy": prefix, "created": draft.id})
    return store.get(draft.id)


def test_finished_run_is_renamed_into_place_and_indexed(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = _write_run(store)
    assert run.path == (tmp_path / "runs" / run.id).resolve()
    assert (run.path / "weights.bin").read_bytes() == b"1234"
    assert [r.id for r in store.list()] == [run.id]
    assert not [p for p in (tmp_path / "runs").iterdir() if "incomplete" in p.name]


def test_crash_while_writing_leaves_nothing_listed(tmp_path):
    store = RunStore(tmp_path / "runs")
    with pytest.raises(RuntimeError):
        with store.writing(str(tmp_path / "runs" / "crashy"), "full") as draft:
            (draft.path / "half.bin").write_bytes(b"12")
            raise RuntimeError("killed mid-write")
    assert store.list() == []
    assert not (tmp_path / "runs" / "crashy").exists()
    assert [p.name for p in (tmp_path / "runs").iterdir() if not p.name.startswith("index")] == []


def test_leftover_incomplete_folder_from_a_killed_process_is_never_listed(tmp_path):
    store = RunStore(tmp_path / "runs")
    ghost = tmp_path / "runs" / ".ghost.incomplete-999"
    ghost.mkdir(parents=True)
    write_json(ghost / MANIFEST, {"kind": "run", "id": "ghost"})
    assert store.list() == []


def test_output_dir_outside_the_store_is_found_by_id(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = _write_run(store, str(tmp_path / "elsewhere" / "my-run"))
    assert store.get("my-run").path == run.path
    assert [r.id for r in RunStore(tmp_path / "runs").list()] == ["my-run"]


def test_folder_added_by_hand_is_indexed_on_list(tmp_path):
    store = RunStore(tmp_path / "runs")
    (tmp_path / "runs" / "copied").mkdir(parents=True)
    write_json(tmp_path / "runs" / "copied" / MANIFEST, {"kind": "run", "id": "copied"})
    assert [r.id for r in store.list()] == ["copied"]


def test_existing_output_dir_and_bad_names_are_refused(tmp_path):
    store = RunStore(tmp_path / "runs")
    _write_run(store, str(tmp_path / "runs" / "taken"))
    with pytest.raises(UserError, match="already exists and is not empty"):
        _write_run(store, str(tmp_path / "runs" / "taken"))
    with pytest.raises(UserError, match="must be letters, digits"):
        _write_run(store, str(tmp_path / "runs" / "bad name"))


def test_get_unknown_suggests_and_rm_removes(tmp_path):
    store = RunStore(tmp_path / "runs")
    _write_run(store, str(tmp_path / "runs" / "sentiment-v1"))
    with pytest.raises(UserError, match="did you mean 'sentiment-v1'"):
        store.get("sentiment-v2")
    store.remove("sentiment-v1")
    assert store.list() == [] and not (tmp_path / "runs" / "sentiment-v1").exists()


def test_path_traversal_ids_are_not_looked_up(tmp_path):
    store = RunStore(tmp_path / "runs")
    _write_run(store, str(tmp_path / "runs" / "ok"))
    with pytest.raises(UserError, match="not found"):
        store.get("../runs/../../etc")


def test_write_json_is_complete_or_absent(tmp_path):
    write_json(tmp_path / "m.json", {"a": 1})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
