"""The one check that a task's model is a plain recurrent encoder, and its options.

The token tasks (lm, seq2seq) and the copy-memory probe need an output at every step from a
recurrent cell; ``mlp``, ``transformer`` and attention pooling summarise a sequence into one
vector instead.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from rnnlab.errors import ConfigError
from rnnlab.models.names import RECURRENT_ARCHS


def recurrent_options(cfg: DictConfig, why_not_bidirectional: str | None) -> dict[str, Any]:
    """``RecurrentEncoder`` options from ``cfg.model``; other models are refused with the reason.

    ``why_not_bidirectional`` says why the task refuses a bidirectional model; ``None`` allows
    one, and the options then include ``bidirectional``.
    """
    model, task = cfg.model, cfg.task.name
    if model.arch not in RECURRENT_ARCHS:
        raise ConfigError(
            f"task={task} needs per-step outputs of a recurrent cell; model={model.name} "
            f"(arch={model.arch}) is not one. Use model=rnn, rnn_relu, lstm or gru."
        )
    if model.attention is not None:
        raise ConfigError(
            f"model.attention={model.attention} pools an encoder into one vector, but "
            f"task={task} needs an output at every step; use a model without it (e.g. model=lstm)"
            + (" and set task.attention for the decoder." if task == "seq2seq" else ".")
        )
    options = {
        "hidden_size": model.hidden_size,
        "num_layers": model.num_layers,
        "cell": model.arch,
        "nonlinearity": model.nonlinearity,
        "dropout": model.dropout,
        "init": model.init,
    }
    if why_not_bidirectional is None:
        return {**options, "bidirectional": model.bidirectional}
    if model.bidirectional:
        raise ConfigError(
            f"task={task} cannot use the bidirectional model={model.name}: "
            f"{why_not_bidirectional} Use model=lstm or gru."
        )
    return options
