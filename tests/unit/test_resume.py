"""Crash and resume: a real training process killed with SIGKILL mid-epoch, then `tunelab train --resume`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import make_rows, tiny_config, write_csv
from tunelab import cli
from tunelab.errors import UserError
from tunelab.pipeline import train
from tunelab.registry import RunStore

STEPS_PER_EPOCH = 600 // 8
SETTINGS = {"train.save_steps": 10, "train.per_device_train_batch_size": 8, "model.max_length": 32,
            "train.num_train_epochs": 3, "train.learning_rate": 1e-4, "train.precision": "fp32"}


def _files(tmp_path: Path) -> tuple[Path, Path]:
    return write_csv(tmp_path / "train.csv", make_rows(600, 1)), write_csv(tmp_path / "dev.csv", make_rows(80, 2))


def _complete_steps(checkpoints: Path) -> list[int]:
    if not checkpoints.is_dir():
        return []
    return [int(c.name.rsplit("-", 1)[1]) for c in checkpoints.glob("checkpoint-*") if (c / "trainer_state.json").is_file()]


def _start_and_kill(tiny_model: Path, train_file: Path, dev_file: Path, store: Path, run_id: str) -> int:
    """Start `tunelab train` as its own process, SIGKILL it once a mid-epoch checkpoint is complete; returns that step."""
    command = [sys.executable, "-m", "tunelab", "train", "--train", str(train_file), "--validation", str(dev_file),
               "--model", str(tiny_model), "--store", str(store), "--output-dir", str(store / run_id), "--quiet",
               *[f"{key}={value}" for key, value in SETTINGS.items()]]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    checkpoints = store / f".{run_id}.incomplete" / "checkpoints"
    deadline = time.monotonic() + 240
    try:
        while not [s for s in _complete_steps(checkpoints) if s >= 20]:
            assert process.poll() is None, process.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within the time limit"
            time.sleep(0.01)
        step = max(_complete_steps(checkpoints))
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    return step


def test_killed_run_is_never_listed_and_resumes_to_the_same_result(tiny_model, tmp_path, capsys):
    train_file, dev_file = _files(tmp_path)
    store_root = tmp_path / "runs"
    killed_at = _start_and_kill(tiny_model, train_file, dev_file, store_root, "killed")
    assert killed_at < STEPS_PER_EPOCH  # mid-epoch: the data position matters
    store = RunStore(store_root)
    assert store.list() == []
    assert cli.main(["runs", "list", "--store", str(store_root)]) == 0
    assert capsys.readouterr().out.startswith("no runs in")
    assert [run_id for run_id, _ in store.interrupted()] == ["killed"]
    with pytest.raises(UserError, match="interrupted run of that name"):  # no silent overwrite of resumable work
        train(tiny_config(tiny_model, train_file, dev_file, "full", tmp_path, force=True,
                          output_dir=str(store_root / "killed"), **SETTINGS), store)

    assert cli.main(["train", "--resume", "killed", "--store", str(store_root), "--quiet"]) == 0
    resumed = store.get("killed")
    info = resumed.manifest["strategy_info"]
    assert resumed.manifest["resumed"] and info["resumed_from"].startswith("checkpoint-")
    assert int(info["resumed_from"].rsplit("-", 1)[1]) >= killed_at
    assert info["total_steps"] == 3 * STEPS_PER_EPOCH
    assert not (store_root / ".killed.incomplete").exists() and not (resumed.path / "checkpoints").exists()

    straight = train(tiny_config(tiny_model, train_file, dev_file, "full", tmp_path, force=True,
                                 output_dir=str(store_root / "straight"), **SETTINGS), store)
    for split in ("accuracy", "macro_f1"):
        assert abs(resumed.manifest["metrics"]["validation"][split] - straight.manifest["metrics"]["validation"][split]) <= 0.05

    def final_loss(run):
        history = json.loads((run.path / "metrics.json").read_text())["history"]
        return [entry["eval_loss"] for entry in history if "eval_loss" in entry][-1]

    assert final_loss(resumed) == pytest.approx(final_loss(straight), rel=0.05)
    assert [r.id for r in store.list()] == ["killed", "straight"]


def test_resume_refuses_what_it_cannot_resume(tiny_model, sentiment_files, tmp_path):
    train_file, dev_file = sentiment_files
    store = RunStore(tmp_path / "runs")
    with pytest.raises(UserError, match="no interrupted run"):
        store.find_interrupted("nothing-here")
    finished = train(tiny_config(tiny_model, train_file, dev_file, "features", tmp_path), store)
    with pytest.raises(UserError, match="already finished"):
        store.find_interrupted(finished.id)
    (store.root / ".empty.incomplete").mkdir()
    with pytest.raises(UserError, match="no complete checkpoint"):
        store.find_interrupted("empty")
    assert cli.main(["train", "--resume", "x", "--train", str(train_file), "--store", str(store.root)]) == 2


def test_interrupted_run_can_be_removed(tmp_path):
    store = RunStore(tmp_path / "runs")
    hidden = store.root / ".ghost.incomplete"
    (hidden / "checkpoints" / "checkpoint-5").mkdir(parents=True)
    (hidden / "checkpoints" / "checkpoint-5" / "trainer_state.json").write_text("{}")
    assert store.find_interrupted("ghost") == hidden
    store.remove("ghost")
    assert not hidden.exists()

