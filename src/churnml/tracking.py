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
import stat
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from churnml._atomic import json_text
from churnml.excel import neutralise_formulas
from churnml.config import Config
from churnml.errors import EnvironmentFault, ModelError

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "TrainResult",
    "check_store",
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


REACH_TIMEOUT_S = 5.0  # seconds to wait for a tracking server's TCP port before giving up (exit 4)
_SQLITE_MAGIC = b"SQLite format 3\x00"
_FIX = "set mlflow.tracking_uri in the config (or --tracking-uri, or MLFLOW_TRACKING_URI)"


def check_store(uri: str, *, timeout: float = REACH_TIMEOUT_S) -> None:
    """Fail fast, before any training, when the tracking store cannot work: a server
    (``http(s)://``) whose port does not answer within ``timeout`` seconds, a local SQLite file
    that is not a SQLite database, or a folder where the store cannot be created or written.
    Raises :class:`~churnml.errors.EnvironmentFault` (exit 4) naming the URI or the store path."""
    import errno
    import socket
    from urllib.parse import urlsplit

    if uri.startswith(("http://", "https://")):
        parts = urlsplit(uri)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((parts.hostname or "localhost", port), timeout=timeout):
                pass
        except OSError as err:
            reason = "timed out" if isinstance(err, socket.timeout) else (err.strerror or str(err) or type(err).__name__)
            raise EnvironmentFault(
                f"MLflow tracking server {uri} is unreachable ({reason}, waited at most {timeout:g} s); "
                f"retry later, or {_FIX}"
            ) from None
        return
    if not uri.startswith("sqlite:///"):
        return  # other stores (file:, databricks, ...): MLflow's own errors, mapped in _store_errors
    db = Path(uri[len("sqlite:///"):])
    if not db.name or str(db) == ":memory:":
        return
    if db.is_dir():
        raise EnvironmentFault(f"MLflow store {db} ({uri}) is a folder, not a SQLite file; {_FIX}")
    if db.exists():
        try:
            with db.open("rb") as fh:
                head = fh.read(len(_SQLITE_MAGIC))
        except OSError as err:
            raise EnvironmentFault(f"MLflow store {db} ({uri}) cannot be read: {err.strerror or err}; {_FIX}") from None
        corrupt = bool(head) and head != _SQLITE_MAGIC
        if head and not corrupt:  # a SQLite header: can its schema be read? (read-only: the file is left as it is)
            import sqlite3

            try:
                con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout)
                try:
                    con.execute("SELECT count(*) FROM sqlite_master").fetchone()
                finally:
                    con.close()
            except sqlite3.DatabaseError as err:
                corrupt = "locked" not in str(err)  # a busy writer is not damage
        if corrupt:
            raise EnvironmentFault(
                f"MLflow store {db} ({uri}) is not a readable SQLite database (corrupt or another kind of file); "
                f"restore it from a backup or move it away, or {_FIX}"
            )
    folder = db.parent
    try:  # SQLite writes journal files beside the database: the folder must take a new file
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".churnml-store-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        what = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied", errno.EPERM: "permission denied",
                errno.ENOSPC: "disk full", errno.ENOTDIR: "a part of the path is a file, not a folder",
                errno.EEXIST: "a part of the path is a file, not a folder"}.get(
                    err.errno, err.strerror or str(err))
        raise EnvironmentFault(
            f"MLflow store {db} cannot be created or written in {folder} ({what}); {_FIX} to a writable place, "
            "e.g. sqlite:////var/lib/churnml/mlflow.db or a tracking server"
        ) from None


@contextlib.contextmanager
def _store_errors(uri: str):
    """MLflow failures that are the store's or the network's (connection refused, timeout, SQL
    errors of a damaged database, unwritable files) -> EnvironmentFault naming the URI. MLflow's
    'not found' answers (RESOURCE_DOES_NOT_EXIST and the like) pass through unchanged."""
    from mlflow.exceptions import MlflowException

    try:
        import sqlalchemy.exc as sa_exc

        sql_errors: tuple[type[BaseException], ...] = (sa_exc.OperationalError, sa_exc.DatabaseError)
    except ImportError:  # pragma: no cover - MLflow always brings SQLAlchemy
        sql_errors = ()
    try:
        import requests

        net_errors: tuple[type[BaseException], ...] = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)
    except ImportError:  # pragma: no cover
        net_errors = ()
    try:
        yield
    except (*sql_errors, *net_errors) as err:
        raise EnvironmentFault(f"MLflow tracking store {uri} failed: {type(err).__name__}: {_first_line(err)}") from None
    except MlflowException as err:
        text = str(err)
        if any(k in text for k in ("Max retries exceeded", "Failed to establish", "Connection refused", "timed out",
                                   "API request to", "database is locked", "unable to open database",
                                   "file is not a database", "readonly database", "disk I/O error")):
            raise EnvironmentFault(f"MLflow tracking store {uri} failed: {_first_line(err)}") from None
        raise


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


def configure(config: Config) -> str:
    """Point MLflow at the configured store and experiment; return the tracking URI. Raises
    :class:`~churnml.errors.EnvironmentFault` (exit 4) when the store is unreachable, corrupt
    or cannot be written (see :func:`check_store`)."""
    import logging

    import mlflow

    # MLflow's own INFO chatter (input-example validation, "creating a new version") is not for
    # the job's console; its warnings still show
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    uri = tracking_uri_for(config)
    check_store(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with _store_errors(uri):
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


def log_training(pipe, backtest, dataset, config: Config, *, clv_diagnostics=None, audit: dict | None = None) -> TrainResult:
    """Log one training run: params, metrics per backtest cutoff and averaged, data range and
    counts, plots, the backtest table, CLV diagnostics, the decisions audit of the run's scores
    (``audit``: :meth:`churnml.audit.AuditResult.to_dict`; tag ``audit_status``, metrics
    ``audit_fail_count``/``audit_warn_count``, ``audit/audit.json``), and ONE pyfunc model
    (signature, input example) registered under ``mlflow.model_name`` with alias ``challenger``."""
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
    with _store_errors(uri), mlflow.start_run() as run, tempfile.TemporaryDirectory() as tmp:
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
            "shipped_scorer_note": ((pipe.training.get("shipped_scorer") or {}).get("sentence") or "")[:490],
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
                "clv.degenerate": str(bool(getattr(pipe.value_model.clv_model_, "degenerate_", False))),
                "clv.no_dropout": str(bool(getattr(pipe.value_model.clv_model_, "no_dropout_", False))),
            }
        )
        no_dropout = pipe.value_model.clv_model_.no_dropout_note() if hasattr(pipe.value_model.clv_model_, "no_dropout_note") else None
        if no_dropout:
            mlflow.set_tag("clv.note", no_dropout[:4900])
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
            neutralise_formulas(backtest.per_cutoff).to_csv(tmpd / "backtest.csv")
            (tmpd / "backtest.json").write_text(json_text(backtest.to_dict()))
            mlflow.log_artifact(str(tmpd / "backtest.csv"), "backtest")
            mlflow.log_artifact(str(tmpd / "backtest.json"), "backtest")
            for p in plot_backtest(backtest.predictions, ["model", *BASELINES], tmpd / "plots"):
                mlflow.log_artifact(str(p), "plots")
        mlflow.log_artifact(str(plot_feature_importance(pipe.churn_model.feature_importance(), tmpd / "plots" / "feature_importance.png")), "plots")
        if pipe.value_model.backtest_ is not None:
            neutralise_formulas(pipe.value_model.backtest_.metrics).to_csv(tmpd / "value_backtest.csv")
            mlflow.log_artifact(str(tmpd / "value_backtest.csv"), "backtest")
        if clv_diagnostics is not None:
            for p in plot_clv_diagnostics(clv_diagnostics, tmpd / "clv"):
                mlflow.log_artifact(str(p), "clv")
        if audit is not None:
            sev = [f["severity"] for f in audit["findings"]]
            mlflow.set_tag("audit_status", "pass" if audit["ok"] else "fail")
            mlflow.log_metrics({"audit_fail_count": float(sev.count("fail")), "audit_warn_count": float(sev.count("warn"))})
            (tmpd / "audit.json").write_text(json_text(audit))
            mlflow.log_artifact(str(tmpd / "audit.json"), "audit")
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


def _bundle_problem(path: Path) -> str | None:
    """Why a file must not be trusted as a model bundle or digest: writable by group or others."""
    mode = path.stat().st_mode
    if mode & 0o022:
        return (f"{path} is writable by {'group and others' if mode & 0o022 == 0o022 else 'group' if mode & 0o020 else 'others'} "
                f"(mode {stat.S_IMODE(mode):04o}): anyone who can write it can run code as you; "
                f"check it, then `chmod go-w {path}`")
    return None


def _read_digest(path: Path) -> str:
    """The hex SHA-256 in a ``sha256sum``-format file (``<64 hex>  <file name>``)."""
    text = path.read_text(encoding="ascii", errors="replace").strip()
    digest = text.split()[0].lower() if text else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ModelError(f"{path} is not a SHA-256 digest file (expected '<64 hex digits>  <file name>'): re-export the model")
    return digest


def load_pipeline(uri: str, *, tracking_uri: str | None = None, trust_unverified: bool = False):
    """Load a :class:`~churnml.pipeline.ChurnPipeline` from an exported ``.joblib`` bundle or
    any MLflow model URI (``models:/NAME@champion``, ``models:/NAME/3``, ``runs:/ID/model``,
    ``models:/m-...``). Raises :class:`ModelError` when it cannot be loaded.

    Loading a model runs code stored in it (pickle). A ``.joblib`` bundle is therefore checked
    before it is unpickled: it and its digest file ``<bundle>.sha256`` (written by
    :func:`export_model`) must not be writable by group or others, and the bundle's SHA-256 must
    match the digest; the bytes checked are the bytes unpickled. A missing digest file is refused
    unless ``trust_unverified=True`` (CLI ``--trust-unverified``); a mismatch never loads. MLflow
    URIs are trusted as written by the tracking store: keep its ``mlflow.db``/``mlruns/`` (or the
    server) writable only by the people who train models."""
    path = Path(uri)
    if uri.endswith(".joblib"):
        if not path.is_file():
            raise ModelError(f"model bundle not found: {uri}")
        import hashlib

        import joblib

        problem = _bundle_problem(path)
        if problem:
            raise ModelError(f"refusing to load model bundle: {problem}")
        digest_path = path.with_name(path.name + ".sha256")
        expected = None
        if digest_path.is_file():
            problem = _bundle_problem(digest_path)
            if problem:
                raise ModelError(f"refusing to load model bundle {uri}: its digest file {problem}")
            expected = _read_digest(digest_path)
        elif not trust_unverified:
            raise ModelError(f"refusing to load model bundle {uri}: no digest file {digest_path.name} beside it, so it cannot "
                             f"be verified; re-export it with `churnml export` (writes the digest), or pass --trust-unverified "
                             f"if you know where it comes from (loading a model runs code from it)")
        data = path.read_bytes()
        if expected is not None:
            actual = hashlib.sha256(data).hexdigest()
            if actual != expected:
                raise ModelError(f"refusing to load model bundle {uri}: its SHA-256 {actual[:12]}... does not match "
                                 f"{digest_path.name} ({expected[:12]}...): the file changed after export; re-export "
                                 f"it from the registry (`churnml export --model models:/NAME@champion`)")
        try:
            pipe = joblib.load(io.BytesIO(data))
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


def export_model(uri: str, out: str | Path, *, tracking_uri: str | None = None, trust_unverified: bool = False) -> Path:
    """Write a self-contained joblib bundle of the model at ``uri`` and its SHA-256 digest
    ``<out>.sha256`` (``sha256sum`` format, so ``sha256sum -c`` checks it too), each atomically;
    :func:`load_pipeline` verifies the bundle against it. ``trust_unverified`` is passed on when
    ``uri`` is itself a bundle without a digest. The digest is written after the bundle: an
    interruption in between leaves a bundle that is refused, never one that loads unverified."""
    import hashlib

    import joblib

    from churnml._atomic import atomic_path

    out = Path(out)
    if out.suffix != ".joblib":
        from churnml.errors import DataError

        raise DataError(f"--out {out}: use a .joblib file name (load_pipeline reads bundles by that extension)")
    pipe = load_pipeline(uri, tracking_uri=tracking_uri, trust_unverified=trust_unverified)
    with atomic_path(out) as tmp:
        joblib.dump(pipe, tmp)
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    with atomic_path(out.with_name(out.name + ".sha256")) as tmp:
        tmp.write_text(f"{digest}  {out.name}\n", encoding="ascii")
    return out


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
    The reason names the cutoffs compared and both values. An unreachable, corrupt or unwritable
    tracking store raises :class:`~churnml.errors.EnvironmentFault` (exit 4)."""
    uri = configure(config)
    with _store_errors(uri):
        return _promote(config, force=force, metric=metric)


def _promote(config: Config, *, force: bool, metric: str) -> tuple[bool, str]:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

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
