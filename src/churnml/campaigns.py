"""At-risk lists and a budgeted retention-campaign planner with a persistent control group.

Planning is a multiple-choice knapsack: every eligible customer gets at most one action; action
``a`` for customer ``i`` costs ``c_a`` and is expected to save
``churn_probability_i x churn_reduction_a x value_if_retained_i`` (currency: the value the
customer brings over the CLV horizon if they stay, so a save is worth what is kept). We maximise the sum of
(expected saved value - cost) within the budget.

Method (Sinha & Zoltners 1979): per customer, the options that lie on the upper convex hull of
(cost, net value) become incremental upgrades with decreasing value per unit of cost; taking
upgrades across customers in order of that ratio solves the LP relaxation exactly, with at most
one fractional upgrade. Dropping it gives a feasible plan whose objective is within one upgrade's
net value of the LP optimum, itself an upper bound of the integer optimum: the plan reports that
bound (``lp_bound``) and the gap, so "near-optimal" is a number, not a claim. Leftover budget is
then spent greedily on upgrades that still fit.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pandas as pd

from churnml.config import ActionConfig, CampaignConfig

__all__ = ["CampaignPlan", "at_risk_list", "control_mask", "plan_campaign"]

PLAIN_HEADERS = {
    "customer_id": "Customer ID",
    "segment": "Segment",
    "rfm_segment": "RFM segment",
    "churn_probability": "Churn probability",
    "predicted_clv": "Predicted value",
    "value_if_retained": "Value if retained",
    "value_at_risk": "Value at risk",
    "p_alive": "Probability still active",
    "expected_purchases": "Expected purchases",
    "recommended_action": "Recommended action",
    "reasons": "Why at risk",
    "risk_tier": "Risk",
    "value_tier": "Value",
}


def _value_column(df: pd.DataFrame) -> str:
    """The value a save keeps: ``value_if_retained`` (``predicted_clv`` in older scores files)."""
    return "value_if_retained" if "value_if_retained" in df.columns else "predicted_clv"


def at_risk_list(
    scores: pd.DataFrame,
    *,
    segments: list[str] | None = None,
    min_value: float | None = None,
    top: int | None = None,
    customers: pd.DataFrame | None = None,
    plain_headers: bool = True,
    known_segments: list[str] | None = None,
) -> pd.DataFrame:
    """Customers sorted by value at risk (highest first), filtered by segment (risk x value or
    RFM segment names) and minimum value if retained (``min_value``, currency), the first ``top``; customer attributes
    joined when given; plain column headers for a spreadsheet."""
    df = scores.copy()
    if "customer_id" not in df.columns:
        df = df.reset_index()
    if segments:
        wanted = set(segments)
        valid = set(known_segments or []) | set(df["segment"].dropna().astype(str))
        if "rfm_segment" in df.columns:
            valid |= set(df["rfm_segment"].dropna().astype(str))
        unknown = sorted(wanted - valid)
        if unknown:
            from churnml.errors import DataError

            raise DataError(f"unknown segment(s) {unknown}; valid segment names: {sorted(valid)}")
        mask = df["segment"].isin(wanted)
        if "rfm_segment" in df.columns:
            mask |= df["rfm_segment"].isin(wanted)
        df = df.loc[mask]
    if min_value is not None:
        df = df.loc[df[_value_column(df)] >= min_value]
    df = df.sort_values(["value_at_risk", "customer_id"], ascending=[False, True], kind="stable")
    if top is not None:
        df = df.head(top)
    cols = [c for c in PLAIN_HEADERS if c in df.columns]
    out = df[cols]
    if customers is not None and len(customers.columns):
        attrs = customers.copy()
        attrs.index = attrs.index.astype(str)
        out = out.join(attrs, on="customer_id")
    out = out.reset_index(drop=True)
    if plain_headers:
        out = out.rename(columns=PLAIN_HEADERS)
    return out


def _uniform(customer_ids, seed: int) -> np.ndarray:
    salt = f"{seed}:".encode()
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(salt + str(c).encode(), digest_size=8).digest(), "big") / 2**64 for c in customer_ids),
        dtype=float,
        count=len(customer_ids),
    )


def control_mask(customer_ids, share: float, seed: int) -> np.ndarray:
    """Random control group of exactly ``round(share x n)`` customers: those with the smallest
    hash of (seed, id). The hash, not the order of the data, decides, so a customer held out of
    one campaign is held out of the next ones planned with the same seed."""
    u = _uniform(customer_ids, seed)
    n_control = int(round(share * len(u)))
    mask = np.zeros(len(u), dtype=bool)
    if n_control:
        mask[np.argsort(u, kind="stable")[:n_control]] = True
    return mask


@dataclasses.dataclass
class CampaignPlan:
    """The plan (treatment and control rows), its summary and the optimality certificate."""

    plan: pd.DataFrame
    summary: pd.DataFrame
    budget: float
    objective: float  # expected saved value - cost of the treatment group
    lp_bound: float  # upper bound on the best achievable objective
    method: str

    @property
    def gap(self) -> float:
        return float(self.lp_bound - self.objective)

    def totals(self) -> dict[str, float]:
        t = self.plan[self.plan["group"] == "treatment"]
        cost = float(t["cost"].sum())
        saved = float(t["expected_saved_value"].sum())
        return {
            "budget": self.budget,
            "cost": cost,
            "expected_saved_value": saved,
            "net_value": saved - cost,
            "roi": (saved - cost) / cost if cost > 0 else float("nan"),
            "treatment_customers": float(len(t)),
            "control_customers": float((self.plan["group"] == "control").sum()),
            "lp_bound": self.lp_bound,
            "gap_to_bound": self.gap,
        }


def _eligible(actions: list[ActionConfig], segment: np.ndarray) -> np.ndarray:
    """Boolean matrix customers x actions."""
    m = np.ones((len(segment), len(actions)), dtype=bool)
    for j, a in enumerate(actions):
        if a.segments:
            m[:, j] = np.isin(segment, a.segments)
    return m


def plan_campaign(scores: pd.DataFrame, budget: float, config: CampaignConfig | None = None) -> CampaignPlan:
    """Choose at most one action per customer to maximise expected saved value minus cost within
    ``budget`` (currency), after holding out the control group. See the module docstring."""
    cfg = config or CampaignConfig()
    if budget < 0:
        raise ValueError("budget must not be negative")
    df = scores.reset_index() if "customer_id" not in scores.columns else scores.copy()
    ids = df["customer_id"].astype(str).to_numpy()
    seg = df["segment"].astype(str).to_numpy() if "segment" in df.columns else np.full(len(df), "")
    var = df["churn_probability"].to_numpy(dtype=float) * np.clip(df[_value_column(df)].to_numpy(dtype=float), 0, None)
    actions = [a for a in cfg.actions if a.name != "none"]
    cost = np.array([a.cost for a in actions])
    red = np.array([a.churn_reduction for a in actions])
    saved = var[:, None] * red[None, :]
    net = saved - cost[None, :]
    ok = _eligible(actions, seg) & (net > 0)
    candidates = ok.any(axis=1)
    in_control = np.zeros(len(ids), dtype=bool)
    cand_idx = np.flatnonzero(candidates)
    in_control[cand_idx[control_mask(ids[cand_idx], cfg.control_share, cfg.seed)]] = True
    pool = np.flatnonzero(candidates & ~in_control)

    # incremental upgrades along each customer's upper convex hull of (cost, net)
    inc_cust, inc_action, inc_cost, inc_net, inc_prev = [], [], [], [], []
    for i in pool:
        opts = np.flatnonzero(ok[i])
        pts = sorted(((cost[j], net[i, j], j) for j in opts), key=lambda t: (t[0], -t[1]))
        hull = [(0.0, 0.0, -1)]
        for c, v, j in pts:
            if v <= hull[-1][1]:
                continue  # costs more, saves no more
            while len(hull) >= 2:
                (c1, v1, _), (c2, v2, _) = hull[-2], hull[-1]
                # drop the middle point if it lies below the line to the new point
                if (v2 - v1) * (c - c1) <= (v - v1) * (c2 - c1):
                    hull.pop()
                else:
                    break
            hull.append((c, v, j))
        for (c0, v0, j0), (c1, v1, j1) in zip(hull[:-1], hull[1:]):
            inc_cust.append(i)
            inc_action.append(j1)
            inc_cost.append(c1 - c0)
            inc_net.append(v1 - v0)
            inc_prev.append(j0)
    inc_cost_a = np.asarray(inc_cost, dtype=float)
    inc_net_a = np.asarray(inc_net, dtype=float)
    ratio = np.where(inc_cost_a > 0, inc_net_a / np.where(inc_cost_a > 0, inc_cost_a, 1), np.inf)
    order = np.lexsort((np.asarray(inc_cust), -ratio))  # best ratio first; ties by customer
    chosen: dict[int, int] = {}
    spent = 0.0
    lp_bound = 0.0
    objective = 0.0
    fractional_done = False
    for k in order:
        i, j, c, v, j0 = inc_cust[k], inc_action[k], inc_cost_a[k], inc_net_a[k], inc_prev[k]
        if chosen.get(i, -1) != j0:
            continue  # its previous hull step was not taken
        if spent + c <= budget + 1e-9:
            chosen[i] = j
            spent += c
            objective += v
            if not fractional_done:
                lp_bound += v
        else:
            if not fractional_done:
                lp_bound += v * (budget - spent) / c if c > 0 else v
                fractional_done = True
    if not fractional_done:
        lp_bound = objective  # every upgrade fitted: the plan is the LP (and integer) optimum

    rows = []
    for i, j in chosen.items():
        rows.append((ids[i], "treatment", actions[j].name, float(cost[j]), float(saved[i, j])))
    for i in np.flatnonzero(in_control):
        rows.append((ids[i], "control", "none", 0.0, 0.0))
    plan = pd.DataFrame(rows, columns=["customer_id", "group", "action", "cost", "expected_saved_value"])
    extra = df.set_index(df["customer_id"].astype(str))
    for col in ["segment", "churn_probability", "predicted_clv", "value_if_retained", "value_at_risk"]:
        if col in extra.columns:
            plan[col] = extra[col].reindex(plan["customer_id"]).to_numpy()
    plan = plan.sort_values(["group", "expected_saved_value", "customer_id"], ascending=[False, False, True], kind="stable")
    plan = plan.reset_index(drop=True)
    t = plan[plan["group"] == "treatment"]
    summary = t.groupby("action").agg(
        customers=("customer_id", "size"), cost=("cost", "sum"), expected_saved_value=("expected_saved_value", "sum")
    )
    summary["net_value"] = summary["expected_saved_value"] - summary["cost"]
    summary["roi"] = summary["net_value"] / summary["cost"].where(summary["cost"] > 0)
    total = pd.DataFrame(
        {"customers": [len(t)], "cost": [t["cost"].sum()], "expected_saved_value": [t["expected_saved_value"].sum()]},
        index=pd.Index(["total"], name="action"),
    )
    total["net_value"] = total["expected_saved_value"] - total["cost"]
    total["roi"] = total["net_value"] / total["cost"].where(total["cost"] > 0)
    summary = pd.concat([summary, total])
    return CampaignPlan(plan, summary, float(budget), float(objective), float(lp_bound), "LP-hull greedy (multiple-choice knapsack)")
