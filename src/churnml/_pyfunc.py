"""The MLflow pyfunc wrapper of a :class:`~churnml.pipeline.ChurnPipeline` (imports MLflow)."""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd

SCORE_COLUMNS = [
    "customer_id", "as_of", "churn_probability", "p_alive", "expected_purchases", "expected_avg_spend",
    "predicted_clv", "value_at_risk",
]


class ChurnmlPyfunc(mlflow.pyfunc.PythonModel):
    """Scores raw transactions with the bundled pipeline.

    Input: a transaction log with ``customer_id, timestamp, amount`` (order lines are fine; they
    are validated and collapsed as in :mod:`churnml.io`). Params: ``as_of`` (date, default: the
    day after the last transaction). Output: one row per customer in scope, ``SCORE_COLUMNS``.
    """

    def load_context(self, context):
        import joblib

        self.pipeline = joblib.load(context.artifacts["pipeline"])

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None):
        from churnml.io import prepare_transactions

        tx, _ = prepare_transactions(pd.DataFrame(model_input), source="model input")
        as_of = (params or {}).get("as_of") or None
        out = self.pipeline.score(tx, as_of).reset_index()
        out["as_of"] = out["as_of"].astype(str)
        return out[SCORE_COLUMNS]
