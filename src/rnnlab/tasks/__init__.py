"""Tasks: the built-in registrations (the one place each task is named) and ``get_task``.

Torch-free on import: a task's code loads when a stage asks for it (``TaskSpec.load_task``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rnnlab.config import (
    ASRDataConfig,
    ASREvaluateConfig,
    ASRTaskConfig,
    ClassifyDataConfig,
    ClassifyTaskConfig,
    ForecastDataConfig,
    ForecastTaskConfig,
    LMDataConfig,
    LMEvaluateConfig,
    LMTaskConfig,
    LongRangeDataConfig,
    LongRangeTaskConfig,
    Seq2SeqDataConfig,
    Seq2SeqEvaluateConfig,
    Seq2SeqTaskConfig,
)
from rnnlab.tasks.spec import TASK_SPECS, Metric, TaskSpec, get_spec, register

if TYPE_CHECKING:
    from rnnlab.tasks.base import Task

__all__ = ["TASK_SPECS", "Metric", "TaskSpec", "get_spec", "get_task", "register"]

HIGHER = {"higher_is_better": True}

register(
    TaskSpec(
        name="forecast",
        task_schema=ForecastTaskConfig,
        data_schema=ForecastDataConfig,
        preparer="rnnlab.data.forecast",
        task_class="rnnlab.tasks.forecast:ForecastTask",
        metrics=(
            Metric("mase"),
            Metric("mae"),
            Metric("mse"),
            Metric("rmse"),
            Metric("smape"),
            Metric("mse_z"),  # on the scaled series: the long-horizon literature's figures
            Metric("mae_z"),
            Metric("skill_vs_seasonal_naive", **HIGHER),
        ),
    )
)
register(
    TaskSpec(
        name="longrange",
        task_schema=LongRangeTaskConfig,
        data_schema=LongRangeDataConfig,
        preparer="rnnlab.data.longrange",
        task_class="rnnlab.tasks.longrange:LongRangeTask",
        # The headline depends on the problem: mse (adding) or cross_entropy (copy).
        metrics=(
            Metric("mse"),
            Metric("cross_entropy"),
            Metric("skill_vs_baseline", **HIGHER),
            Metric("recall_accuracy", **HIGHER),
        ),
    )
)
register(
    TaskSpec(
        name="classify",
        task_schema=ClassifyTaskConfig,
        data_schema=ClassifyDataConfig,
        preparer="rnnlab.data.classify",
        task_class="rnnlab.tasks.classify:ClassifyTask",
        metrics=(Metric("accuracy", **HIGHER), Metric("macro_f1", **HIGHER)),
    )
)
register(
    TaskSpec(
        name="lm",
        task_schema=LMTaskConfig,
        data_schema=LMDataConfig,
        preparer="rnnlab.data.lm",
        task_class="rnnlab.tasks.lm:LanguageModelTask",
        evaluate_schema=LMEvaluateConfig,
        metrics=(Metric("bpc"), Metric("loss"), Metric("perplexity")),
    )
)
register(
    TaskSpec(
        name="seq2seq",
        task_schema=Seq2SeqTaskConfig,
        data_schema=Seq2SeqDataConfig,
        preparer="rnnlab.data.seq2seq",
        task_class="rnnlab.tasks.seq2seq:Seq2SeqTask",
        evaluate_schema=Seq2SeqEvaluateConfig,
        metrics=(
            Metric("exact_match", **HIGHER),
            Metric("token_accuracy", **HIGHER),
            Metric("bleu", **HIGHER),
            Metric("exact_match_longest", **HIGHER),
        ),
    )
)

register(
    TaskSpec(
        name="asr",
        task_schema=ASRTaskConfig,
        data_schema=ASRDataConfig,
        preparer="rnnlab.data.asr",
        task_class="rnnlab.tasks.asr:ASRTask",
        evaluate_schema=ASREvaluateConfig,
        metrics=(Metric("cer"), Metric("wer")),
    )
)


def get_task(name: str) -> Task:
    """The task class's instance for ``task.name``."""
    return get_spec(name).load_task()
