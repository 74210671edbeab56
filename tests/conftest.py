"""Shared fixtures: one composed configuration adjusted per test, a temporary MLflow store.

As in lightning-hydra-template, ``conf/`` is composed once (here once per combination of group
choices, for the whole session) and each test gets a copy adjusted with ``open_dict``; Hydra's
composition is the slow part, the copy is not.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from rnnlab import config

# The seconds-long forecasting run that end-to-end tests train (the DVC tests pass it as -S).
QUICK_RUN = ("experiment=quick", "task.lookback=52", "task.horizon=8")
CONFIG_GROUPS = frozenset(p.name for p in config.CONF_DIR.iterdir() if p.is_dir())


@functools.cache
def _composed(choices: tuple[str, ...]) -> DictConfig:
    return config.compose(list(choices))


def make_config(overrides: list[str] | tuple[str, ...] = (), **sections: dict[str, Any]) -> Any:
    """The validated config for Hydra-style ``overrides`` (``model=gru``, ``model.dropout=0.1``).

    Group choices are composed (once per combination); every other ``key=value`` and each
    ``section={key: value}`` keyword is set on a copy with ``open_dict``, so paths and lists need
    no quoting and a misspelt key reaches ``validate``, which names it.
    """
    parser = OverridesParser.create()
    parsed = [parser.parse_override(o) for o in overrides]
    choices = tuple(o.input_line for o in parsed if o.key_or_group in CONFIG_GROUPS)
    cfg = copy.deepcopy(_composed(choices))
    with open_dict(cfg):
        for override in parsed:
            if override.key_or_group not in CONFIG_GROUPS:
                OmegaConf.update(cfg, override.key_or_group, override.value(), force_add=True)
        for section, values in sections.items():
            OmegaConf.update(cfg, section, values, merge=True, force_add=True)
    return config.validate(cfg)


@pytest.fixture(scope="session")
def compose_cfg() -> Callable[..., DictConfig]:
    """``compose_cfg(["model=gru", ...], data={"path": ...})`` -> a validated config."""
    return make_config


@pytest.fixture(scope="session")
def quick_cfg() -> Callable[..., DictConfig]:
    """``quick_cfg("model=gru", ...)`` -> the quick forecasting run's config, adjusted."""
    return lambda *overrides, **sections: make_config([*QUICK_RUN, *overrides], **sections)


@pytest.fixture(scope="session")
def quick_overrides() -> list[str]:
    """The quick run as override strings, for ``dump_params`` and ``dvc exp run -S``."""
    return list(QUICK_RUN)


@pytest.fixture(autouse=True)
def _mlflow_tracking_uri_per_test() -> Iterator[None]:
    """A test that sets MLflow's process-wide tracking URI (as a user's script does) keeps it
    to itself; every test starts with the setting and the variable it found."""
    from rnnlab.tracking import process_tracking_uri

    with process_tracking_uri():
        yield


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh sqlite MLflow store under ``tmp_path``, set as ``MLFLOW_TRACKING_URI``."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture
def csv_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """``csv_cfg(frame, overrides=[...], **data)`` writes ``frame`` to a CSV under ``tmp_path``
    and returns a validated ``data=csv`` config whose ``data.path`` is that (absolute) file.

    ``frame`` may also be ``str``/``bytes`` (written verbatim) or ``None`` (no file is written).
    Keyword arguments replace ``data.*`` values.
    """

    def make(
        frame: pd.DataFrame | str | bytes | None,
        *,
        overrides: list[str] | None = None,
        filename: str = "series.csv",
        **data: Any,
    ) -> DictConfig:
        path = tmp_path / "input" / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(frame, pd.DataFrame):
            frame.to_csv(path, index=False)
        elif isinstance(frame, str):
            path.write_text(frame, encoding="utf-8")
        elif isinstance(frame, bytes):
            path.write_bytes(frame)
        return make_config(["data=csv", *(overrides or [])], data={"path": str(path), **data})

    return make


@pytest.fixture
def untrained_model_dir(tmp_path: Path) -> Callable[..., Path]:
    """``untrained_model_dir(["model=gru", ...])`` -> a model directory as train writes it
    (config, metadata with the scaler, weights) for data prepared from the composed config,
    with freshly initialised weights: real shapes and preprocessing, no training time."""
    from rnnlab.data import prepare_task_data
    from rnnlab.model_store import save_trained
    from rnnlab.paths import RunPaths
    from rnnlab.tasks import get_task

    def make(overrides: list[str] | None = None, name: str = "job", **sections: Any) -> Path:
        import torch

        cfg = make_config(["experiment=quick", *(overrides or [])], **sections)
        paths = RunPaths(tmp_path / name)
        prepare_task_data(cfg, paths)
        task = get_task(cfg.task.name)
        torch.manual_seed(cfg.seed)
        meta = task.load_data(cfg, paths).meta
        paths.model_dir.mkdir(parents=True)
        save_trained(paths.model_dir, cfg, meta, task.build_model(cfg, meta))
        return paths.model_dir

    return make
