"""churnml: churn risk, customer lifetime value and retention lists from transaction logs."""

__version__ = "0.1.0"

from churnml.config import Config, load_config  # noqa: E402
from churnml.errors import ChurnmlError, ConfigError, DataError, ModelError  # noqa: E402
from churnml.features import calibration_holdout, rfm_summary, snapshot_features  # noqa: E402
from churnml.io import Dataset, LoadReport, load_dataset, read_transactions  # noqa: E402
from churnml.rfm import rfm_scores, rfm_segment  # noqa: E402

__all__ = [
    "ChurnmlError",
    "Config",
    "ConfigError",
    "DataError",
    "Dataset",
    "LoadReport",
    "ModelError",
    "__version__",
    "calibration_holdout",
    "load_config",
    "load_dataset",
    "read_transactions",
    "rfm_scores",
    "rfm_segment",
    "rfm_summary",
    "snapshot_features",
]
