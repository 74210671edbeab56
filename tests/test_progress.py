"""Runs say what they are doing outside a terminal: data summary, progress within an epoch,
and none of the known noise (each silenced by its exact message, real messages kept)."""

from __future__ import annotations

import logging

from rnnlab.lightning import callbacks
from rnnlab.paths import RunPaths
from rnnlab.pipeline import run_pipeline


def test_a_non_terminal_run_reports_data_and_progress_without_noise(
    tmp_path, compose_cfg, monkeypatch, capsys, caplog, recwarn
) -> None:
    monkeypatch.setattr(callbacks, "HEARTBEAT_SECONDS", 0.0)  # every step, instead of every 20 s
    cfg = compose_cfg(
        [
            "task=lm",
            "data=pydoc_topics",
            "data.max_chars=30000",
            "task.bptt=16",
            "trainer.batch_size=8",
            "experiment=quick",
            "logger=none",
            "trainer.grad_flow_batches=0",
        ]
    )
    with caplog.at_level(logging.INFO):
        run_pipeline(cfg, RunPaths(tmp_path))
    out = capsys.readouterr().out
    assert "data: pydoc_topics for task=lm; train " in out and "batches of 8 per epoch" in out
    assert "  vocab: " in out and "  tokens: train 27,000, val 1,500, test 1,500" in out
    steps = [line for line in out.splitlines() if " step " in line]
    assert steps and all("examples/s" in line and "epoch ETA" in line for line in steps)
    assert "step 1/" in steps[0] and "train_loss=" in steps[0]
    assert "Tip:" not in caplog.text and "limit_train_batches" not in caplog.text
    assert "`Trainer.fit` stopped: `max_epochs=2` reached" in caplog.text  # real news stays
    assert not [w for w in recwarn if "LeafSpec" in str(w.message)]
