"""The trained-model directory: config, metadata and weights, saved and loaded safely.

Weights are a plain ``state_dict`` read with ``torch.load(weights_only=True)``, so loading a
model never unpickles arbitrary objects; the network is rebuilt from the saved config.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from rnnlab.config import validate
from rnnlab.errors import DataError
from rnnlab.io import read_json, write_json

WEIGHTS, CONFIG, META = "model.pt", "config.yaml", "model_meta.json"


@dataclass
class TrainedModel:
    cfg: DictConfig
    meta: dict[str, Any]
    model: torch.nn.Module


def save_trained(
    directory: Path, cfg: DictConfig, meta: dict[str, Any], model: torch.nn.Module
) -> None:
    torch.save(model.state_dict(), directory / WEIGHTS)
    (directory / CONFIG).write_text(OmegaConf.to_yaml(cfg), encoding="utf-8")
    write_json(directory / META, meta)


def weights_sha256(directory: Path) -> str:
    """Identity of the trained model in ``directory``: the hash of its weights file."""
    return hashlib.sha256((directory / WEIGHTS).read_bytes()).hexdigest()


def load_trained(directory: Path) -> TrainedModel:
    """Rebuild the trained model from its directory alone."""
    from rnnlab.tasks import get_task

    if not (directory / WEIGHTS).exists():
        raise DataError(f"No trained model in {directory}; run the train stage first.")
    cfg = validate(OmegaConf.load(directory / CONFIG))
    meta = read_json(directory / META)
    model = get_task(cfg.task.name).build_model(cfg, meta)
    model.load_state_dict(torch.load(directory / WEIGHTS, map_location="cpu", weights_only=True))
    return TrainedModel(cfg, meta, model.eval())
