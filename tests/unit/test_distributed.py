"""Two CPU processes (torchrun, gloo) train one run: sharded data, rank 0 alone writes, metrics match one process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import make_rows, tiny_config, write_csv
from tunelab.pipeline import train
from tunelab.registry import RunStore

SETTINGS = {"model.max_length": 32, "train.num_train_epochs": 3, "train.learning_rate": 1e-4, "train.precision": "fp32"}


LAUNCHERS = {
    "torchrun": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
    # accelerate's multi-GPU launcher is torchrun underneath; with no GPU its processes train on the CPU (gloo).
    "accelerate": [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"],
}


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_processes_write_one_run_that_matches_a_single_process(tiny_model, tmp_path, launcher):
    train_file = write_csv(tmp_path / "train.csv", make_rows(320, 1))
    dev_file = write_csv(tmp_path / "dev.csv", make_rows(80, 2))
    store_root = tmp_path / "runs"
    command = [*LAUNCHERS[launcher], "-m", "tunelab", "train", "--train", str(train_file), "--validation", str(dev_file),
               "--model", str(tiny_model), "--store", str(store_root), "--output-dir", str(store_root / "ddp"), "--quiet", "--force",
               "train.per_device_train_batch_size=8", *[f"{k}={v}" for k, v in SETTINGS.items()]]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    store = RunStore(store_root)
    assert [r.id for r in store.list()] == ["ddp"]  # one run, written once
    assert not [p for p in store_root.iterdir() if p.name.startswith(".")]
    ddp = store.get("ddp")
    assert ddp.manifest["processes"] == 2
    # 2 ranks x 8 per device = a global batch of 16: the optimizer steps of one process with batch 16.
    assert ddp.manifest["strategy_info"]["total_steps"] == 3 * 320 // 16

    single = train(tiny_config(tiny_model, train_file, dev_file, "full", tmp_path, force=True,
                               output_dir=str(store_root / "single"), **{"train.per_device_train_batch_size": 16, **SETTINGS}),
                   store)
    assert single.manifest["strategy_info"]["total_steps"] == ddp.manifest["strategy_info"]["total_steps"]
    for metric in ("accuracy", "macro_f1"):
        assert ddp.manifest["metrics"]["validation"][metric] == pytest.approx(
            single.manifest["metrics"]["validation"][metric], abs=0.1)


def test_single_process_strategies_refuse_a_multi_process_launch(tiny_model, sentiment_files, tmp_path, monkeypatch):
    from tunelab.errors import UserError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr("tunelab.distributed.init", lambda: None)
    train_file, dev_file = sentiment_files
    with pytest.raises(UserError, match="runs in one process"):
        train(tiny_config(tiny_model, train_file, dev_file, "features", tmp_path), RunStore(tmp_path / "runs"))
