"""Config mistakes fail before any work, naming the key, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rnnlab import config
from rnnlab.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


def test_misspelt_key_override_suggests_correct_key(compose_cfg):
    with pytest.raises(ConfigError, match=r"`model\.hiden_size`") as info:
        compose_cfg(["+model.hiden_size=3"])
    assert "Did you mean `model.hidden_size`?" in str(info.value)


def test_misspelt_key_in_dict_suggests_correct_key():
    raw = OmegaConf.to_container(config.compose())
    raw["model"]["hiden_size"] = 3
    with pytest.raises(ConfigError, match=r"Unknown config key `model\.hiden_size`") as info:
        config.validate(raw)
    assert "`model.hidden_size`" in str(info.value)
    assert "'num_layers'" in str(info.value)  # lists the allowed keys


def test_misspelt_nested_and_top_level_keys():
    raw = OmegaConf.to_container(config.compose())
    raw["trainer"]["optimizer"]["learning_rate"] = 0.1
    with pytest.raises(ConfigError, match=r"`trainer\.optimizer\.learning_rate`.*'lr'"):
        config.validate(raw)
    raw = OmegaConf.to_container(config.compose())
    raw["sed"] = 1
    with pytest.raises(ConfigError, match=r"`sed`\. Did you mean `seed`\?"):
        config.validate(raw)


@pytest.mark.parametrize(
    ("task", "data", "old", "new"),
    [
        ("seq2seq", "dates", ("task", "decode"), "evaluate.decode"),
        ("lm", "pydoc_topics", ("task", "temperature"), "evaluate.temperature"),
        ("classify", "text", ("data", "tokenizer"), "data.level"),
    ],
)
def test_a_moved_key_names_its_new_place(task, data, old, new):
    raw = OmegaConf.to_container(config.compose([f"task={task}", f"data={data}"]))
    raw[old[0]][old[1]] = "x"
    with pytest.raises(ConfigError, match=rf"`{'.'.join(old)}` is now `{new}`"):
        config.validate(raw)


def test_wrong_type_names_key(compose_cfg):
    with pytest.raises(ConfigError, match=r"`model\.hidden_size`.*'abc'"):
        compose_cfg(["model.hidden_size=abc"])


def test_wrong_type_message_is_one_line_without_omegaconf_internals(compose_cfg):
    with pytest.raises(ConfigError) as info:
        compose_cfg(["model.hidden_size=abc"])
    message = str(info.value)
    assert "object_type=" not in message
    assert len(message.strip().splitlines()) == 1, message


@pytest.mark.parametrize(
    ("override", "key", "allowed"),
    [
        (
            "model.arch=lstmm",
            "model.arch=lstmm",
            "['rnn', 'lstm', 'gru', 'mlp', 'transformer', 'linear']",
        ),
        ("data.missing=zero", "data.missing=zero", "['interpolate', 'ffill', 'drop', 'error']"),
        ("data.scaling=robust", "data.scaling=robust", "['standard', 'minmax', 'none']"),
        ("task.window_norm=mean", "task.window_norm=mean", "['none', 'last', 'revin']"),
        ("trainer.optimizer.name=rmsprop", "trainer.optimizer.name=rmsprop", "'adamw'"),
        ("logger.backend=wandb", "logger.backend=wandb", "['mlflow', 'none']"),
        # Checkpoints keep the lowest monitored figure: accuracy would keep the worst epoch.
        ("task.monitor=val/accuracy", "task.monitor=val/accuracy", "['val/loss']"),
        (
            "task=asr data=synth_speech task.monitor=val/wer",
            "task.monitor=val/wer",
            "['val/loss', 'val/cer']",
        ),
    ],
)
def test_bad_choice_lists_allowed_values(compose_cfg, override, key, allowed):
    with pytest.raises(ConfigError, match="is not allowed; choose one of") as info:
        compose_cfg(override.split())
    assert f"`{key}`" in str(info.value)
    assert allowed in str(info.value)


def test_unknown_task_name(compose_cfg):
    with pytest.raises(ConfigError, match=r"task\.name='tagging' is not a known task.*forecast"):
        compose_cfg(["task.name=tagging"])


def test_missing_task_section():
    with pytest.raises(ConfigError, match=r"task\.name=None"):
        config.validate({"seed": 1})


def test_load_params_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"params\.yaml not found.*make params"):
        config.load_params(tmp_path / "params.yaml")


def test_load_params_validates(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(config.dump_params(["data.missing=zero"]), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"data\.missing=zero"):
        config.load_params(path)


def test_num_threads_is_validated_and_applied(compose_cfg):
    import torch

    from rnnlab.lightning.trainer import configure_cpu

    with pytest.raises(
        ConfigError, match=r"`trainer.num_threads=0` is out of range; it must be >= 1"
    ):
        compose_cfg(["trainer.num_threads=0"])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        configure_cpu(compose_cfg(["trainer.num_threads=1"]).trainer)
        assert torch.get_num_threads() == 1
        torch.set_num_threads(3)
        configure_cpu(compose_cfg(["trainer.num_threads=null"]).trainer)  # torch's choice
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_inclusive_upper_bound(compose_cfg):
    base = ["task=seq2seq", "data=dates"]
    assert compose_cfg([*base, "task.teacher_forcing=1.0"]).task.teacher_forcing == 1.0
    with pytest.raises(
        ConfigError, match=r"teacher_forcing=1.01` is out of range; it must be >= 0.0 and <= 1.0\."
    ):
        compose_cfg([*base, "task.teacher_forcing=1.01"])
