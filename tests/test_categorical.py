"""String customer attributes (e.g. Country) reach the models as LightGBM categoricals."""

import numpy as np
import pytest
import pandas as pd
from sklearn.metrics import roc_auc_score

from churnml.churn import ChurnModel, category_levels
from churnml.pipeline import feature_reference, population_stability
from churnml.value import MLValueModel

COUNTRY_CHURN = {"UK": 0.1, "France": 0.9, "Germany": 0.5, "EIRE": 0.2}


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    country = rng.choice(list(COUNTRY_CHURN), n)
    X = pd.DataFrame(
        {
            "noise": rng.normal(size=n),
            "Country": pd.array(country, dtype="string"),
            "email": pd.array([f"c{seed}-{i}@example.com" for i in range(n)], dtype="string"),
        },
        index=pd.Index([f"{seed}-{i}" for i in range(n)], name="customer_id"),
    )
    y = (rng.random(n) < pd.Series(country).map(COUNTRY_CHURN).to_numpy()).astype(int)
    return X, y


@pytest.mark.slow
def test_country_is_a_categorical_feature_and_carries_its_signal():
    X, y = _frame(4000, 1)
    Xv, yv = _frame(2000, 2)
    m = ChurnModel(prior=None, n_estimators=200, seed=0).fit(X, y, X_valid=Xv, y_valid=yv)
    assert "Country" in m.feature_names_
    assert m.categories_["Country"] == sorted(COUNTRY_CHURN)
    # an identifier-like text column is not a category: left out, with the reason recorded
    assert "email" not in m.feature_names_ and "distinct values" in m.dropped_features_["email"]
    Xt, yt = _frame(3000, 3)
    auc = roc_auc_score(yt, m.predict_proba(Xt)[:, 1])
    # the only signal is the country (true AUC of the country rates is about 0.8); noise alone gives 0.5
    assert auc > 0.75
    # a country never seen in training scores like a missing value, without an error
    Xt.loc[Xt.index[:5], "Country"] = "Narnia"
    p = m.predict_proba(Xt)[:, 1]
    assert np.isfinite(p).all()


def test_category_levels_rules():
    df = pd.DataFrame({
        "few": pd.array(["a", "b", None, "a"] * 10, dtype="string"),
        "many": [f"x{i}" for i in range(40)],
        "num": np.arange(40.0),
    })
    levels, dropped = category_levels(df, ["few", "many", "num"], max_categories=10)
    assert levels == {"few": ["a", "b"]}
    assert set(dropped) == {"many"}


@pytest.mark.slow
def test_value_model_uses_categoricals():
    rng = np.random.default_rng(5)
    n = 3000
    country = rng.choice(["UK", "France"], n)
    X = pd.DataFrame({"noise": rng.normal(size=n), "Country": pd.array(country, dtype="string")})
    y = np.where(country == "France", 100.0, 5.0) * rng.gamma(2.0, 0.5, n)
    m = MLValueModel(n_estimators=100, seed=0).fit(X, y)
    assert "Country" in m.feature_names_
    pred = m.predict(X)
    assert pred[country == "France"].mean() > 5 * pred[country == "UK"].mean()


def test_drift_of_a_categorical_attribute_is_measured():
    rng = np.random.default_rng(7)
    ref = pd.DataFrame({"Country": pd.array(rng.choice(["UK", "France"], 5000, p=[0.8, 0.2]), dtype="string")})
    same = pd.DataFrame({"Country": pd.array(rng.choice(["UK", "France"], 5000, p=[0.8, 0.2]), dtype="string")})
    moved = pd.DataFrame({"Country": pd.array(rng.choice(["UK", "France"], 5000, p=[0.2, 0.8]), dtype="string")})
    reference = feature_reference(ref)
    assert population_stability(reference, same)["Country"] < 0.01
    # PSI of 0.8/0.2 -> 0.2/0.8 is 2 x 0.6 x ln 4 = 1.66
    assert abs(population_stability(reference, moved)["Country"] - 1.66) < 0.15
