"""The code file of the logged MLflow model ("models from code").

``log_pyfunc`` passes this file's path as ``python_model``: MLflow copies it into the model and
runs it at load time, so loading the model imports rnnlab instead of unpickling an object.
"""

import mlflow

from rnnlab.pyfunc import RnnlabModel

mlflow.models.set_model(RnnlabModel())
