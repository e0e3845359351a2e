"""Hub push/pull offline: the model card, the folder that would be uploaded, and clear errors, never a fake upload."""

from __future__ import annotations

import pytest

from tests.conftest import tiny_config
from tunelab import cli, hub
from tunelab.errors import UserError
from tunelab.pipeline import train
from tunelab.registry import RunStore


@pytest.fixture()
def run_and_store(tiny_model, sentiment_files, tmp_path):
    train_file, dev_file = sentiment_files
    store = RunStore(tmp_path / "runs")
    return train(tiny_config(tiny_model, train_file, dev_file, "lora", tmp_path), store), store


def test_model_card_says_what_the_model_is_and_is_not(run_and_store):
    run, _ = run_and_store
    card = hub.model_card(run)
    assert card.startswith("---\nlibrary_name: peft\n") and "- tunelab" in card
    assert run.manifest["base_model"]["given"] in card and "strategy: `lora` (lora)" in card
    accuracy = run.manifest["metrics"]["validation"]["accuracy"]
    assert f"| validation | accuracy | {accuracy:.4f} |" in card
    assert "## Intended use" in card and "## Limitations" in card and "adapter only" in card
    assert "labels (2): neg, pos" in card


def test_staged_folder_holds_the_run_and_the_card_only(run_and_store, tmp_path):
    run, _ = run_and_store
    (run.path / "evaluations").mkdir()
    staged = hub.stage(run, tmp_path / "staged")
    names = {p.name for p in staged.iterdir()}
    assert {"adapter", "tokenizer", "run.json", "metrics.json", "config.yaml", "README.md"} <= names
    assert "evaluations" not in names
    assert (staged / "adapter" / "adapter_model.safetensors").is_file()


def test_push_and_pull_fail_clearly_without_a_hub(run_and_store, monkeypatch, capsys):
    run, store = run_and_store
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="switched off here"):
        hub.push(run.id, "someone/tiny", store)
    with pytest.raises(UserError, match="pull someone/tiny"):
        hub.pull("someone/tiny", store)
    assert cli.main(["push", run.id, "--repo-id", "someone/tiny", "--store", str(store.root)]) == 2
    assert "nothing was sent" in capsys.readouterr().err
    assert [r.id for r in store.list()] == [run.id]  # a failed pull leaves nothing behind


def test_push_to_an_unreachable_hub_says_so(run_and_store, monkeypatch):
    run, store = run_and_store
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    with pytest.raises(UserError, match="could not be reached|refused"):
        hub.push(run.id, "someone/tiny", store)


def test_bad_repo_ids_and_card_only(run_and_store, tmp_path, monkeypatch, capsys):
    run, store = run_and_store
    with pytest.raises(UserError, match="expected <user or organisation>/<name>"):
        hub.push(run.id, "no-slash", store)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["push", run.id, "--repo-id", "a/b", "--card-only", "--store", str(store.root)]) == 0
    assert (tmp_path / f"{run.id}-hub" / "README.md").is_file() and "nothing uploaded" in capsys.readouterr().out


def test_pull_lands_a_pushed_folder_as_a_working_run(run_and_store, tmp_path, monkeypatch):
    import shutil

    import huggingface_hub

    run, _ = run_and_store
    staged = hub.stage(run, tmp_path / "remote")  # what push would have uploaded

    def fake_download(repo_id, revision=None, local_dir=None, token=None):  # the hub's side, played locally
        shutil.copytree(staged, local_dir, dirs_exist_ok=True)
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    other = RunStore(tmp_path / "elsewhere")
    pulled = hub.pull("someone/tiny", other)
    assert pulled.id == run.id and (pulled.path / "README.md").is_file()
    from tunelab.inference import load_run_predictor

    texts = ["a lovely film", "a dreadful meal"]
    import numpy as np

    np.testing.assert_allclose(load_run_predictor(pulled, other.root).predict_proba(texts),
                               load_run_predictor(run).predict_proba(texts), atol=1e-6)
    with pytest.raises(UserError, match="already exists"):  # never over a run that is there
        hub.pull("someone/tiny", other)
