from __future__ import annotations

import pytest

from tunelab.config import RunConfig, apply_overrides, load_config
from tunelab.errors import UserError


def test_defaults_are_the_proven_recipe():
    config = RunConfig()
    assert config.train.warmup_steps == 0.1 and config.train.weight_decay == 0.01
    assert config.train.num_train_epochs == 3 and config.peft.r == 8 and config.peft.lora_alpha == 16


def test_overrides_are_coerced_to_declared_types():
    config = load_config(None, ["train.learning_rate=3e-5", "train.num_train_epochs=2", "features.cache=false",
                                "peft.target_modules=query,value", "data.text_pair_column=null", "seed=7"])
    assert config.train.learning_rate == pytest.approx(3e-5)
    assert config.train.num_train_epochs == 2.0
    assert config.features.cache is False
    assert config.peft.target_modules == ["query", "value"]
    assert config.data.text_pair_column is None and config.seed == 7


def test_yaml_file_then_overrides_win(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("strategy: lora\ntrain:\n  learning_rate: 1.0e-4\npeft:\n  options:\n    use_rslora: true\n")
    config = load_config(path, ["train.learning_rate=2e-4"])
    assert config.strategy == "lora"
    assert config.train.learning_rate == pytest.approx(2e-4)
    assert config.peft.options == {"use_rslora": True}


@pytest.mark.parametrize("override, message", [
    ("train.learnig_rate=1", "did you mean 'learning_rate'"),
    ("trian.learning_rate=1", "unknown config section 'trian'"),
    ("train.num_train_epochs=many", "expects float, got 'many'"),
    ("seed", "expected key=value"),
    ("train=1", "is a section"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(UserError, match=message):
        load_config(None, [override])


def test_invalid_yaml_reports_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("strategy: full\ntrain: [unclosed\n")
    with pytest.raises(UserError, match=r"bad.yaml:\d+: not valid YAML"):
        load_config(path)


def test_validate_suggests_the_strategy():
    config = apply_overrides(RunConfig(), {"strategy": "lroa"})
    with pytest.raises(UserError, match="did you mean 'lora'"):
        config.validate()
