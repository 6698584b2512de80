from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnml.errors import DataError
from churnml.features import calibration_holdout


def _tx():
    return pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "a", "b", "b", "c"],
            "timestamp": pd.to_datetime(
                [
                    "2024-01-01", "2024-01-04", "2024-01-10",  # a calibration
                    "2024-01-15", "2024-01-15",  # a holdout, one day twice
                    "2024-01-08",  # b calibration only
                    "2024-01-25",  # b holdout
                    "2024-01-12",  # c appears only in the holdout: excluded
                ]
            ),
            "amount": [10.0, 20.0, 30.0, 5.0, 7.0, 3.0, 9.0, 100.0],
        }
    )


def test_hand_computed_example():
    out = calibration_holdout(
        _tx(), calibration_end="2024-01-10", observation_end="2024-01-31", amount="amount"
    )
    assert sorted(out.index) == ["a", "b"]
    a, b = out.loc["a"], out.loc["b"]
    # calibration: a bought on days 1, 4, 10 -> frequency 2, recency 9, T 9, repeat spend (20+30)/2
    assert (a.frequency_cal, a.recency_cal, a.T_cal, a.monetary_value_cal) == (2, 9, 9, 25)
    assert (b.frequency_cal, b.recency_cal, b.T_cal, b.monetary_value_cal) == (0, 0, 2, 0)
    # holdout: a bought on one day (two orders, 12 spent), b on one day
    assert (a.frequency_holdout, a.monetary_value_holdout) == (1, 12)
    assert (b.frequency_holdout, b.monetary_value_holdout) == (1, 9)
    assert (out["duration_holdout"] == 21).all()


def test_weeks_with_multiplier():
    out = calibration_holdout(_tx(), calibration_end="2024-01-10", observation_end="2024-01-31", freq_multiplier=7)
    assert out.loc["a", "T_cal"] == pytest.approx(9 / 7)
    assert out.loc["a", "duration_holdout"] == pytest.approx(3.0)
    assert "monetary_value_cal" not in out.columns


def test_matches_lifetimes_on_cdnow(cdnow_master):
    """lifetimes' own ``calibration_and_holdout_data`` on the full CDNOW cohort: every customer's
    calibration frequency, recency, T and holdout frequency and duration agree exactly (in days).
    On pandas 3, lifetimes 0.11 crashes without ``monetary_value_col`` ("No objects to
    concatenate"), so it is called with one; its holdout spend is the mean per transaction (ours
    sums a day's orders), so only the calibration spend is compared."""
    from lifetimes.utils import calibration_and_holdout_data

    kw = dict(calibration_end="1997-09-30", observation_end="1998-06-30")
    theirs = calibration_and_holdout_data(
        cdnow_master, "customer_id", "date", calibration_period_end=kw["calibration_end"],
        observation_period_end=kw["observation_end"], monetary_value_col="dollar_value",
    )
    ours = calibration_holdout(cdnow_master, customer_id="customer_id", timestamp="date", amount="dollar_value", **kw)
    assert len(ours) == len(theirs) == 23_570
    theirs.index = theirs.index.astype(str)
    ours.index = ours.index.astype(str)
    assert set(ours.index) == set(theirs.index)
    ours = ours.loc[theirs.index]
    for col in ("frequency_cal", "recency_cal", "T_cal", "frequency_holdout", "duration_holdout", "monetary_value_cal"):
        np.testing.assert_allclose(ours[col].to_numpy(float), theirs[col].to_numpy(float), rtol=1e-9, atol=1e-9, err_msg=col)
    weeks = calibration_holdout(cdnow_master, customer_id="customer_id", timestamp="date", freq_multiplier=7, **kw)
    weeks.index = weeks.index.astype(str)
    np.testing.assert_allclose(weeks.loc[theirs.index, "T_cal"], theirs["T_cal"] / 7, rtol=1e-12)
    assert weeks["duration_holdout"].iloc[0] == pytest.approx(273 / 7)
    # CDNOW published summary: 1,882 repeat purchase-days in weeks 40-78 for the 1/10 sample;
    # the full cohort is ten times larger, so its holdout total must be of that order
    assert 15_000 < weeks["frequency_holdout"].sum() < 25_000


def test_errors():
    with pytest.raises(DataError, match="after calibration_end"):
        calibration_holdout(_tx(), calibration_end="2024-01-31", observation_end="2024-01-10")
    with pytest.raises(DataError, match="no transaction"):
        calibration_holdout(_tx(), calibration_end="2023-01-01")
