"""Task registry: each task knows its data, its model head, its loss and its evaluation."""

from __future__ import annotations

from rnnlab.errors import ConfigError
from rnnlab.tasks.base import Evaluation, Task, TaskData

__all__ = ["Evaluation", "Task", "TaskData", "get_task"]


def get_task(name: str) -> Task:
    # Imported lazily: each task pulls in its own heavy dependencies.
    if name == "forecast":
        from rnnlab.tasks.forecast import ForecastTask

        return ForecastTask()
    raise ConfigError(f"Unknown task {name!r}; choose one of ['forecast'].")
