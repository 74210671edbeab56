"""The same config on whatever hardware is there: CPU here, GPU and multi-process elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pytorch_lightning.accelerators import CPUAccelerator

from rnnlab.io import read_json
from rnnlab.lightning.trainer import build_trainer
from rnnlab.paths import RunPaths
from rnnlab.pipeline import run_pipeline

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_accelerator_auto_falls_back_to_cpu(tmp_path: Path, quick_cfg) -> None:
    trainer, _ = build_trainer(quick_cfg().trainer, tmp_path, logger=False)
    assert isinstance(trainer.accelerator, CPUAccelerator)


@pytest.mark.slow
def test_ddp_spawn_on_two_cpu_processes_writes_one_model(tmp_path: Path, quick_cfg) -> None:
    cfg = quick_cfg("logger=none", "trainer=ddp", "trainer.accelerator=cpu", "trainer.max_epochs=2")
    result = run_pipeline(cfg, RunPaths(tmp_path))
    assert result["train"]["epochs"] == 2
    assert result["evaluate"]["test"]["model"]["mase"] > 0
    assert read_json(tmp_path / "metrics/train.json")["epochs"] == 2


@needs_cuda
@pytest.mark.gpu
def test_gpu_mixed_precision_trains_and_reloads_on_cpu(tmp_path: Path, quick_cfg) -> None:
    cfg = quick_cfg("logger=none", "trainer=gpu", "trainer.max_epochs=2")
    assert cfg.trainer.precision == "16-mixed"
    result = run_pipeline(cfg, RunPaths(tmp_path))
    assert result["evaluate"]["test"]["model"]["mase"] > 0
    state = torch.load(tmp_path / "models/model.pt", map_location="cpu", weights_only=True)
    assert all(t.device.type == "cpu" for t in state.values())
