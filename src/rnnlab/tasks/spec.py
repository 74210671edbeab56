"""The task contract: one ``TaskSpec`` per task, the only place anything is keyed by task name.

Config validation, prepare, train, evaluate, batch prediction, the Hydra app and the report all
look a task up here. Torch-free, so ``prepare`` and config checks start fast: the preparer and
the ``Task`` class are named as import paths and imported only when a stage needs them.

Built-in tasks register in ``rnnlab/tasks/__init__.py``; another package (or a test) registers
its own with ``register(TaskSpec(...))`` and ships its ``conf/task`` and ``conf/data`` files on
Hydra's search path (``hydra.searchpath=[file:///path/to/conf]``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, is_dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

from rnnlab.errors import ConfigError

if TYPE_CHECKING:
    from rnnlab.tasks.base import Task

# Where every task's evaluation puts the model's own test scores (see ``Evaluation``).
MODEL_SCORES = ("test", "model")


@dataclass(frozen=True)
class Metric:
    """A test score of the model, logged to MLflow as ``test/model/<name>``."""

    name: str
    higher_is_better: bool = False

    @property
    def key(self) -> str:
        return "/".join((*MODEL_SCORES, self.name))


@dataclass
class NoEvaluateSettings:
    """The ``evaluate:`` section of a task whose evaluation has no settings of its own."""


@dataclass(frozen=True)
class TaskSpec:
    """Everything the generic stages need to know about one task.

    ``metrics`` lists the model's test scores, headline first; a task whose headline depends on
    its data (longrange: ``mse`` for adding, ``cross_entropy`` for copy) lists the alternatives
    in order, and the report ranks by the first one its runs have.
    """

    name: str
    task_schema: type  # dataclass of the ``task:`` section; its ``name`` default is ``name``
    data_schema: type  # dataclass of the ``data:`` section
    preparer: str  # torch-free module with ``prepare(cfg, paths) -> summary``
    task_class: str  # "module:Class" of a ``rnnlab.tasks.base.Task`` subclass
    metrics: tuple[Metric, ...]
    # dataclass of the ``evaluate:`` section (conf/evaluate/<name>.yaml): settings only the
    # evaluate stage reads, so changing them re-runs evaluate alone.
    evaluate_schema: type = NoEvaluateSettings

    def __post_init__(self) -> None:
        for schema in (self.task_schema, self.data_schema, self.evaluate_schema):
            if not (isinstance(schema, type) and is_dataclass(schema)):
                raise TypeError(f"Task {self.name!r}: {schema!r} is not a dataclass schema.")
        names = {f.name: f.default for f in fields(self.task_schema)}
        if names.get("name") != self.name:
            raise TypeError(
                f"Task {self.name!r}: its task schema needs `name: str = {self.name!r}`."
            )
        if "monitor" not in names:
            raise TypeError(f"Task {self.name!r}: its task schema needs a `monitor` field.")
        if ":" not in self.task_class:
            raise TypeError(f"Task {self.name!r}: task_class must be 'module:Class'.")
        if not self.metrics:
            raise TypeError(f"Task {self.name!r}: name at least one metric, headline first.")

    @property
    def headline(self) -> Metric:
        return self.metrics[0]

    def prepare(self, cfg: Any, paths: Any) -> dict[str, Any]:
        """Run the task's preparer: ``data/raw`` and ``data/prepared`` for ``cfg``."""
        preparer: Callable[..., dict[str, Any]] = import_module(self.preparer).prepare
        return preparer(cfg, paths)

    def load_task(self) -> Task:
        """An instance of the task's class, checked to implement the ``Task`` contract."""
        from rnnlab.tasks.base import Task

        module, cls_name = self.task_class.split(":")
        cls = getattr(import_module(module), cls_name)
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise TypeError(f"{self.task_class} is not a subclass of rnnlab.tasks.base.Task.")
        return cls()

    def model_scores(self, evaluation_metrics: dict[str, Any]) -> dict[str, float]:
        """The model's test scores out of an evaluation's nested metrics, checked to hold the
        headline (or one of its alternatives)."""
        node: Any = evaluation_metrics
        for key in MODEL_SCORES:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or not any(m.name in node for m in self.metrics):
            raise TypeError(
                f"Task {self.name!r}: evaluate() must return metrics shaped "
                f"{{'test': {{'model': {{{self.headline.name!r}: ..., ...}}}}}}."
            )
        return node


TASK_SPECS: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> TaskSpec:
    """Make ``spec`` known to every stage; registering the same name again replaces it."""
    TASK_SPECS[spec.name] = spec
    return spec


def get_spec(name: str) -> TaskSpec:
    if name not in TASK_SPECS:
        raise ConfigError(
            f"task.name={name!r} is not a known task; choose one of {sorted(TASK_SPECS)} "
            f"(for example `task=forecast`)."
        )
    return TASK_SPECS[name]


def higher_is_better(metric: str, tasks: Iterable[str] = ()) -> bool:
    """Whether a higher ``metric`` (``test/<model or baseline>/<name>``) is better, as the specs
    of ``tasks`` (else of every task) declare it; undeclared names are losses and errors."""
    name = metric.rsplit("/", 1)[-1]
    specs = [TASK_SPECS[t] for t in tasks if t in TASK_SPECS] or list(TASK_SPECS.values())
    return any(m.name == name and m.higher_is_better for s in specs for m in s.metrics)
