"""Shared by the token tasks (lm, seq2seq): which ``model=`` configs they can use, and how."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from rnnlab.errors import ConfigError
from rnnlab.models.names import RECURRENT_ARCHS


def recurrent_options(cfg: DictConfig, why_not_bidirectional: str) -> dict[str, Any]:
    """``RecurrentEncoder`` options from ``cfg.model``; other architectures are refused."""
    model, task = cfg.model, cfg.task.name
    if model.arch not in RECURRENT_ARCHS:
        raise ConfigError(
            f"task={task} runs on recurrent cells; model={model.name} (arch={model.arch}) is "
            f"not one. Use model=rnn, rnn_relu, lstm or gru."
        )
    if model.bidirectional:
        raise ConfigError(
            f"task={task} cannot use the bidirectional model={model.name}: "
            f"{why_not_bidirectional} Use model=lstm or gru."
        )
    if model.attention is not None:
        raise ConfigError(
            f"model.attention={model.attention} pools an encoder into one vector, which "
            f"task={task} does not do; use a model without it (e.g. model=lstm)"
            + (" and set task.attention for the decoder." if task == "seq2seq" else ".")
        )
    return {
        "hidden_size": model.hidden_size,
        "num_layers": model.num_layers,
        "cell": model.arch,
        "nonlinearity": model.nonlinearity,
        "dropout": model.dropout,
        "init": model.init,
    }
