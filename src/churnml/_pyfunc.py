"""The MLflow pyfunc wrapper of a :class:`~churnml.pipeline.ChurnPipeline` (imports MLflow).

Input contract (one DataFrame, so any MLflow serving path can send it):

* transaction rows: the columns the training config maps (``data.columns``, e.g. CDNOW's
  ``date``/``dollar_value``, with ``data.timestamp_format``) or the canonical
  ``customer_id, timestamp, amount`` (optional ``order_id``; ``quantity`` + ``unit_price``
  instead of ``amount``). Order lines, returns (negative amounts) and cancellations are
  handled exactly as ``churnml score`` handles the same file (same config, same code); an
  ``is_return`` column is accepted and ignored (the sign of the amount decides);
* optional service-event rows: ``event_type`` (e.g. complaint, nps) and ``event_value`` set, the
  transaction columns ``customer_id`` and ``timestamp`` give who and when, the amount is empty;
* optional static customer attributes as extra columns (the first value per customer is used).

Params: ``as_of`` (date, default: the day after the last transaction). Output: one row per
customer in scope, :data:`SCORE_COLUMNS`, the same numbers as ``churnml score`` on the same data.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd

SCORE_COLUMNS = [
    "customer_id", "as_of", "churn_probability", "p_alive", "expected_purchases", "expected_avg_spend",
    "predicted_clv", "value_if_retained", "value_at_risk",
]
EVENT_TYPE = "event_type"
EVENT_VALUE = "event_value"
IGNORED = ("is_return",)


def _columns(df: pd.DataFrame, config):
    """The column mapping to use: the training config's when its names are present, else the
    canonical names; and the timestamp format that goes with it."""
    from churnml.config import ColumnsConfig

    cols = config.data.columns
    configured = [c for c in (cols.customer_id, cols.timestamp, cols.amount, cols.quantity, cols.unit_price, cols.order_id) if c]
    if all(c in df.columns for c in configured):
        return cols, config.data.timestamp_format
    has = lambda c: c if c in df.columns else None  # noqa: E731
    canonical = ColumnsConfig(
        order_id=has("order_id"), amount=has("amount"),
        quantity=has("quantity") if has("unit_price") else None, unit_price=has("unit_price") if has("quantity") else None,
    )
    return canonical, None


def split_model_input(df: pd.DataFrame, config) -> tuple[pd.DataFrame, Any, pd.DataFrame | None, pd.DataFrame | None]:
    """(prepared transactions, load report, customers table or None, events table or None) from a
    pyfunc input frame; see the module docstring."""
    from churnml.config import EventColumnsConfig
    from churnml.io import CUSTOMER_ID, normalise_ids, prepare_events, prepare_transactions

    df = pd.DataFrame(df).reset_index(drop=True)
    cols, fmt = _columns(df, config)
    if cols.customer_id in df.columns:  # one spelling per id across transactions, events and attributes
        df[cols.customer_id] = normalise_ids(df[cols.customer_id], source="model input", column=cols.customer_id, df=df)
    is_event = df[EVENT_TYPE].notna().to_numpy() if EVENT_TYPE in df.columns else None
    tx_cols = [c for c in (cols.customer_id, cols.timestamp, cols.order_id, cols.amount, cols.quantity, cols.unit_price) if c]
    tx_raw = df.loc[~is_event] if is_event is not None else df
    # the same reading rules as `churnml score` with this config (older pipelines' configs lack some keys)
    timezone = getattr(config.data, "timezone", None)
    tx, report = prepare_transactions(
        tx_raw[[c for c in tx_cols if c in df.columns]], columns=cols, timestamp_format=fmt,
        returns=config.data.returns, source="model input", timezone=timezone,
        **({"max_abs_amount": config.data.max_abs_amount} if hasattr(config.data, "max_abs_amount") else {}),
        **({"cancel_window_days": config.data.cancel_window_days} if hasattr(config.data, "cancel_window_days") else {}),
    )
    events = None
    if is_event is not None and is_event.any():
        ev_cols = EventColumnsConfig(customer_id=cols.customer_id, timestamp=cols.timestamp, type=EVENT_TYPE,
                                     value=EVENT_VALUE if EVENT_VALUE in df.columns else None)
        events = prepare_events(df.loc[is_event], columns=ev_cols, timestamp_format=fmt, timezone=timezone, source="model input")
    extra = [c for c in df.columns if c not in tx_cols and c not in (EVENT_TYPE, EVENT_VALUE, *IGNORED)]
    customers = None
    if extra:  # static customer attributes given as extra columns: first value per customer
        customers = df.groupby(df[cols.customer_id].astype("string").str.strip().astype(str))[extra].first()
        customers.index.name = CUSTOMER_ID
    return tx, report, customers, events


def input_schema(config, attributes: pd.DataFrame | None = None):
    """The MLflow input schema: every column :func:`split_model_input` reads, so MLflow's schema
    enforcement drops none of them (types are not enforced: ids may be numbers or text,
    timestamps text or datetimes, as in the files ``churnml score`` reads)."""
    from mlflow.types.schema import AnyType, ColSpec, Schema

    c = config.data.columns
    required = [x for x in (c.customer_id, c.timestamp, c.amount, c.quantity, c.unit_price) if x]
    optional = [x for x in (c.order_id, "customer_id", "timestamp", "amount", "order_id", "quantity", "unit_price", "is_return",
                            EVENT_TYPE, EVENT_VALUE) if x]
    if attributes is not None:
        optional += [str(x) for x in attributes.columns]
    names = list(dict.fromkeys(required + optional))
    # all optional: the input uses either the configured or the canonical names
    return Schema([ColSpec(AnyType(), n, required=False) for n in names])


class ChurnmlPyfunc(mlflow.pyfunc.PythonModel):
    """Scores raw transactions (plus optional events and attributes) with the bundled pipeline;
    see the module docstring for the input contract."""

    def load_context(self, context):
        import joblib

        self.pipeline = joblib.load(context.artifacts["pipeline"])

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None):
        pipe = self.pipeline
        tx, _, customers, events = split_model_input(model_input, pipe.config)
        as_of = (params or {}).get("as_of") or None
        from churnml.scoring import resolve_as_of

        as_of = resolve_as_of(tx, as_of)
        tx = tx.loc[tx["timestamp"] < as_of]
        out = pipe.score(tx, as_of, customers=customers, events=events).reset_index()
        out["as_of"] = out["as_of"].astype(str)
        return out[SCORE_COLUMNS]
