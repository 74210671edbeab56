"""The MLflow model: a pyfunc that takes raw input and applies the saved preprocessing itself.

The artifact is the trained-model directory (config, metadata with the scaler, weights); the
task's ``predict_frame`` turns a raw table into predictions on the original scale. The model is
logged "from code" (``rnnlab/mlflow_model.py``), so loading it unpickles nothing: the weights are
read with ``weights_only=True``. The ``rnnlab`` source it was trained with travels with it
(MLflow ``code_paths``) and its pip requirements are rnnlab's own dependencies, so the model
loads where rnnlab is not installed (rnnlab is not on PyPI); where rnnlab is already imported,
that copy is used.

Bad input (``DataError``) is re-raised as ``InvalidModelInput``, an ``MlflowException`` with
``INVALID_PARAMETER_VALUE``: ``mlflow models serve`` answers it with HTTP 400 and the message,
and in-process callers can still catch it as a ``DataError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from rnnlab.errors import DataError
from rnnlab.model_store import CONFIG, META, WEIGHTS, load_trained

MODEL_CODE = Path(__file__).with_name("mlflow_model.py")


class InvalidModelInput(MlflowException, DataError):
    """Raw input the model cannot use; the scoring server turns it into HTTP 400."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


class RnnlabModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        from rnnlab.tasks import get_task

        self.trained = load_trained(Path(context.artifacts["model_dir"]))
        self.task = get_task(self.trained.cfg.task.name)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        try:
            return self.task.predict_frame(self.trained, pd.DataFrame(model_input))
        except DataError as err:
            raise InvalidModelInput(str(err)) from err


def log_pyfunc(tracking_uri: str, run_id: str, model_dir: Path, example: pd.DataFrame) -> None:
    """Log ``model_dir`` as the run's ``model``, with a signature and input example.

    Explicit pip requirements skip MLflow's slow dependency inference.
    """
    import shutil
    import tempfile
    import warnings

    from mlflow.models import infer_signature

    import rnnlab
    from rnnlab.tasks import get_task

    with tempfile.TemporaryDirectory() as scratch:
        code = Path(scratch) / "rnnlab"
        shutil.copytree(
            Path(rnnlab.__file__).parent, code, ignore=shutil.ignore_patterns("__pycache__")
        )
        bundle = Path(scratch) / "model_dir"
        bundle.mkdir()
        for name in (WEIGHTS, CONFIG, META):  # not the Lightning checkpoint: weights only
            shutil.copy2(model_dir / name, bundle / name)
        trained = load_trained(bundle)
        output = get_task(trained.cfg.task.name).predict_frame(trained, example)
        with warnings.catch_warnings():
            # MLflow hints that integer columns cannot hold missing values; ours (forecast step,
            # token ids) never do, and a missing value in the input is refused by the task.
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            signature = infer_signature(example, output)
        with _active_run(tracking_uri, run_id):
            mlflow.pyfunc.log_model(
                name="model",
                python_model=str(MODEL_CODE),
                artifacts={"model_dir": str(bundle)},
                signature=signature,
                input_example=example,
                code_paths=[str(code)],
                pip_requirements=pip_requirements(),
            )


@contextmanager
def _active_run(tracking_uri: str, run_id: str) -> Iterator[None]:
    """``run_id`` as the active run of MLflow's fluent ``log_model``, and nothing more: the
    process-wide tracking URI is put back afterwards, and the run stays RUNNING (``with
    start_run`` would end it FINISHED while training is still logging, and a kill then would
    leave a FINISHED run with half its results)."""
    from rnnlab.tracking import process_tracking_uri

    with process_tracking_uri(tracking_uri):
        mlflow.start_run(run_id=run_id)
        try:
            yield
        finally:
            mlflow.end_run(status="RUNNING")


def pip_requirements() -> list[str]:
    """rnnlab's declared dependencies, with torch pinned to the version that trained the model."""
    from importlib.metadata import requires

    import torch
    from packaging.requirements import Requirement

    pinned = f"torch=={torch.__version__.split('+')[0]}"
    declared = [Requirement(r) for r in requires("rnnlab") or []]
    runtime = [str(r) for r in declared if r.marker is None and r.name != "torch"]
    return [pinned, *runtime]
