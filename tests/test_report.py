"""The HTML report: self-contained, and tested in a real headless Chromium (filter, table, download)."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnml.report import build_report, write_report

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("CHURNML_TEST_ARTIFACTS", REPO / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _scores(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, n)
    v = rng.gamma(1.5, 40, n)
    seg = rng.choice(["Save now", "Protect", "VIP", "Grow", "Let go"], n)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:06d}" for i in range(n)],
            "as_of": pd.Timestamp("2024-01-01"),
            "churn_probability": p.round(4),
            "p_alive": 1 - p,
            "expected_purchases": rng.gamma(1, 1, n),
            "predicted_clv": (v * (1 - p)).round(2),
            "value_if_retained": v.round(2),
            "value_at_risk": (p * v).round(4),
            "risk_tier": np.where(p > 0.8, "high", np.where(p > 0.5, "medium", "low")),
            "value_tier": np.where(v > 80, "high", np.where(v > 40, "medium", "low")),
            "segment": seg,
            "rfm_segment": rng.choice(["Champions", "Lost", "At Risk"], n),
            "reasons": "no purchase for 90 days, usually buys every 30 days",
            "recommended_action": "personal_contact",
            "model_version": "churnml/1",
            "purchases_per_year": rng.gamma(2, 2, n),
            "avg_order_value": rng.gamma(2, 20, n),
        }
    )


def test_report_table_is_the_at_risk_list_in_its_order():
    from churnml.campaigns import at_risk_list

    s = _scores(500, seed=3)
    page = build_report(s, at_risk_tiers=["high"], at_risk_top=40)
    payload = json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S).group(1))
    ids = [row[0] for row in payload["rows"]]
    expected = at_risk_list(s.loc[s["risk_tier"] == "high"], top=40)["Customer ID"].tolist()
    assert ids == expected and len(ids) == 40
    # low-risk customers never open the table, however much value they carry
    low = set(s.loc[s["risk_tier"] != "high", "customer_id"])
    assert not low & set(ids)
    n_high = int((s["risk_tier"] == "high").sum())
    assert f"The 40 customers of the at-risk list (high risk: the first 40 of {n_high:,} by value at risk)" in page


def test_every_output_names_an_action_as_the_catalogue_does():
    from churnml.config import Config
    from churnml.excel import action_labels

    s = _scores(50, seed=1).assign(recommended_action="proactive_checkin", risk_tier="high")
    page = build_report(s, action_labels=action_labels(Config().campaign))
    assert "Proactive check-in" in page and "Proactive checkin" not in page


def test_report_is_self_contained():
    page = build_report(_scores(200))
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing loaded from a network
    assert "<script src" not in page and "<link" not in page
    for text in ["expected churn rate", "value at risk", "Risk x value segments", "Download filtered rows (CSV)", "<svg"]:
        assert text in page
    # the data is embedded and escapes a closing script tag inside a value
    s = _scores(3)
    s.loc[0, "reasons"] = "</script><b>x</b>"
    assert "</script><b>" not in build_report(s)


def test_report_states_currency_horizons_tiers_in_plain_words(tmp_path):
    import json

    from churnml.config import Config
    from churnml.report import report_context

    cfg = Config()
    cfg.report.currency = "EUR"
    scores_path = tmp_path / "scores.parquet"
    _scores(300).to_parquet(scores_path)
    meta = {"horizons": {"churn_days": 90, "clv_days": 365}, "currency": "EUR",
            "tiers": {"risk": cfg.segments.risk.model_dump(), "value": cfg.segments.value.model_dump()}}
    scores_path.with_name("scores.parquet.meta.json").write_text(json.dumps(meta))
    ctx = report_context(scores_path, None)
    assert ctx["horizons"] == {"churn_days": 90, "clv_days": 365}
    page = build_report(_scores(300), context=ctx)
    assert "expected churn rate (no purchase in the next 90 days)" in page
    assert "next 365 days" in page and "EUR " in page
    # which tiers are used, in words: absolute churn probability, shares of customers for value
    assert "Risk tiers: absolute churn probability (low: below 30%; medium: 30% to 60%; high: 60% and above)." in page
    assert "Value tiers: shares of customers ranked by value if retained, lowest first" in page
    # plain headers and action names, no identifiers
    kpi = page[page.index("KPIs by segment"):page.index("At-risk customers")]
    assert "Expected churn rate" in kpi and "Value at risk, total (EUR)" in kpi
    assert "churn_rate" not in kpi and "clv_total" not in kpi
    assert "personal_contact" not in page and "Personal contact" in page
    # without a sidecar the config states them
    other = tmp_path / "other.parquet"
    _scores(10).to_parquet(other)
    assert report_context(other, cfg)["horizons"] == {"churn_days": cfg.churn.horizon_days, "clv_days": cfg.clv.horizon_days}


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="Chromium/chromedriver not installed (.ci/run installs Debian's chromium and chromium-driver)")
@pytest.mark.slow
def test_report_in_a_real_browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    n = 100_000
    scores = _scores(n)
    # every customer in the table (the default is the at-risk list's rule: high risk, top 1,000)
    report = write_report(scores, tmp_path / "report.html", at_risk_tiers=["high", "medium", "low"], at_risk_top=None)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000"]:
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False})
    os.environ.setdefault("SE_OFFLINE", "true")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        t0 = time.time()
        driver.get(report.as_uri())
        count = driver.find_element(By.ID, "count")
        assert count.text == f"{n:,} customers"
        load_s = time.time() - t0
        # the table shows one page, sorted by value at risk (highest first)
        cells = [float(td.text.replace(",", "")) for td in driver.find_elements(By.CSS_SELECTOR, "#rows tr td:nth-child(7)")]
        assert len(cells) == 50 and cells == sorted(cells, reverse=True)
        assert cells[0] == pytest.approx(scores["value_at_risk"].max(), abs=0.01)
        # filter: a segment and a minimum value
        t1 = time.time()
        Select(driver.find_element(By.ID, "f-segment")).select_by_value("Save now")
        driver.find_element(By.ID, "f-min").send_keys("100")
        filter_s = time.time() - t1
        expected = scores[(scores["segment"] == "Save now") & (scores["value_if_retained"] >= 100)]
        assert count.text == f"{len(expected):,} customers"
        shown = [tr.find_elements(By.TAG_NAME, "td") for tr in driver.find_elements(By.CSS_SELECTOR, "#rows tr")]
        assert shown and all(r[1].text == "Save now" and float(r[5].text.replace(",", "")) >= 100 for r in shown)
        # search by id
        q = driver.find_element(By.ID, "f-search")
        target = expected.sort_values("value_at_risk").iloc[0]["customer_id"]
        q.send_keys(target)
        assert count.text == "1 customer"
        q.clear()
        driver.execute_script("document.getElementById('f-search').dispatchEvent(new Event('input'))")
        assert count.text == f"{len(expected):,} customers"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "report.png"))
        # download the filtered rows
        driver.find_element(By.ID, "download").click()
        target_file = downloads / "at_risk_filtered.csv"
        deadline = time.time() + 30
        while not target_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        assert target_file.exists(), "no download"
        got = pd.read_csv(target_file, dtype={"Customer ID": str})
        assert set(got["Customer ID"]) == set(expected["customer_id"])
        assert got["Value at risk"].is_monotonic_decreasing
        # 100k customers stay responsive: the page loads and filters in seconds, not minutes
        assert load_s < 20 and filter_s < 10, (load_s, filter_s)
    finally:
        driver.quit()
