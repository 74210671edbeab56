"""The DVC stage commands: a bad param or bad data exits 2 with one line, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rnnlab import config

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


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
