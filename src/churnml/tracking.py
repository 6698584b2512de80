"""MLflow logging and registry helpers. Nothing else in churnml imports MLflow.

Tracking URI: ``mlflow.tracking_uri`` from the config, else ``MLFLOW_TRACKING_URI``, else the
embedded store ``mlflow.db`` in the config file's folder (the working directory without a config
file), artifacts in ``mlruns/`` beside it. A tracking server (``http://host:port``) works the
same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from churnml.config import Config
from churnml.errors import ModelError

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "TrainResult",
    "configure",
    "export_model",
    "load_pipeline",
    "log_training",
    "promote",
    "resolve_tracking_uri",
    "tracking_uri_for",
    "run_cutoff_metrics",
]

CHALLENGER = "challenger"
CHAMPION = "champion"
PROMOTION_METRIC = "model_roc_auc_mean"


def resolve_tracking_uri(uri: str | None = None, base: str | Path | None = None) -> str:
    """The tracking URI to use: ``uri``, else ``MLFLOW_TRACKING_URI``, else the embedded store
    ``mlflow.db`` in ``base`` (default: the working directory)."""
    if uri:
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(base or Path.cwd()).resolve() / 'mlflow.db'}"


def tracking_uri_for(config: Config) -> str:
    """The tracking URI of a config (see the module docstring)."""
    return resolve_tracking_uri(config.mlflow.tracking_uri, config.base_dir)


def _set_experiment(name: str, uri: str) -> None:
    """Use experiment ``name``; a new one on a local SQLite store keeps its artifacts in
    ``mlruns/`` beside the database file (MLflow's default would be the working directory)."""
    import mlflow

    if uri.startswith("sqlite:///") and mlflow.get_experiment_by_name(name) is None:
        db = Path(uri[len("sqlite:///"):])
        if db.name and str(db) != ":memory:":
            mlflow.create_experiment(name, artifact_location=(db.resolve().parent / "mlruns").as_uri())
    mlflow.set_experiment(name)


def configure(config: Config) -> str:
    """Point MLflow at the configured store and experiment; return the tracking URI."""
    import logging

    import mlflow

    # MLflow's own INFO chatter (input-example validation, "creating a new version") is not for
    # the job's console; its warnings still show
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    uri = tracking_uri_for(config)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    _set_experiment(config.mlflow.experiment, uri)
    return uri


@dataclasses.dataclass
class TrainResult:
    """What :func:`log_training` produced."""

    run_id: str
    model_uri: str  # runs:/ or models:/ URI of the logged model
    registered_uri: str  # models:/NAME@challenger
    version: str
    tracking_uri: str
    training: dict = dataclasses.field(default_factory=dict)  # the churn model's training description


def _flat(prefix: str, d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.update(_flat(key, v))
        elif isinstance(v, list) and len(v) > 10:
            continue
        else:
            out[key] = v
    return out


def log_training(pipe, backtest, dataset, config: Config, *, clv_diagnostics=None) -> TrainResult:
    """Log one training run: params, metrics per backtest cutoff and averaged, data range and
    counts, plots, the backtest table, CLV diagnostics, and ONE pyfunc model (signature, input
    example) registered under ``mlflow.model_name`` with alias ``challenger``."""
    import joblib
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec

    from churnml._pyfunc import SCORE_COLUMNS, input_schema
    from churnml.churn import BASELINES
    from churnml.clv_diagnostics import plot_clv_diagnostics
    from churnml.plots import plot_backtest, plot_feature_importance

    uri = configure(config)
    name = config.mlflow.model_name
    tx = dataset.transactions
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        params = {
            "label": f"no purchase in [cutoff, cutoff + {config.churn.horizon_days} days)",
            "as_of": str(pipe.as_of.date()),
            "train_cutoffs": ",".join(pipe.training["train_cutoffs"]),
            "valid_cutoff": pipe.training["valid_cutoff"],
            "time_plan": pipe.training.get("time_plan", ""),
            "backtest_note": (pipe.training.get("backtest_note") or "")[:490],
            "best_iteration": pipe.training["best_iteration"],
            "chosen_scorer": pipe.churn_model.chosen_,
            "value_model": pipe.value_model.chosen_,
            "churnml_version": pipe.version,
            "categorical_features": ",".join(pipe.training.get("categorical_features") or []),
            "dropped_features": ",".join(pipe.training.get("dropped_features") or {}),
        }
        params.update(_flat("churn", config.churn.model_dump()))
        params.update(_flat("clv", config.clv.model_dump()))
        params["features.windows_days"] = ",".join(map(str, config.features.windows_days))
        mlflow.log_params({k: ("" if v is None else v) for k, v in params.items()})
        scored = pipe.score(tx, pipe.as_of, events=dataset.events, customers=dataset.customers).reset_index()
        mlflow.log_metrics(
            {
                "customers_in_scope": float(len(scored)),
                "customers_total": float(tx["customer_id"].nunique()),
                "transactions": float(len(tx)),
                "train_rows": float(pipe.training["train_rows"]),
                "valid_churn_rate": float(pipe.training["valid_churn_rate"]),
            }
        )
        mlflow.set_tags(
            {
                "data.first": str(tx["timestamp"].min()),
                "data.last": str(tx["timestamp"].max()),
                "data.source": dataset.report.source,
                "backtest": "none possible" if backtest is None else "ran",
            }
        )
        if backtest is not None:
            cutoffs = list(dict.fromkeys(backtest.per_cutoff.index.get_level_values("cutoff")))
            mlflow.log_param("backtest_cutoffs", ",".join(map(str, cutoffs)))  # step i of per-cutoff metrics = cutoff i
            for step, cut in enumerate(cutoffs):
                rows = backtest.per_cutoff.xs(cut, level="cutoff")
                mlflow.log_metrics(
                    {f"{s}_{m}": float(v) for s, r in rows.iterrows() for m, v in r.items() if pd.notna(v)}, step=step
                )
            mlflow.log_metrics(
                {f"{s}_{m}_mean": float(v) for s, r in backtest.summary.iterrows() for m, v in r.items() if pd.notna(v)}
            )
            backtest.per_cutoff.to_csv(tmpd / "backtest.csv")
            (tmpd / "backtest.json").write_text(json.dumps(backtest.to_dict(), indent=2, default=str))
            mlflow.log_artifact(str(tmpd / "backtest.csv"), "backtest")
            mlflow.log_artifact(str(tmpd / "backtest.json"), "backtest")
            for p in plot_backtest(backtest.predictions, ["model", *BASELINES], tmpd / "plots"):
                mlflow.log_artifact(str(p), "plots")
        mlflow.log_artifact(str(plot_feature_importance(pipe.churn_model.feature_importance(), tmpd / "plots" / "feature_importance.png")), "plots")
        if pipe.value_model.backtest_ is not None:
            pipe.value_model.backtest_.metrics.to_csv(tmpd / "value_backtest.csv")
            mlflow.log_artifact(str(tmpd / "value_backtest.csv"), "backtest")
        if clv_diagnostics is not None:
            for p in plot_clv_diagnostics(clv_diagnostics, tmpd / "clv"):
                mlflow.log_artifact(str(p), "clv")
        bundle = tmpd / "pipeline.joblib"
        joblib.dump(pipe, bundle)
        example = _input_example(tx, dataset)
        scored["as_of"] = scored["as_of"].astype(str)
        outputs = infer_signature(scored[SCORE_COLUMNS].head(20)).inputs
        signature = ModelSignature(input_schema(config, dataset.customers), outputs, ParamSchema([ParamSpec("as_of", "string", "")]))
        import churnml

        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(churnml.__file__).parent / "_pyfunc_model.py"),  # model from code: no CloudPickle
            artifacts={"pipeline": str(bundle)},
            signature=signature,
            input_example=example,
            pip_requirements=_requirements(),
            code_paths=[str(Path(churnml.__file__).parent)],  # the model loads where churnml is not installed
        )
        with contextlib.redirect_stderr(io.StringIO()):  # its "already exists / created version" lines: we print our own
            version = mlflow.register_model(info.model_uri, name)
        client = MlflowClient()
        client.set_registered_model_alias(name, CHALLENGER, version.version)
        client.set_model_version_tag(name, version.version, "run_id", run.info.run_id)
    return TrainResult(run.info.run_id, info.model_uri, f"models:/{name}@{CHALLENGER}", str(version.version), uri, pipe.training)


def _input_example(tx: pd.DataFrame, dataset) -> pd.DataFrame:
    """A few customers' transactions in the canonical input names (order ids when the log has
    them), their attributes and, when the model knows events, one event row."""
    few = tx["customer_id"].drop_duplicates().head(5)
    cols = ["customer_id", "timestamp", "amount"] + (["order_id"] if "order_id" in tx.columns else [])
    example = tx.loc[tx["customer_id"].isin(few), cols].copy()
    if dataset.events is not None and len(dataset.events):
        ev = dataset.events.head(1)
        rows = pd.DataFrame({"customer_id": ev["customer_id"].to_numpy(), "timestamp": ev["timestamp"].to_numpy(),
                             "event_type": ev["type"].to_numpy(), "event_value": ev["value"].to_numpy()})
        example = pd.concat([example, rows], ignore_index=True)
    if dataset.customers is not None:  # static attributes ride along as extra columns
        attrs = dataset.customers.copy()
        attrs.index = attrs.index.astype(str)
        example = example.join(attrs, on="customer_id")
    return example.reset_index(drop=True)


def _requirements() -> list[str]:
    """Pinned requirements of the logged model: churnml's runtime dependencies (churnml's own
    code travels with the model as ``code_paths``)."""
    from importlib.metadata import version

    pkgs = ["numpy", "pandas", "pyarrow", "scikit-learn", "scipy", "lightgbm", "lifetimes", "joblib", "pydantic", "pyyaml",
            "mlflow", "matplotlib", "openpyxl", "typer"]
    return [f"{p}=={version(p)}" for p in pkgs]


def load_pipeline(uri: str, *, tracking_uri: str | None = None):
    """Load a :class:`~churnml.pipeline.ChurnPipeline` from an exported ``.joblib`` bundle or
    any MLflow model URI (``models:/NAME@champion``, ``models:/NAME/3``, ``runs:/ID/model``,
    ``models:/m-...``). Raises :class:`ModelError` when it cannot be loaded."""
    path = Path(uri)
    if uri.endswith(".joblib"):
        if not path.is_file():
            raise ModelError(f"model bundle not found: {uri}")
        import joblib

        try:
            pipe = joblib.load(path)
        except Exception as err:  # noqa: BLE001
            raise ModelError(f"cannot load model bundle {uri}: {err}") from None
    else:
        import mlflow

        mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri))
        mlflow.set_registry_uri(resolve_tracking_uri(tracking_uri))
        try:
            model = mlflow.pyfunc.load_model(uri)
            pipe = model.unwrap_python_model().pipeline
        except Exception as err:  # noqa: BLE001
            raise ModelError(f"cannot load model {uri}: {type(err).__name__}: {str(err)[:300]}") from None
        pipe.model_version = _registry_version(uri) or uri
    from churnml.pipeline import ChurnPipeline

    if not isinstance(pipe, ChurnPipeline):
        raise ModelError(f"{uri} is not a churnml model (got {type(pipe).__name__})")
    return pipe


def _registry_version(uri: str) -> str | None:
    """``NAME/VERSION`` for ``models:/NAME@ALIAS`` and ``models:/NAME/VERSION`` URIs."""
    if not uri.startswith("models:/"):
        return None
    from mlflow import MlflowClient

    ref = uri[len("models:/"):]
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return f"{name}/{MlflowClient().get_model_version_by_alias(name, alias).version}"
        name, _, version = ref.rpartition("/")
        if name and version.isdigit():
            return f"{name}/{version}"
    except Exception:  # noqa: BLE001 - the version label is informative only
        return None
    return None


def export_model(uri: str, out: str | Path, *, tracking_uri: str | None = None) -> Path:
    """Write a self-contained joblib bundle of the model at ``uri`` (atomically)."""
    import joblib

    from churnml._atomic import atomic_path

    pipe = load_pipeline(uri, tracking_uri=tracking_uri)
    with atomic_path(out) as tmp:
        joblib.dump(pipe, tmp)
    return Path(out)


def _per_cutoff_name(metric: str) -> str:
    """``model_roc_auc_mean`` -> ``model_roc_auc`` (the per-cutoff metric logged with a step)."""
    return metric[: -len("_mean")] if metric.endswith("_mean") else metric


def _split_scorer(name: str) -> tuple[str, str]:
    """``model_roc_auc`` -> (``model``, ``roc_auc``); ``logistic_rfm_brier`` -> (``logistic_rfm``, ``brier``)."""
    from churnml.churn import BASELINES

    for scorer in sorted(("model", *BASELINES), key=len, reverse=True):
        if name.startswith(scorer + "_"):
            return scorer, name[len(scorer) + 1:]
    raise ModelError(f"cannot compare on {name!r}: metric names start with a scorer (model, {', '.join(BASELINES)})")


def run_cutoff_metrics(client, run_id: str, metric: str = PROMOTION_METRIC) -> dict[str, float]:
    """``{cutoff: value}`` of a run's per-cutoff backtest ``metric`` (``model_roc_auc_mean`` means
    ``model_roc_auc`` at each cutoff): steps mapped to dates by the ``backtest_cutoffs`` param,
    or, for runs logged before that param existed, read from the ``backtest/backtest.json``
    artifact. Empty when the run has no backtest."""
    name = _per_cutoff_name(metric)
    run = client.get_run(run_id)
    cuts = [c for c in run.data.params.get("backtest_cutoffs", "").split(",") if c]
    if cuts:
        out = {cuts[h.step]: float(h.value) for h in client.get_metric_history(run_id, name) if 0 <= h.step < len(cuts)}
        if out:
            return dict(sorted(out.items()))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(run_id, "backtest/backtest.json", tmp)
            table = json.loads(Path(path).read_text())["per_cutoff"]
    except Exception:  # noqa: BLE001 - no artifact: no backtest to compare
        return {}
    scorer, m = _split_scorer(name)
    out = {}
    for key, row in table.items():
        cut, _, s = key.partition("|")
        v = row.get(m)
        if s == scorer and v is not None and v == v:  # not NaN
            out[cut] = float(v)
    return dict(sorted(out.items()))


def _reevaluate(config: Config, dataset, model_uri: str, cutoffs: list[str], metric: str) -> dict[str, float]:
    """Retrain the recipe of the pipeline at ``model_uri`` (its own config: features, CLV, churn
    settings; the data of ``config``) at ``cutoffs`` on ``dataset``; ``{cutoff: metric}``."""
    from churnml.churn import FeatureStore, churn_backtest

    pipe = load_pipeline(model_uri, tracking_uri=tracking_uri_for(config))
    cfg = pipe.config.model_copy(update={"data": config.data})
    store = FeatureStore(dataset.transactions, cfg, events=dataset.events, customers=dataset.customers)
    bt = churn_backtest(store, [pd.Timestamp(c) for c in cutoffs], n_resamples=0)
    scorer, m = _split_scorer(_per_cutoff_name(metric))
    col = bt.per_cutoff.xs(scorer, level="scorer")[m]
    return {str(k): float(v) for k, v in col.items()}


def promote(config: Config, *, force: bool = False, metric: str = PROMOTION_METRIC) -> tuple[bool, str]:
    """Move alias ``champion`` to the ``challenger`` version when its backtest ``metric`` beats
    the current champion's ON THE SAME CUTOFFS, or with ``force``. Returns (promoted, reason).

    The comparison uses the per-cutoff values each run logged (``model_roc_auc`` at the cutoffs
    in its ``backtest_cutoffs`` param, or its ``backtest/backtest.json``), averaged over the
    cutoffs both runs were backtested at. When they share none, the champion's recipe (the
    config inside its pipeline) is retrained and scored at the challenger's cutoffs on the
    configured data; when that is impossible, or the challenger has no backtest, or the two
    runs define churn differently, nothing is promoted without ``force``, and the reason says why.
    The reason names the cutoffs compared and both values."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    configure(config)
    client = MlflowClient()
    name = config.mlflow.model_name
    per = _per_cutoff_name(metric)
    try:
        challenger = client.get_model_version_by_alias(name, CHALLENGER)
    except MlflowException:
        raise ModelError(f"no '{CHALLENGER}' version of model {name!r}: run `churnml train` first") from None
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        champion = None
    if champion is not None and champion.version == challenger.version:
        return False, f"version {challenger.version} is already the champion"

    def finish(ok: bool, reason: str) -> tuple[bool, str]:
        if not ok and force:
            ok, reason = True, reason + "; promoted anyway (--force)"
        if ok:
            client.set_registered_model_alias(name, CHAMPION, challenger.version)
        return ok, reason

    def fmt(values: dict[str, float], cuts: list[str]) -> str:
        return f"{sum(values[c] for c in cuts) / len(cuts):.4f}"

    c_run = client.get_run(challenger.run_id) if challenger.run_id else None
    c_cuts = run_cutoff_metrics(client, challenger.run_id, metric) if c_run is not None else {}
    if champion is None:
        shown = f"{per} = {fmt(c_cuts, list(c_cuts))} over backtest cutoffs {', '.join(c_cuts)}" if c_cuts else "no backtest"
        return finish(True, f"no champion yet; version {challenger.version} ({shown}) becomes champion")
    if not c_cuts:
        note = c_run.data.params.get("backtest_note") if c_run is not None else None
        return finish(False, (
            f"challenger version {challenger.version} has no backtest {per} to compare with champion version "
            f"{champion.version}" + (f" ({note})" if note else " (its run logged no per-cutoff backtest metrics)")
            + "; train it on a log long enough for a backtest, or promote it with --force"
        ))
    h_run = client.get_run(champion.run_id) if champion.run_id else None
    if h_run is not None:
        keys = ("churn.horizon_days", "churn.lookback_days")
        differ = {k: (c_run.data.params.get(k), h_run.data.params.get(k)) for k in keys}
        differ = {k: v for k, v in differ.items() if None not in v and v[0] != v[1]}
        if differ:
            what = ", ".join(f"{k} {a} vs {b}" for k, (a, b) in differ.items())
            return finish(False, (
                f"challenger version {challenger.version} and champion version {champion.version} define churn "
                f"differently ({what}): their backtest metrics are not comparable; promote with --force to switch anyway"
            ))
    h_cuts = run_cutoff_metrics(client, champion.run_id, metric) if h_run is not None else {}
    common = sorted(set(c_cuts) & set(h_cuts))
    how = "as logged by both runs"
    if not common:
        cuts = sorted(c_cuts)
        c_source = c_run.data.tags.get("data.source")
        try:
            from churnml.io import load_dataset

            dataset = load_dataset(config)
            source = dataset.report.source
            if c_source and source != c_source:
                raise ModelError(f"the configured data ({source}) is not the data the challenger was backtested on ({c_source})")
            h_cuts = _reevaluate(config, dataset, f"models:/{name}/{champion.version}", cuts, metric)
        except Exception as err:  # noqa: BLE001 - any failure: refuse with the reason
            return finish(False, (
                f"challenger version {challenger.version} (backtest cutoffs {', '.join(cuts)}) and champion version "
                f"{champion.version} (backtest cutoffs {', '.join(sorted(h_cuts)) or 'none'}) share no backtest cutoff, "
                f"and re-evaluating the champion at the challenger's cutoffs failed: {type(err).__name__}: {str(err)[:300]}; "
                "nothing compared on the same cutoffs, so not promoted (use --force to promote anyway)"
            ))
        common = [c for c in cuts if c in h_cuts]
        how = f"champion retrained with its own config at the challenger's cutoffs on {source}"
    c_val, h_val = fmt(c_cuts, common), fmt(h_cuts, common)
    better = sum(c_cuts[c] for c in common) > sum(h_cuts[c] for c in common)
    verdict = "beats" if better else "does not beat"
    return finish(better, (
        f"challenger version {challenger.version} ({per} = {c_val}) {verdict} champion version {champion.version} "
        f"({per} = {h_val}) on the same backtest cutoffs {', '.join(common)} (mean over {len(common)}; {how})"
    ))
