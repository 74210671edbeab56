"""The default model must earn its place: it beats the seasonal-naive forecast on CO2."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnlab.config import compose, validate
from rnnlab.paths import RunPaths
from rnnlab.pipeline import run_pipeline


@pytest.mark.slow
def test_default_lstm_beats_seasonal_naive_on_co2(tmp_path: Path) -> None:
    cfg = validate(compose(["logger=none"]))
    test = run_pipeline(cfg, RunPaths(tmp_path))["evaluate"]["test"]
    assert test["model"]["mase"] < 1.0
    assert test["model"]["mae"] < 0.5 * test["seasonal_naive"]["mae"]
    assert test["model"]["mae"] < test["naive"]["mae"]
