"""Config composition and validation, the stage CLI, atomic writes and repository paths."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from rnnlab import config
from rnnlab.errors import ConfigError
from rnnlab.io import atomic_dir, read_json, write_json
from rnnlab.paths import RunPaths, repo_root
from rnnlab.tasks import TASK_SPECS

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


# ----------------------------------------------------------------------------- params.yaml


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
    cfg = config.validate(OmegaConf.create(text))
    assert cfg.logger.experiment_name == "rnnlab-forecast"
    assert cfg.data.name == "co2" and cfg.model.name == "lstm"


# ------------------------------------------------------------------------ every group option


def test_groups_are_not_empty():
    assert "lstm" in group_options("model") and "gru" in group_options("model")
    assert {"co2", "csv"} <= set(group_options("data"))
    assert "default" in group_options("trainer")
    assert {"mlflow", "none"} <= set(group_options("logger"))


def _assert_file_values_applied(group: str, option: str, cfg) -> None:
    """Each literal value set in conf/<group>/<option>.yaml shows up in the composed config."""
    own = OmegaConf.to_container(OmegaConf.load(CONF / group / f"{option}.yaml"), resolve=False)
    own.pop("defaults", None)
    assert own, f"conf/{group}/{option}.yaml sets nothing"
    for key, value in own.items():
        if isinstance(value, str) and "${" in value:
            continue
        composed = cfg[group][key]
        if OmegaConf.is_config(composed):
            composed = OmegaConf.to_container(composed)
        assert composed == value, f"{group}.{key}"


@pytest.mark.parametrize("option", group_options("model"))
def test_every_model_config_composes_and_validates(compose_cfg, option):
    cfg = compose_cfg([f"model={option}"])
    assert cfg.model.name == option
    _assert_file_values_applied("model", option, cfg)


def task_for_data(option: str) -> str:
    """The task whose data schema accepts ``conf/data/<option>.yaml``."""
    return next(t for t in sorted(TASK_SPECS) if option in config.data_configs_for(t))


@pytest.mark.parametrize("option", group_options("data"))
def test_every_data_config_composes_and_validates(compose_cfg, option):
    cfg = compose_cfg([f"task={task_for_data(option)}", f"data={option}"])
    assert cfg.data.name == option
    assert cfg.data.get("source", option) == option
    _assert_file_values_applied("data", option, cfg)


@pytest.mark.parametrize("option", group_options("trainer"))
def test_every_trainer_config_composes_and_validates(compose_cfg, option):
    cfg = compose_cfg([f"trainer={option}"])
    _assert_file_values_applied("trainer", option, cfg)
    assert cfg.trainer.optimizer.name == "adamw"  # inherited from trainer/default


@pytest.mark.parametrize("option", group_options("logger"))
def test_every_logger_config_composes_and_validates(compose_cfg, option):
    cfg = compose_cfg([f"logger={option}"])
    assert cfg.logger.backend == option
    assert cfg.logger.experiment_name == "rnnlab-forecast"
    _assert_file_values_applied("logger", option, cfg)


@pytest.mark.parametrize("option", group_options("task"))
def test_every_task_config_composes_and_validates(compose_cfg, option):
    cfg = compose_cfg([f"task={option}", f"data={config.data_configs_for(option)[0]}"])
    assert cfg.task.name == option
    _assert_file_values_applied("task", option, cfg)


def test_quick_experiment(compose_cfg):
    cfg = compose_cfg(["experiment=quick"])
    assert cfg.trainer.max_epochs == 2
    assert cfg.trainer.limit_train_batches == 1.0  # small datasets have a single batch
    assert (cfg.model.hidden_size, cfg.model.num_layers) == (16, 1)


def test_validate_fills_schema_defaults_and_is_read_only(compose_cfg):
    cfg = compose_cfg(["model=lstm"])
    assert cfg.model.nonlinearity == "tanh"  # not in conf/model/lstm.yaml
    assert cfg.model.attention is None
    assert OmegaConf.is_readonly(cfg)
    with pytest.raises(Exception, match="read-only"):
        cfg.model.hidden_size = 3


def test_validate_converts_types(compose_cfg):
    cfg = compose_cfg(["model.hidden_size=32", "trainer.optimizer.lr=1e-2"])
    assert cfg.model.hidden_size == 32 and isinstance(cfg.model.hidden_size, int)
    assert cfg.trainer.optimizer.lr == pytest.approx(0.01)


# --------------------------------------------------------------------------- invalid configs


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
        ("model.arch=lstmm", "model.arch=lstmm", "['rnn', 'lstm', 'gru', 'mlp', 'transformer']"),
        ("data.missing=zero", "data.missing=zero", "['interpolate', 'ffill', 'drop', 'error']"),
        ("data.scaling=robust", "data.scaling=robust", "['standard', 'minmax', 'none']"),
        ("task.window_norm=mean", "task.window_norm=mean", "['none', 'last']"),
        ("trainer.optimizer.name=rmsprop", "trainer.optimizer.name=rmsprop", "'adamw'"),
        ("logger.backend=wandb", "logger.backend=wandb", "['mlflow', 'none']"),
    ],
)
def test_bad_choice_lists_allowed_values(compose_cfg, override, key, allowed):
    with pytest.raises(ConfigError, match="is not allowed; choose one of") as info:
        compose_cfg([override])
    assert f"`{key}`" in str(info.value)
    assert allowed in str(info.value)


def test_unknown_task_name(compose_cfg):
    with pytest.raises(ConfigError, match=r"task\.name='tagging' is not a known task.*forecast"):
        compose_cfg(["task.name=tagging"])


def test_missing_task_section():
    with pytest.raises(ConfigError, match=r"task\.name=None"):
        config.validate({"seed": 1})


def test_unknown_group_option_lists_available():
    with pytest.raises(MissingConfigException, match=r"model/nope") as info:
        config.compose(["model=nope"])
    message = str(info.value)
    assert "Available options" in message
    for option in ("lstm", "gru", "transformer"):
        assert option in message


def test_load_params_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"params\.yaml not found.*make params"):
        config.load_params(tmp_path / "params.yaml")


def test_load_params_round_trip(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(config.dump_params(["model=gru", "seed=7"]), encoding="utf-8")
    cfg = config.load_params(path)
    assert cfg.model.arch == "gru" and cfg.seed == 7
    assert OmegaConf.is_readonly(cfg)


def test_load_params_validates(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(config.dump_params(["data.missing=zero"]), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"data\.missing=zero"):
        config.load_params(path)


# --------------------------------------------------------------------------------- stage CLI


def run_python(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DVC_ROOT"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data.missing=zero", "`data.missing=zero` is not allowed"),
        ("model.hidden_size=abc", "`model.hidden_size`"),
    ],
)
def test_prepare_stage_bad_param_exits_2_without_traceback(tmp_path, override, expected):
    params = config.dump_params()
    key, _, value = override.partition("=")
    section, field = key.split(".")
    params = OmegaConf.create(params)
    params[section][field] = value
    (tmp_path / "params.yaml").write_text(OmegaConf.to_yaml(params), encoding="utf-8")

    result = run_python(["-m", "rnnlab.stages.prepare"], cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    assert expected in result.stderr
    assert "\n\n" not in result.stderr.strip()  # one paragraph
    assert result.stdout == ""
    assert not (tmp_path / "data").exists()


def test_prepare_stage_without_params_yaml(tmp_path):
    result = run_python(["-m", "rnnlab.stages.prepare"], cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: params.yaml not found")
    assert "make params" in result.stderr


def test_prepare_stage_bad_data_exits_2(tmp_path):
    params = OmegaConf.create(config.dump_params(["data=csv"]))
    params.data.path = "data/external/nothing.csv"
    (tmp_path / "params.yaml").write_text(OmegaConf.to_yaml(params), encoding="utf-8")
    result = run_python(["-m", "rnnlab.stages.prepare"], cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: Data file")
    assert "nothing.csv does not exist" in result.stderr


def test_prepare_stage_does_not_import_training_stack(tmp_path):
    (tmp_path / "params.yaml").write_text(config.dump_params(), encoding="utf-8")
    script = textwrap.dedent(
        """
        import json, runpy, sys
        sys.argv = ["prepare"]
        runpy.run_module("rnnlab.stages.prepare", run_name="__main__")
        heavy = ("torch", "pytorch_lightning", "lightning", "mlflow", "torchmetrics")
        loaded = sorted({m.split(".")[0] for m in sys.modules} & set(heavy))
        print("LOADED=" + json.dumps(loaded))
        """
    )
    result = run_python(["-c", script], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary_text, _, loaded = result.stdout.rpartition("LOADED=")
    assert json.loads(loaded) == []
    assert json.loads(summary_text)["rows"] == 2284
    assert (tmp_path / "data" / "prepared" / "meta.json").exists()
    assert (tmp_path / "data" / "raw" / "co2.csv").exists()


# -------------------------------------------------------------------------------- atomic I/O


def test_atomic_dir_replaces_target_on_success(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_dir(target) as staging:
        assert staging != target and staging.parent == tmp_path
        (staging / "new.txt").write_text("new")
        assert (target / "old.txt").read_text() == "old"  # not swapped in yet
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_dir_creates_missing_target(tmp_path):
    target = tmp_path / "a" / "b"
    with atomic_dir(target) as staging:
        (staging / "x").write_text("1")
    assert (target / "x").read_text() == "1"


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_atomic_dir_keeps_old_content_on_error(tmp_path, exc):
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("precious")
    with pytest.raises(type(exc)), atomic_dir(target) as staging:
        (staging / "keep.txt").write_text("half-written")
        (staging / "partial.txt").write_text("x")
        raise exc
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]
    assert (target / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging dirs left


def test_atomic_dir_error_without_previous_target(tmp_path):
    with pytest.raises(ValueError), atomic_dir(tmp_path / "out"):
        raise ValueError
    assert list(tmp_path.iterdir()) == []


def test_write_json_round_trip(tmp_path):
    path = tmp_path / "sub" / "x.json"
    write_json(path, {"b": [1, 2.5], "a": None})
    assert read_json(path) == {"a": None, "b": [1, 2.5]}
    assert path.read_text().startswith('{\n  "a": null')  # sorted keys, indented
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_dir_output_has_normal_directory_permissions(tmp_path):
    reference = tmp_path / "reference"
    reference.mkdir()
    with atomic_dir(tmp_path / "out"):
        pass
    assert oct(_mode(tmp_path / "out")) == oct(_mode(reference))


def test_write_json_output_has_normal_file_permissions(tmp_path):
    reference = tmp_path / "reference.json"
    reference.write_text("{}")
    write_json(tmp_path / "meta.json", {})
    assert oct(_mode(tmp_path / "meta.json")) == oct(_mode(reference))


# ------------------------------------------------------------------------------------ paths


def test_repo_root_honours_dvc_root(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir()
    elsewhere = tmp_path / "copy"
    (elsewhere / "sub").mkdir(parents=True)
    (elsewhere / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.setenv("DVC_ROOT", str(real))
    assert repo_root(elsewhere / "sub") == real.resolve()
    monkeypatch.chdir(elsewhere)
    assert repo_root() == real.resolve()


def test_repo_root_finds_nearest_marker_without_dvc_root(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_ROOT", raising=False)
    project = tmp_path / "project"
    nested = project / "a" / "b"
    nested.mkdir(parents=True)
    (project / "dvc.yaml").write_text("stages: {}\n")
    assert repo_root(nested) == project.resolve()
    monkeypatch.chdir(nested)
    assert repo_root() == project.resolve()
    assert repo_root(REPO / "src" / "rnnlab") == REPO


def test_run_paths_layout(tmp_path):
    paths = RunPaths(tmp_path)
    assert paths.raw_dir == tmp_path / "data" / "raw"
    assert paths.prepared_dir == tmp_path / "data" / "prepared"
    assert paths.checkpoint == tmp_path / "models" / "model.ckpt"
    assert paths.run_info == tmp_path / "models" / "run.json"


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
        configure_cpu(compose_cfg([]).trainer)  # null leaves torch's choice alone
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_the_study_experiment_ends_its_sweep_with_the_study_report():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONF), version_base=None):
        study = compose("config", ["experiment=vanishing_gradients"], return_hydra_config=True)
        plain = compose("config", [], return_hydra_config=True)
    assert study.hydra.callbacks.mlflow_setup.report == "study"
    assert plain.hydra.callbacks.mlflow_setup.report == "leaderboard"


def test_inclusive_upper_bound(compose_cfg):
    base = ["task=seq2seq", "data=dates"]
    assert compose_cfg([*base, "task.teacher_forcing=1.0"]).task.teacher_forcing == 1.0
    with pytest.raises(
        ConfigError, match=r"teacher_forcing=1.01` is out of range; it must be >= 0.0 and <= 1.0\."
    ):
        compose_cfg([*base, "task.teacher_forcing=1.01"])
