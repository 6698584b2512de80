"""MLflow "model from code" entry point: MLflow runs this file when it loads a churnml model, so
the model's Python object is built from churnml's code (shipped with the model as ``code_paths``)
instead of being unpickled with CloudPickle. The fitted pipeline itself is the ``pipeline``
artifact (joblib): load models only from a tracking server or folder you trust."""

import mlflow

from churnml._pyfunc import ChurnmlPyfunc

mlflow.models.set_model(ChurnmlPyfunc())
