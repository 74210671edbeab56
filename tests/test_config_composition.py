"""conf/ and params.yaml: every group option composes and validates, params.yaml is in step."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from rnnlab import config
from rnnlab.tasks import TASK_SPECS

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_params_yaml_matches_conf_defaults():
    committed = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    composed = yaml.safe_load(config.dump_params())
    assert committed == composed, (
        "params.yaml is out of date with conf/ (DVC reads params.yaml, Hydra reads conf/). "
        "Run `make params` to regenerate it."
    )


def test_dump_params_is_valid_and_resolved():
    text = config.dump_params()
    assert "${" not in text  # interpolations are resolved, as DVC needs
    assert "hydra:" not in text
    config.validate(OmegaConf.create(text))


def _assert_file_values_applied(group: str, option: str, cfg) -> None:
    """Each literal value set in conf/<group>/<option>.yaml shows up in the composed config,
    and so does each preset a global-packaged file sets for other sections (task/lm.yaml)."""
    own = OmegaConf.to_container(config.group_file_values(group, option, CONF), resolve=False)
    assert own, f"conf/{group}/{option}.yaml sets nothing"
    presets = config.group_presets(group, option, CONF)
    sections = {group: own, **OmegaConf.to_container(OmegaConf.create(presets))}
    for section, values in sections.items():
        for key, value in values.items():
            if isinstance(value, str) and "${" in value:
                continue
            composed = cfg[section][key]
            if OmegaConf.is_config(composed):
                composed = OmegaConf.to_container(composed)
                if isinstance(value, dict):  # presets set some keys of a nested section
                    composed = {k: composed[k] for k in value}
            assert composed == value, f"{section}.{key}"


@pytest.mark.parametrize("option", group_options("model"))
def test_every_model_config_composes_and_validates(compose_cfg, option):
    cfg = compose_cfg([f"model={option}"])
    _assert_file_values_applied("model", option, cfg)


def task_for_data(option: str) -> str:
    """The task whose data schema accepts ``conf/data/<option>.yaml``."""
    return next(t for t in sorted(TASK_SPECS) if option in config.data_configs_for(t))


@pytest.mark.parametrize("option", group_options("data"))
def test_every_data_config_composes_and_validates(compose_cfg, option):
    cfg = compose_cfg([f"task={task_for_data(option)}", f"data={option}"])
    _assert_file_values_applied("data", option, cfg)


@pytest.mark.parametrize("option", group_options("trainer"))
def test_every_trainer_config_composes_and_validates(compose_cfg, option):
    cfg = compose_cfg([f"trainer={option}"])
    _assert_file_values_applied("trainer", option, cfg)


@pytest.mark.parametrize("option", group_options("logger"))
def test_every_logger_config_composes_and_validates(compose_cfg, option):
    cfg = compose_cfg([f"logger={option}"])
    _assert_file_values_applied("logger", option, cfg)


@pytest.mark.parametrize("option", group_options("task"))
def test_every_task_config_composes_and_validates(compose_cfg, option):
    cfg = compose_cfg([f"task={option}", f"data={config.data_configs_for(option)[0]}"])
    _assert_file_values_applied("task", option, cfg)


def test_validate_fills_schema_defaults_and_is_read_only(compose_cfg):
    cfg = compose_cfg(["model=lstm"])
    assert cfg.model.nonlinearity == "tanh"  # not in conf/model/lstm.yaml
    assert cfg.model.attention is None
    assert OmegaConf.is_readonly(cfg)
    with pytest.raises(Exception, match="read-only"):
        cfg.model.hidden_size = 3


def test_validate_converts_types(compose_cfg):
    cfg = compose_cfg(model={"hidden_size": "32"}, trainer={"optimizer": {"lr": "1e-2"}})
    assert cfg.model.hidden_size == 32 and isinstance(cfg.model.hidden_size, int)
    assert cfg.trainer.optimizer.lr == pytest.approx(0.01)


def test_load_params_round_trip(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(config.dump_params(["model=gru", "seed=7"]), encoding="utf-8")
    cfg = config.load_params(path)
    assert cfg.model.arch == "gru" and cfg.seed == 7
    assert OmegaConf.is_readonly(cfg)


def test_the_study_experiment_ends_its_sweep_with_the_study_report():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONF), version_base=None):
        study = compose("config", ["experiment=vanishing_gradients"], return_hydra_config=True)
        plain = compose("config", [], return_hydra_config=True)
    assert study.hydra.callbacks.mlflow_setup.report == "study"
    assert plain.hydra.callbacks.mlflow_setup.report == "leaderboard"


def test_the_streaming_asr_experiment_is_the_documented_recipe(compose_cfg):
    """experiment=streaming_asr spells out the streaming recipe of docs/benchmarks.md; its
    figures were measured with these keys on the command line, so both must compose alike."""
    recipe = [
        "task=asr", "data=synth_speech", "data.cmvn=running", "model=gru",
        "model.num_layers=3", "model.hidden_size=256", "task.lookahead=2",
        "data.noisy_copies=1", "task.spec_augment=false", "trainer.max_epochs=26",
    ]  # fmt: skip
    assert compose_cfg(["experiment=streaming_asr"]) == compose_cfg(recipe)
    yours = compose_cfg(["experiment=streaming_asr", "data=speech_files"])
    assert yours.data.name == "speech_files" and yours.data.cmvn == "running"


def test_the_spoken_words_ensemble_experiment_is_the_documented_recipe(compose_cfg):
    """experiment=spoken_words_ensemble is the command line its figures were measured with."""
    recipe = [
        "task=classify", "data=spoken_words", "model=bigru", "task.ensemble=3",
        "trainer.max_epochs=15", "trainer.scheduler.name=cosine",
        "trainer.scheduler.warmup=0.1", "trainer.optimizer.lr=0.006",
    ]  # fmt: skip
    assert compose_cfg(["experiment=spoken_words_ensemble"]) == compose_cfg(recipe)
    yours = compose_cfg(["experiment=spoken_words_ensemble", "data=audio_folder"])
    assert yours.data.name == "audio_folder" and yours.task.ensemble == 3
