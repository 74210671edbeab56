"""`trainer.max_time`: a wall-clock budget honoured by every task; the run then ends normally."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from rnnlab.config import max_time
from rnnlab.errors import ConfigError
from rnnlab.io import read_json
from rnnlab.lightning.module import cosine_factor
from rnnlab.paths import RunPaths
from rnnlab.pipeline import run_pipeline


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("trainer.max_time=00:00:10:00", timedelta(minutes=10)),
        ("trainer.max_time={minutes:1,seconds:30}", timedelta(seconds=90)),
        ("trainer.max_time=45", timedelta(seconds=45)),
        ("trainer.max_time=null", None),
    ],
)
def test_max_time_forms_are_read_as_durations(compose_cfg, value, expected) -> None:
    assert max_time(compose_cfg([value]).trainer) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("trainer.max_time=10min", "not a duration; write it as DD:HH:MM:SS"),
        ("trainer.max_time=00:10:00", "not a duration"),
        ("trainer.max_time={mins:10}", "not a duration"),
        ("trainer.max_time=0", "must be a positive duration"),
    ],
)
def test_a_malformed_budget_is_refused_before_any_work(compose_cfg, value, message) -> None:
    with pytest.raises(ConfigError, match=message):
        compose_cfg([value])


@pytest.mark.parametrize(
    "overrides",
    [
        ["task=lm", "data=pydoc_topics", "data.max_chars=60000", "task.bptt=16"],
        ["task=classify", "data=japanese_vowels", "trainer.batch_size=8"],
    ],
    ids=["lm", "classify"],
)
def test_a_run_stopped_by_its_budget_evaluates_its_best_checkpoint(
    tmp_path, compose_cfg, overrides
) -> None:
    cfg = compose_cfg(
        [
            *overrides,
            "logger=none",
            "experiment=quick",
            "trainer.max_epochs=1000",
            "trainer.max_time=1",
            "trainer.grad_flow_batches=0",
            "trainer.scheduler.name=cosine",
        ]
    )
    result = run_pipeline(cfg, RunPaths(tmp_path))
    train = read_json(tmp_path / "metrics" / "train.json")
    assert 1 <= train["epochs"] < 1000
    assert result["train"]["train_seconds"] < 30  # timings stay out of the hashed metrics file
    assert result["evaluate"]["test"]["model"]
    assert (tmp_path / "models").is_dir()
    # the cosine schedule followed the time budget, not the 1000 epochs: it has decayed
    last_lr = pd.read_csv(tmp_path / "plots" / "learning_curve.csv")["lr"].iloc[-1]
    assert last_lr < 0.2 * cfg.trainer.optimizer.lr


def test_cosine_schedule_warms_up_then_decays_to_zero() -> None:
    progress = np.linspace(0, 1, 101)
    factors = np.array([cosine_factor(p, warmup=0.1) for p in progress])
    assert factors[0] == pytest.approx(0.01) and factors[10] == pytest.approx(1.0)
    assert np.all(np.diff(factors[:11]) > 0) and np.all(np.diff(factors[10:]) < 0)
    assert factors[-1] == pytest.approx(0.0) and factors[55] == pytest.approx(0.5)
    assert cosine_factor(0.0, warmup=0.0) == 1.0


@pytest.mark.parametrize(("scheduler", "epochs"), [("none", 2), ("cosine", 4)])
def test_early_stopping_waits_for_the_second_half_of_a_cosine_schedule(
    tmp_path, quick_cfg, scheduler, epochs
) -> None:
    """A model that cannot improve (learning rate 0), patience 1, 6 epochs: without a schedule
    it stops after epoch 2; with a cosine schedule early stopping starts watching half-way
    (epoch 3 sets the best) and stops after epoch 4, not in the high-learning-rate half."""
    cfg = quick_cfg(
        "logger=none",
        "trainer.max_epochs=6",
        "trainer.optimizer.lr=0",
        "trainer.early_stopping_patience=1",
        f"trainer.scheduler.name={scheduler}",
    )
    run_pipeline(cfg, RunPaths(tmp_path))
    assert read_json(tmp_path / "metrics" / "train.json")["epochs"] == epochs
