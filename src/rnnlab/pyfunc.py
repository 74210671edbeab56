"""The MLflow model: a pyfunc that takes raw input and applies the saved preprocessing itself.

The artifact is the trained-model directory (config, metadata with the scaler, weights); the
task's ``predict_frame`` turns a raw table into predictions on the original scale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from rnnlab.model_store import CONFIG, META, WEIGHTS, load_trained


class RnnlabModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        from rnnlab.tasks import get_task

        self.trained = load_trained(Path(context.artifacts["model_dir"]))
        self.task = get_task(self.trained.cfg.task.name)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return self.task.predict_frame(self.trained, pd.DataFrame(model_input))


def log_pyfunc(tracking_uri: str, run_id: str, model_dir: Path, example: pd.DataFrame) -> None:
    """Log ``model_dir`` as the run's ``model``, with a signature and input example.

    Explicit pip requirements skip MLflow's slow dependency inference.
    """
    import shutil
    import tempfile

    import torch
    from mlflow.models import infer_signature

    from rnnlab.tasks import get_task

    with tempfile.TemporaryDirectory() as scratch:
        bundle = Path(scratch) / "model_dir"
        bundle.mkdir()
        for name in (WEIGHTS, CONFIG, META):  # not the Lightning checkpoint: weights only
            shutil.copy2(model_dir / name, bundle / name)
        trained = load_trained(bundle)
        output = get_task(trained.cfg.task.name).predict_frame(trained, example)
        mlflow.set_tracking_uri(tracking_uri)
        with mlflow.start_run(run_id=run_id):
            mlflow.pyfunc.log_model(
                name="model",
                python_model=RnnlabModel(),
                artifacts={"model_dir": str(bundle)},
                signature=infer_signature(example, output),
                input_example=example,
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "rnnlab"],
            )
