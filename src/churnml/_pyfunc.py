"""The MLflow pyfunc wrapper of a :class:`~churnml.pipeline.ChurnPipeline` (imports MLflow)."""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd

SCORE_COLUMNS = [
    "customer_id", "as_of", "churn_probability", "p_alive", "expected_purchases", "expected_avg_spend",
    "predicted_clv", "value_if_retained", "value_at_risk",
]


class ChurnmlPyfunc(mlflow.pyfunc.PythonModel):
    """Scores raw transactions with the bundled pipeline.

    Input: a transaction log with ``customer_id, timestamp, amount`` (order lines are fine; they
    are validated and collapsed as in :mod:`churnml.io`); a model trained with static customer
    attributes takes them as extra columns (the first value per customer is used). Params: ``as_of`` (date, default: the
    day after the last transaction). Output: one row per customer in scope, ``SCORE_COLUMNS``.
    """

    def load_context(self, context):
        import joblib

        self.pipeline = joblib.load(context.artifacts["pipeline"])

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None):
        from churnml.io import prepare_transactions

        df = pd.DataFrame(model_input)
        base = ["customer_id", "timestamp", "amount"]
        tx, _ = prepare_transactions(df[base], source="model input")
        extra = [c for c in df.columns if c not in base]
        customers = None
        if extra:  # static customer attributes given as extra columns: first value per customer
            customers = df.groupby(df["customer_id"].astype(str))[extra].first()
            customers.index.name = "customer_id"
        as_of = (params or {}).get("as_of") or None
        out = self.pipeline.score(tx, as_of, customers=customers).reset_index()
        out["as_of"] = out["as_of"].astype(str)
        return out[SCORE_COLUMNS]
