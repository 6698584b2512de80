from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def cdnow_master() -> pd.DataFrame:
    from churnml.datasets import load_cdnow

    return load_cdnow("master")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (only CI and developer machines have it)")
    return SHARED_DATA


def random_log(n_customers: int = 300, n_rows: int = 3000, seed: int = 0, hours: bool = True) -> pd.DataFrame:
    """A small random log with hour-level timestamps, repeat days and mixed amounts."""
    rng = np.random.default_rng(seed)
    cust = rng.integers(0, n_customers, n_rows)
    start = np.datetime64("2021-01-01T00:00")
    offs = rng.integers(0, 2 * 365 * 24, n_rows) if hours else rng.integers(0, 2 * 365, n_rows) * 24
    ts = (start + offs.astype("timedelta64[h]")).astype("datetime64[ns]")
    amount = np.round(rng.gamma(2.0, 15.0, n_rows), 2)
    return pd.DataFrame({"customer_id": [f"c{c:05d}" for c in cust], "timestamp": ts, "amount": amount})


def local_sample_config(folder: Path) -> str:
    """configs/cdnow_sample.yaml copied into ``folder`` without its output and MLflow settings,
    so its outputs and the default embedded store (``mlflow.db``, ``mlruns/``) land in ``folder``
    (relative config paths resolve against the config's folder)."""
    import yaml

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "cdnow_sample.yaml").read_text())
    raw.pop("output", None)
    raw.pop("mlflow", None)
    path = Path(folder) / "cdnow_sample.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def default_config_for(df: pd.DataFrame, folder: Path, **sections):
    """A config with DEFAULT settings for a canonical log (``customer_id, timestamp, amount`` and
    optionally ``order_id``): the log written to ``folder/log.csv`` and only its columns mapped;
    ``sections`` (e.g. ``churn={"horizon_days": 60}``) are the only other settings."""
    from churnml.config import config_from_dict

    path = Path(folder) / "log.csv"
    df.to_csv(path, index=False)
    columns = {"customer_id": "customer_id", "timestamp": "timestamp", "amount": "amount"}
    if "order_id" in df.columns:
        columns["order_id"] = "order_id"
    return config_from_dict({"data": {"transactions": str(path), "columns": columns}, **sections})
