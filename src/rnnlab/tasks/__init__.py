"""Task registry: each task knows its data, its model head, its loss and its evaluation."""

from __future__ import annotations

from importlib import import_module

from rnnlab.errors import ConfigError
from rnnlab.tasks.base import Evaluation, Task, TaskData

__all__ = ["TASKS", "Evaluation", "Task", "TaskData", "get_task"]

# task name -> "module:class"; imported lazily, each task pulls in its own dependencies.
TASKS: dict[str, str] = {
    "forecast": "rnnlab.tasks.forecast:ForecastTask",
    "lm": "rnnlab.tasks.lm:LanguageModelTask",
    "seq2seq": "rnnlab.tasks.seq2seq:Seq2SeqTask",
    "longrange": "rnnlab.tasks.longrange:LongRangeTask",
    "classify": "rnnlab.tasks.classify:ClassifyTask",
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError(f"Unknown task {name!r}; choose one of {sorted(TASKS)}.")
    module, cls = TASKS[name].split(":")
    return getattr(import_module(module), cls)()
