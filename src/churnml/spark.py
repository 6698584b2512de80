"""Distributed scoring on Apache Spark (optional extra: ``pip install churnml[spark]``).

Spark reads the transaction Parquet, maps the columns as the config says, collapses order lines,
matches cancellations (the rule of :func:`churnml.io.prepare_transactions`), drops the rows
cancelled before the cutoff, and computes the per-customer aggregates of the snapshot features
(counts, sums, first/last purchase, distinct purchase days, gaps between them, windows, trends,
returns) with the DataFrame API. Each partition of aggregates then goes through ``mapInPandas`` into the same registered
pipeline: :func:`churnml.features.features_from_aggregates` (the one source of the feature
formulas), the BTYD outputs, the churn model and the value model. Scores are written as Parquet
partitions. Population-level columns (tiers, RFM quintiles, reasons) are left to the pandas job.

Not supported yet on Spark: the customer-events table (``data.events``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from churnml.config import Config
from churnml.errors import DataError
from churnml.features import features_from_aggregates

__all__ = ["SPARK_SCORE_COLUMNS", "local_session", "score_spark", "spark_aggregates", "spark_cancellations", "spark_transactions"]

DAY_US = 86_400_000_000
SPARK_SCORE_COLUMNS = [
    "customer_id", "churn_probability", "p_alive", "expected_purchases", "expected_avg_spend", "predicted_clv", "value_if_retained",
    "value_at_risk",
]


def local_session(master: str | None = None, app: str = "churnml"):
    """A Spark session with UTC time: ``master`` as given, else what spark-submit set, else pyspark's
    default (local[*]); on a local master the Python workers
    run this interpreter, so they see the same churnml, pandas and LightGBM."""
    import os
    import sys

    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master) if master else SparkSession.builder  # spark-submit sets it
    return (
        builder.appName(app)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )


def spark_transactions(spark, path: str, config: Config):
    """Canonical transactions (``customer_id`` string, ``us`` microseconds since the epoch,
    ``amount``, ``is_return``, ``cancelled_us``), one row per order, like
    :func:`churnml.io.prepare_transactions`; with ``returns: net`` cancellations are matched by the
    same rule (:func:`spark_cancellations`), ``cancelled_us`` is null elsewhere."""
    from pyspark.sql import functions as F

    cols = config.data.columns
    df = spark.read.parquet(str(path))
    need = [cols.customer_id, cols.timestamp] + [c for c in (cols.order_id, cols.amount, cols.quantity, cols.unit_price) if c]
    if cols.quantity and cols.unit_price:
        need = [c for c in need if c != cols.amount]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; the file has {df.columns}")
    cid = F.trim(F.col(cols.customer_id).cast("string"))
    ts = F.col(cols.timestamp).cast("timestamp")
    if cols.quantity and cols.unit_price:
        amount = F.col(cols.quantity).cast("double") * F.col(cols.unit_price).cast("double")
    elif cols.amount:
        amount = F.col(cols.amount).cast("double")
    else:
        amount = F.lit(0.0)
    lines = df.select(cid.alias("customer_id"), F.unix_micros(ts).alias("us"), amount.alias("amount"),
                      *( [F.coalesce(F.trim(F.col(cols.order_id).cast("string")), F.lit("")).alias("order_id")] if cols.order_id else []))
    lines = lines.filter(F.col("customer_id").isNotNull() & (F.col("customer_id") != ""))
    if config.data.returns == "drop":
        lines = lines.filter(F.col("amount") >= 0)
    keys = ["customer_id", "order_id"] if cols.order_id else ["customer_id", "us"]
    if cols.order_id:  # the order's latest line time, and what its lines before it add up to
        from pyspark.sql import Window

        lines = lines.withColumn("_umax", F.max("us").over(Window.partitionBy(*keys)))
        before = F.sum(F.when(F.col("us") < F.col("_umax"), F.col("amount")).otherwise(F.lit(0.0)))
    else:
        before = F.lit(0.0)
    orders = lines.groupBy(*keys).agg(F.min("us").alias("us_min"), F.max("us").alias("_last"), F.sum("amount").alias("amount"),
                                      F.min("amount").alias("_min"), before.alias("_before"))
    orders = orders.select(*keys, F.col("us_min").alias("us"), "amount", "_min", "_last", "_before") if cols.order_id else (
        orders.select("customer_id", F.col("us_min").alias("us"), "amount", "_min", "_last", "_before")
    )
    # cancelled inside the order: a negative line and a net amount of zero to the cent
    zero_net = (F.col("_min") < 0) & (F.bround(F.abs(F.col("amount")) * F.lit(100.0), 0) == 0)
    if config.data.returns == "net":
        orders = orders.withColumn("_zero", zero_net)
        orders = orders.withColumn("is_return", (F.col("amount") < 0) & ~F.col("_zero")).drop("_min")
        orders = spark_cancellations(orders, keys)
        orders = spark_multi_order_cancellations(orders, keys, config.data.cancel_window_days)
        # cancelled when it became zero (its latest line); until then it stands at its earlier lines' net
        orders = orders.withColumn("cancelled_us", F.when(F.col("_zero"), F.col("_last")).otherwise(F.col("cancelled_us")))
        spans = F.col("_zero") & (F.col("_last") > F.col("us"))
        orders = orders.withColumn("amount", F.when(spans, F.greatest(F.col("_before"), F.lit(0.0))).otherwise(F.col("amount")))
    else:
        orders = orders.withColumn("is_return", F.col("amount") < 0).drop("_min")
        orders = orders.withColumn("cancelled_us", F.lit(None).cast("long"))
    return orders.select("customer_id", "us", "amount", "is_return", "cancelled_us")


def spark_cancellations(orders, keys: list[str]):
    """``orders`` plus ``cancelled_us``: :func:`churnml.io.prepare_transactions`' cancellation
    matching with window functions (``keys`` identify an order). Per customer and amount in cents,
    in time order with purchases first, a return closes the latest open purchase like a
    parenthesis: the stack depth is the running sum reflected at 0 and a purchase that raises it
    to ``h`` pairs with the next event at level ``h``, which is its return."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    o = orders.withColumn("_cents", F.bround(F.abs(F.col("amount")) * F.lit(100.0), 0))
    groups = o.filter(F.col("is_return")).select("customer_id", "_cents").distinct()
    cand = o.join(groups, ["customer_id", "_cents"], "left_semi")
    tie = [k for k in keys if k not in ("customer_id", "us")]
    order = [F.col("us"), F.col("is_return"), *[F.col(k) for k in tie]]
    w = Window.partitionBy("customer_id", "_cents").orderBy(*order)
    running = w.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    step = F.when(F.col("is_return"), F.lit(-1)).otherwise(F.lit(1))
    c = cand.withColumn("_s", F.sum(step).over(running))
    c = c.withColumn("_d", F.col("_s") - F.least(F.min("_s").over(running), F.lit(0)))
    c = c.withColumn("_db", F.coalesce(F.lag("_d").over(w), F.lit(0)))
    c = c.filter(~F.col("is_return") | (F.col("_db") > 0))
    c = c.withColumn("_lvl", F.when(F.col("is_return"), F.col("_db")).otherwise(F.col("_d")))
    w2 = Window.partitionBy("customer_id", "_cents", "_lvl").orderBy(*order)
    nxt = {k: F.lead(k).over(w2) for k in ["is_return", "us", *tie]}
    pairs = c.select("customer_id", "is_return", *keys[1:], *[v.alias(f"_next_{k}") for k, v in nxt.items()])
    pairs = pairs.filter(~F.col("is_return") & F.col("_next_is_return"))
    purchase_side = pairs.select("customer_id", *keys[1:], F.col("_next_us").alias("cancelled_us"))
    return_side = pairs.select(
        "customer_id", *[F.col(f"_next_{k}").alias(k) for k in keys[1:]], F.col("_next_us").alias("cancelled_us")
    )
    marks = purchase_side.unionByName(return_side)
    return o.join(marks, keys, "left").drop("_cents")


def spark_multi_order_cancellations(orders, keys: list[str], window_days: float):
    """``orders`` (with ``cancelled_us`` of the one-order matches) with the credit notes that
    cancel several orders at once marked too (:func:`churnml.io.prepare_transactions` step 3):
    the same code (``churnml.io.match_multi_order``) runs on each customer with a return left
    unmatched, in a pandas UDF, and redoes that customer's matching where a set could match."""
    from pyspark.sql import functions as F

    from churnml.io import NAT, match_multi_order

    window_ns = int(round(float(window_days) * 86_400e9))
    todo = orders.filter(F.col("is_return") & F.col("cancelled_us").isNull()).select("customer_id").distinct()
    mine = orders.join(todo, ["customer_id"], "left_semi")
    rest = orders.join(todo, ["customer_id"], "left_anti")

    def match(pdf):
        pdf = pdf.sort_values("us", kind="stable").reset_index(drop=True)
        ts = pdf["us"].to_numpy(dtype=np.int64) * 1000
        cents = np.rint(np.abs(pdf["amount"].to_numpy(dtype=np.float64)) * 100.0).astype(np.int64)
        c = pdf["cancelled_us"]
        cancelled = np.where(c.isna(), NAT, c.fillna(0).to_numpy(dtype=np.int64) * 1000)
        out, _ = match_multi_order(np.zeros(len(pdf), dtype=np.int64), ts, cents,
                                    pdf["is_return"].to_numpy(dtype=bool), cancelled, window_ns)
        pdf["cancelled_us"] = pd.array(np.where(out == NAT, 0, out // 1000), dtype="Int64")
        pdf.loc[out == NAT, "cancelled_us"] = pd.NA
        return pdf

    matched = mine.groupBy("customer_id").applyInPandas(match, schema=mine.schema)
    return rest.unionByName(matched)


def spark_aggregates(tx, cut_us: int, config: Config):
    """Per-customer aggregates (``churnml.features.AGGREGATE_COLUMNS`` plus windows) of the orders
    strictly before the cutoff, for customers with at least one purchase."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    cfg = config.features
    t = tx.filter(F.col("us") < cut_us)
    if "cancelled_us" in tx.columns:  # rows cancelled before the cutoff never happened
        t = t.filter(F.col("cancelled_us").isNull() | (F.col("cancelled_us") >= cut_us))
    pur = t.filter(~F.col("is_return")).withColumn("day", F.floor(F.col("us") / F.lit(DAY_US)).cast("long"))
    tw = cfg.trend_window_days * DAY_US
    one = F.lit(1.0)
    zero = F.lit(0.0)
    p_aggs = [
        F.min("us").alias("first_us"), F.max("us").alias("last_us"), F.count(F.lit(1)).cast("double").alias("n_orders"),
        F.sum("amount").alias("total"), F.countDistinct("day").cast("double").alias("n_days"),
        F.min("day").alias("first_day"), F.max("day").alias("last_day"),
        F.sum(F.when(F.col("us") >= cut_us - tw, one).otherwise(zero)).alias("cnt_recent"),
        F.sum(F.when((F.col("us") >= cut_us - 2 * tw) & (F.col("us") < cut_us - tw), one).otherwise(zero)).alias("cnt_prior"),
    ] + [F.sum(F.when(F.col("us") >= cut_us - w * DAY_US, one).otherwise(zero)).alias(f"n_purchases_{w}d") for w in cfg.windows_days]
    agg_p = pur.groupBy("customer_id").agg(*p_aggs)
    first_total = (
        pur.join(agg_p.select("customer_id", "first_day"), "customer_id")
        .filter(F.col("day") == F.col("first_day"))
        .groupBy("customer_id").agg(F.sum("amount").alias("first_total"))
    )
    a_aggs = [
        F.sum("amount").alias("net"),
        F.sum(F.when(F.col("us") >= cut_us - tw, F.col("amount")).otherwise(zero)).alias("sp_recent"),
        F.sum(F.when((F.col("us") >= cut_us - 2 * tw) & (F.col("us") < cut_us - tw), F.col("amount")).otherwise(zero)).alias("sp_prior"),
        F.sum(F.when(F.col("is_return"), one).otherwise(zero)).alias("n_returns"),
        F.sum(F.when(F.col("is_return"), F.col("amount")).otherwise(zero)).alias("return_sum"),
    ] + [F.sum(F.when(F.col("us") >= cut_us - w * DAY_US, F.col("amount")).otherwise(zero)).alias(f"spend_{w}d") for w in cfg.windows_days]
    agg_a = t.groupBy("customer_id").agg(*a_aggs)
    days = pur.select("customer_id", "day").distinct()
    gap = F.col("day") - F.lag("day").over(Window.partitionBy("customer_id").orderBy("day"))
    gaps = days.withColumn("gap", gap.cast("double")).filter(F.col("gap").isNotNull()).groupBy("customer_id").agg(
        F.count(F.lit(1)).cast("double").alias("g_n"), F.sum("gap").alias("g_sum"), F.sum(F.col("gap") * F.col("gap")).alias("g_sq")
    )
    out = agg_p.join(first_total, "customer_id", "left").join(agg_a, "customer_id", "left").join(gaps, "customer_id", "left")
    return out.fillna(0.0, subset=["g_n", "g_sum", "g_sq", "first_total"])


def score_spark(pipe, config: Config, transactions: str | Path, out: str | Path, *, as_of=None, spark=None,
                customers: pd.DataFrame | None = None) -> int:
    """Score every customer in scope with the fitted pipeline on Spark; write Parquet partitions
    to ``out`` (a local folder is written beside it and renamed at the end, so a failed job leaves
    the old folder; ``hdfs://``/``s3a://`` paths use Spark's overwrite); return the number of customers."""
    import shutil
    import tempfile

    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    if config.data.events:
        raise DataError("the Spark engine does not support data.events yet; use the pandas engine")
    spark = spark or local_session()
    tx = spark_transactions(spark, str(transactions), config)
    if as_of is None:
        last_us = tx.agg(F.max("us")).first()[0]
        if last_us is None:
            raise DataError(f"{transactions}: no transactions")
        as_of = (pd.Timestamp(int(last_us) * 1000).normalize() + pd.Timedelta(days=1))
    as_of = pd.Timestamp(as_of)
    cut_ns = int(as_of.value)
    cut_us = cut_ns // 1000
    agg = spark_aggregates(tx, cut_us, config)
    fcfg = config.features
    lookback = config.churn.lookback_days
    attrs = customers

    def score_partition(frames):
        for pdf in frames:
            if pdf.empty:
                continue
            a = {c: pdf[c].to_numpy() for c in pdf.columns if c != "customer_id"}
            a["first_ns"] = pdf["first_us"].to_numpy(dtype=np.int64) * 1000
            a["last_ns"] = pdf["last_us"].to_numpy(dtype=np.int64) * 1000
            feats = pd.DataFrame(features_from_aggregates(a, cut_ns, fcfg), index=pd.Index(pdf["customer_id"].astype(str), name="customer_id"))
            if lookback:
                feats = feats.loc[feats["recency_days"] <= lookback]
            if attrs is not None and len(attrs.columns):
                feats = feats.join(attrs, how="left")
            scored = pipe.score_features(pipe.add_btyd(feats), as_of).reset_index()
            yield scored[SPARK_SCORE_COLUMNS]

    schema = StructType([StructField("customer_id", StringType())] + [StructField(c, DoubleType()) for c in SPARK_SCORE_COLUMNS[1:]])
    scores = agg.mapInPandas(score_partition, schema).withColumn("as_of", F.lit(str(as_of.date())))
    if "://" in str(out):  # a cluster file system (hdfs://, s3a://): Spark's own overwrite
        scores.write.mode("overwrite").parquet(str(out))
        return int(spark.read.parquet(str(out)).count())
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    shutil.rmtree(tmp)
    scores.write.mode("overwrite").parquet(str(tmp))
    n = spark.read.parquet(str(tmp)).count()
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return int(n)

