"""At-risk lists and a budgeted retention-campaign planner with a persistent control group.

Who may get what (:func:`eligibility`): an action is eligible for a customer when the customer's
``segment`` is in the action's ``segments`` (or they are ``all``), the segment's playbook entry
allows it (``segments.playbook``) and every ``requires`` condition holds on the customer's row
(e.g. ``n_complaint_90d > 0``; a missing value fails, an absent column makes the action eligible
for nobody and the plan says so in a note).

Value: action ``a`` for customer ``i`` costs ``c_a`` and is expected to save
``churn_probability_i x churn_reduction_a x value_if_retained_i`` (currency: the value the
customer brings over the CLV horizon if they stay, so a save is worth what is kept); its net
value is that minus the cost. ``value_if_retained`` already includes ``clv.margin`` (the CLV
model multiplies spend by it), so saved value, net value and ROI are on profit at that margin and
the margin is never applied twice; with the 1.0 default they are on *revenue*, and plans,
summaries and reports say so (:func:`assumptions`). ``churn_reduction`` is an assumption until a
read-out measures it (:func:`apply_effects`): each action's ``effect_source`` says which.
``recommended_action`` (:func:`recommended_actions`) is the
eligible action with the best net value, ``none`` when none is positive: what the plan gives
the customer when the budget is not binding.

Planning is a multiple-choice knapsack: every customer gets at most one action, maximising the sum
of net values within the budget. Method (Sinha & Zoltners 1979): per customer, the options that
lie on the upper convex hull of (cost, net value) become incremental upgrades with decreasing
net value per unit of cost (the customer's upgrade path, ending at the recommended action);
taking upgrades across customers in order of that ratio solves the LP relaxation exactly, with
at most one fractional upgrade. Dropping it gives a feasible plan whose objective is within one
upgrade's net value of the LP optimum, itself an upper bound of the integer optimum: the plan
reports that bound (``lp_bound``) and the gap, so "near-optimal" is a number, not a claim.
Leftover budget is then spent greedily on upgrades that still fit.

Control group: a customer is held out when ``u = hash(seed, customer id)`` (uniform in [0, 1)) is
below ``control_share``. Held-out customers are not in the budgeted selection; the treatment
group spends the budget. The marginal ratio ``lambda`` is the net value per unit of cost of the
upgrade the budget could not fund (0 when everything worth doing fits): the LP selects exactly
the upgrades with a ratio above it. The control group is the held-out customers whose first
upgrade has a ratio above ``lambda``, i.e. those the same rule would have selected, each with the
action it would have given them (``planned_action``). Control and treatment are then random
splits of the same selected population (balanced in risk and value), about ``control_share`` of
the selected customers are control, and because the hash does not depend on the candidate set a
customer held out once is control whenever a later plan with the same seed selects them, and a
treated customer never becomes control. Plan totals, the objective and ``lp_bound`` are those of
the treatment group (control customers cost nothing).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from churnml.config import ActionConfig, CampaignConfig, SegmentsConfig

__all__ = ["CampaignPlan", "Eligibility", "apply_effects", "assumptions", "at_risk_list", "at_risk_rows", "control_mask", "effect_source", "eligibility",
           "plan_campaign", "power", "recommended_actions"]

ASSUMED_DEFAULT = "assumed: default catalogue"
ASSUMED_CONFIGURED = "assumed: configured, not measured"
REVENUE_WARNING = ("No margin is configured (clv.margin is 1.0): saved value and ROI are on revenue, not profit. "
                   "Set clv.margin for ROI on profit.")
ASSUMED_WARNING = "No action's effect has been measured: every churn reduction is an assumption."


def effect_source(action: ActionConfig) -> str:
    """Where an action's ``churn_reduction`` comes from: its ``effect_source`` when set (e.g.
    "measured: read-out ..."), else "assumed: default catalogue" for an unedited default action,
    else "assumed: configured, not measured"."""
    if action.effect_source:
        return action.effect_source
    from churnml.config import default_actions

    same = any(d.name == action.name and d.cost == action.cost and d.churn_reduction == action.churn_reduction
               for d in default_actions())
    return ASSUMED_DEFAULT if same else ASSUMED_CONFIGURED


def is_measured(action: ActionConfig) -> bool:
    """The action's effect was measured by a read-out (``effect_source`` starts with "measured")."""
    return effect_source(action).startswith("measured")


def assumptions(config: CampaignConfig | None = None, margin: float = 1.0) -> dict:
    """What every saved value, net value and ROI rests on: ``margin`` (the profit margin on spend
    included in value_if_retained, ``clv.margin``), ``roi_basis`` ("profit" or "revenue" when the
    margin is 1.0), each action's ``cost`` (currency), ``churn_reduction`` and ``effect_source``,
    and ``warnings``: short sentences for a margin of 1.0 and for effects that are all assumed."""
    cfg = config or CampaignConfig()
    m = float(margin)
    warnings = []
    if m == 1.0:
        warnings.append(REVENUE_WARNING)
    if cfg.actions and not any(is_measured(a) for a in cfg.actions):
        warnings.append(ASSUMED_WARNING)
    return {
        "margin": m,
        "roi_basis": "revenue" if m == 1.0 else "profit",
        "actions": [{"name": a.name, "label": a.display_label, "cost": a.cost, "churn_reduction": a.churn_reduction,
                     "effect_source": effect_source(a)} for a in cfg.actions],
        "warnings": warnings,
    }

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
    "reasons": "Risk drivers",
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
    df = _by_value_at_risk(df)
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


def _by_value_at_risk(df: pd.DataFrame) -> pd.DataFrame:
    """Highest value at risk first, ties by customer id: the order of every at-risk list."""
    return df.sort_values(["value_at_risk", "customer_id"], ascending=[False, True], kind="stable")


def at_risk_rows(scores: pd.DataFrame, tiers=("high",), top: int | None = 1000) -> pd.DataFrame:
    """The customers of ``churnml run``'s at-risk list (``output.at_risk_tiers``/``at_risk_top``):
    scores rows whose ``risk_tier`` is in ``tiers``, by value at risk (currency, highest first,
    ties by id), the first ``top``. ``at_risk.xlsx`` and the report's table both show these rows,
    in this order."""
    df = scores.reset_index() if "customer_id" not in scores.columns else scores
    df = _by_value_at_risk(df.loc[df["risk_tier"].isin(list(tiers))])
    return df.head(top) if top is not None else df


def _uniform(customer_ids, seed: int) -> np.ndarray:
    """``hash(seed, id)`` as a number uniform in [0, 1): blake2b of ``"{seed}:{id}"``."""
    salt = f"{seed}:".encode()
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(salt + str(c).encode(), digest_size=8).digest(), "big") / 2**64 for c in customer_ids),
        dtype=float,
        count=len(customer_ids),
    )


def control_mask(customer_ids, share: float, seed: int) -> np.ndarray:
    """Held-out customers: those whose ``hash(seed, id)``, uniform in [0, 1), is below ``share``.
    A threshold, not a count, so whether a customer is held out depends on nothing but their id
    and the seed: the same customers are held out in every campaign with that seed, whatever the
    other candidates, and about ``share`` of any set of customers is held out."""
    return _uniform(customer_ids, seed) < share


# --------------------------------------------------------------------------- eligibility and value

_OPS = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal, "==": np.equal, "!=": np.not_equal}


@dataclasses.dataclass
class Eligibility:
    """Which customer (row) may get which action (column): ``mask[i, j]`` for ``actions[j]``;
    ``notes`` are one-line explanations of actions that are eligible for nobody."""

    actions: list[ActionConfig]
    mask: np.ndarray
    notes: list[str]


def _playbook(playbook: Mapping | SegmentsConfig | None) -> Mapping:
    if playbook is None:
        return SegmentsConfig().playbook
    return playbook.playbook if isinstance(playbook, SegmentsConfig) else playbook


def _is_event_feature(col: str) -> bool:
    return bool(re.match(r"^(n_.+_(\d+d|total)|days_since_last_.+|last_.+)$", col)) and not col.startswith("n_purchases_")


def eligibility(scores: pd.DataFrame, config: CampaignConfig | None = None, playbook: Mapping | SegmentsConfig | None = None) -> Eligibility:
    """Eligibility of every customer (row of ``scores``) for every action of the catalog: segment
    in the action's ``segments``, action allowed by the segment's ``playbook`` entry (``None`` =
    the default playbook; a :class:`~churnml.config.SegmentsConfig` gives its playbook) and every
    ``requires`` condition true. Raises DataError when a required column is not numeric."""
    from churnml.errors import DataError

    cfg = config or CampaignConfig()
    book = _playbook(playbook)
    n = len(scores)
    has_segment = "segment" in scores.columns
    seg = scores["segment"].astype(str).to_numpy() if has_segment else np.full(n, "")
    uniq, inv = np.unique(seg, return_inverse=True)
    mask = np.ones((n, len(cfg.actions)), dtype=bool)
    notes: list[str] = []
    for j, a in enumerate(cfg.actions):
        if a.segments != "all":
            if not has_segment:
                notes.append(f"{a.name}: eligible for nobody: the scores have no segment column and the action is limited to {a.segments}")
            mask[:, j] &= np.isin(seg, a.segments)
        allowed = np.array([(e := book.get(str(u), "all")) == "all" or (isinstance(e, list) and a.name in e) for u in uniq], dtype=bool)
        mask[:, j] &= allowed[inv.ravel()] if len(uniq) else np.ones(n, dtype=bool)
        for col, op, value in a.conditions:
            if col not in scores.columns:
                why = (" (an event feature: it exists only when the data has an events table, data.events)"
                       if _is_event_feature(col) else "")
                notes.append(f"{a.name}: eligible for nobody: the scores have no column {col}, needed by '{col} {op} {value:g}'{why}")
                mask[:, j] = False
                continue
            x = scores[col]
            if not (pd.api.types.is_numeric_dtype(x.dtype) or pd.api.types.is_bool_dtype(x.dtype)):
                bad = x.dropna().astype(str).head(3).tolist()
                raise DataError(f"campaign.actions[{a.name}].requires '{col} {op} {value:g}': column {col} is not numeric "
                                f"({x.dtype}), e.g. {bad}")
            v = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            mask[:, j] &= ~np.isnan(v) & _OPS[op](v, value)
    return Eligibility(list(cfg.actions), mask, notes)


def _value_at_stake(df: pd.DataFrame) -> np.ndarray:
    """churn probability x value if retained (negative values count as 0), currency."""
    p = pd.to_numeric(df["churn_probability"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    v = pd.to_numeric(df[_value_column(df)], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return p * np.clip(v, 0, None)


def _economics(df: pd.DataFrame, actions: list[ActionConfig], uplift=None,
               value_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cost per action, expected saved value n x k, net value n x k), currency.

    Without ``uplift``: churn_probability x churn_reduction x value_if_retained x
    ``value_scale`` (1 when value_if_retained is already on the plan's margin; the plan's margin /
    the scores' margin otherwise, so the margin is applied exactly once). With ``uplift``
    (estimated increase of each customer's probability of staying when contacted, from an uplift
    model: an array for every action, or a mapping action name -> array; actions it does not name
    keep the catalog's rule): uplift x value_if_retained, the expected incremental value. A
    negative uplift (contact drives the customer away) makes every action a loss for them."""
    cost = np.array([a.cost for a in actions], dtype=float)
    red = np.array([a.churn_reduction for a in actions], dtype=float)
    stake = _value_at_stake(df) * value_scale
    saved = stake[:, None] * red[None, :]
    if uplift is not None:
        value = np.clip(df[_value_column(df)].to_numpy(dtype=float), 0, None) * value_scale
        for j, a in enumerate(actions):
            u = uplift.get(a.name) if isinstance(uplift, Mapping) else uplift
            if u is None:
                continue
            u = np.asarray(u, dtype=float)
            if u.shape != (len(df),) or not np.isfinite(u).all():
                raise ValueError(f"uplift for {a.name}: expected {len(df)} finite values, got shape {u.shape}")
            saved[:, j] = u * value
    return cost, saved, saved - cost[None, :]


def _best(ok: np.ndarray, net: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Per row the column of the best net value among ``ok`` ones (ties: cheaper, then earlier in
    the catalog), -1 when no column is ok. The top of the plan's upgrade path picks the same."""
    if not ok.size:
        return np.full(len(ok), -1)
    m = np.where(ok, net, -np.inf)
    top = ok & (m == m.max(axis=1, keepdims=True))
    c = np.where(top, cost[None, :], np.inf)
    top &= c == c.min(axis=1, keepdims=True)
    return np.where(ok.any(axis=1), np.argmax(top, axis=1), -1)


def recommended_actions(
    scores: pd.DataFrame, config: CampaignConfig | None = None, playbook: Mapping | SegmentsConfig | None = None
) -> pd.Series:
    """``recommended_action`` per customer (index of ``scores``): the eligible action with the
    best expected net value (expected saved value - cost, currency), ``"none"`` when no eligible
    action has a positive one. It is what :func:`plan_campaign` gives a treated customer when
    the budget is not binding; a tighter budget may give a cheaper action on the way to it."""
    cfg = config or CampaignConfig()
    el = eligibility(scores, cfg, playbook)
    cost, _, net = _economics(scores, el.actions)
    j = _best(el.mask & (net > 0), net, cost)
    names = np.array([a.name for a in el.actions] + ["none"], dtype=object)
    return pd.Series(names[j], index=scores.index, name="recommended_action")


# --------------------------------------------------------------------------- the plan


@dataclasses.dataclass
class CampaignPlan:
    """The plan (treatment and control rows), its summary and the optimality certificate.

    ``marginal_ratio`` is the net value per unit of cost (currency/currency) of the upgrade the
    budget could not fund, 0 when everything worth doing fitted: the control group is the
    held-out customers whose first upgrade beats it. ``notes`` explain actions eligible for
    nobody and other things a planner should know, one line each. ``assumptions`` is what the
    values rest on (:func:`assumptions`: the margin, ROI basis, each action's effect and its
    source, and the warnings); ``warnings`` are its warnings, short sentences to show loudly."""

    plan: pd.DataFrame
    summary: pd.DataFrame
    budget: float
    objective: float  # expected saved value - cost of the treatment group
    lp_bound: float  # upper bound on the best achievable objective
    method: str
    marginal_ratio: float = 0.0
    notes: list[str] = dataclasses.field(default_factory=list)
    assumptions: dict = dataclasses.field(default_factory=lambda: assumptions())

    @property
    def margin(self) -> float:
        return float(self.assumptions["margin"])

    @property
    def warnings(self) -> list[str]:
        return list(self.assumptions["warnings"])

    @property
    def gap(self) -> float:
        return float(self.lp_bound - self.objective)

    def totals(self) -> dict[str, float]:
        """Treatment totals (currency, on the stated margin: ``roi_basis`` "profit", or "revenue"
        when the margin is 1.0), group sizes and the certificate; control costs nothing."""
        t = self.plan[self.plan["group"] == "treatment"]
        n_control = float((self.plan["group"] == "control").sum())
        cost = float(t["cost"].sum())
        saved = float(t["expected_saved_value"].sum())
        return {
            "budget": self.budget,
            "cost": cost,
            "expected_saved_value": saved,
            "net_value": saved - cost,
            "roi": (saved - cost) / cost if cost > 0 else float("nan"),
            "treatment_customers": float(len(t)),
            "control_customers": n_control,
            "control_share_of_selected": n_control / len(self.plan) if len(self.plan) else float("nan"),
            "marginal_ratio": self.marginal_ratio,
            "lp_bound": self.lp_bound,
            "gap_to_bound": self.gap,
            "margin": self.margin,
            "roi_basis": self.assumptions["roi_basis"],
        }


def _upgrade_paths(rows: np.ndarray, ok: np.ndarray, cost: np.ndarray, net: np.ndarray):
    """Incremental upgrades along each customer's upper convex hull of (cost, net value):
    arrays (customer row, action, extra cost, extra net value, previous action or -1)."""
    inc_cust, inc_action, inc_cost, inc_net, inc_prev = [], [], [], [], []
    for i in rows:
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
    c = np.asarray(inc_cost, dtype=float)
    v = np.asarray(inc_net, dtype=float)
    ratio = np.where(c > 0, v / np.where(c > 0, c, 1), np.inf)
    return np.asarray(inc_cust, dtype=int), np.asarray(inc_action, dtype=int), c, v, np.asarray(inc_prev, dtype=int), ratio


def plan_campaign(
    scores: pd.DataFrame,
    budget: float,
    config: CampaignConfig | None = None,
    *,
    playbook: Mapping | SegmentsConfig | None = None,
    uplift=None,
    margin: float = 1.0,
    value_margin: float | None = None,
) -> CampaignPlan:
    """Choose at most one eligible action per customer to maximise expected saved value minus
    cost within ``budget`` (currency), and hold out the control group within the customers that
    rule selects. ``playbook``: the segments' allowed actions (``segments.playbook``; ``None`` =
    the default). See the module docstring for the method and the control rule.

    The plan has one row per selected customer: ``customer_id, group`` (treatment/control),
    ``action`` (``none`` for control), ``cost, expected_saved_value`` (currency, 0 for control),
    the customer's ``segment, churn_probability, value_if_retained, value_at_risk``, then
    ``action_label`` (the action's human name), ``planned_action`` and
    ``planned_expected_saved_value`` (what the rule gives the customer, for control too: the
    per-action comparison), ``recommended_action`` (the best action with an unlimited budget),
    ``predicted_clv`` and ``u`` (the hold-out hash, in [0, 1)).

    ``uplift``: per-customer estimated uplift (see ``_economics``): customers are then chosen by
    expected incremental value (uplift x value if retained) minus cost instead of risk x value.

    ``margin``: the profit margin on spend the plan's values are on (``clv.margin``; 1.0 = revenue,
    which the plan's ``assumptions`` and ``warnings`` say). ``value_margin``: the margin already
    inside the scores' value_if_retained (``None`` = ``margin``, as when the same config scored
    them); when it differs, values are rescaled by ``margin / value_margin``, so the margin is
    applied exactly once. The plan's ``margin`` and ``effect_source`` columns state both
    assumptions on every row."""
    cfg = config or CampaignConfig()
    if budget < 0:
        raise ValueError("budget must not be negative")
    if not margin > 0 or (value_margin is not None and not value_margin > 0):
        raise ValueError("margin and value_margin must be positive")
    scale = 1.0 if value_margin is None else float(margin) / float(value_margin)
    df = scores.reset_index() if "customer_id" not in scores.columns else scores.reset_index(drop=True)
    ids = df["customer_id"].astype(str).to_numpy()
    el = eligibility(df, cfg, playbook)
    actions = el.actions
    notes = list(el.notes)
    cost, saved, net = _economics(df, actions, uplift, value_scale=scale)
    if scale != 1.0:
        notes.append(f"value_if_retained in the scores is on margin {value_margin:g}; the plan uses margin {margin:g} "
                     f"(values x {scale:.4g})")
    ok = el.mask & (net > 0)
    names = np.array([a.name for a in actions] + ["none"], dtype=object)
    labels = {a.name: a.display_label for a in actions}
    recommended = names[_best(ok, net, cost)]
    if "recommended_action" in df.columns:
        differ = (df["recommended_action"].astype(str).to_numpy() != recommended)
        if differ.any():
            ex = ", ".join(f"{ids[i]} ({df['recommended_action'].iloc[i]} -> {recommended[i]})" for i in np.flatnonzero(differ)[:3])
            notes.append(f"recommended_action in the scores differs from this config's for {int(differ.sum()):,} customers "
                         f"(scored with another action catalog or playbook?), e.g. {ex}; the plan uses this config's")
    cand = np.flatnonzero(ok.any(axis=1))
    if len(ids) and not len(cand):
        best = np.where(el.mask, net, -np.inf).max(initial=-np.inf)
        notes.append("no action pays for any customer on these assumptions: expected saved value is at most the cost for "
                     f"everyone (best expected net value {best:,.2f})" if np.isfinite(best) else
                     "no action is eligible for any customer")
    u = np.full(len(ids), np.nan)
    u[cand] = _uniform(ids[cand], cfg.seed)
    held = np.zeros(len(ids), dtype=bool)
    held[cand] = u[cand] < cfg.control_share

    inc_cust, inc_action, inc_cost, inc_net, inc_prev, ratio = _upgrade_paths(cand, ok, cost, net)
    order = np.lexsort((inc_cust, -ratio))  # best ratio first; ties by customer
    chosen: dict[int, int] = {}
    spent = 0.0
    lp_bound = 0.0
    objective = 0.0
    marginal = None
    for k in order:
        i, j, c, v, j0 = inc_cust[k], inc_action[k], inc_cost[k], inc_net[k], inc_prev[k]
        if held[i] or chosen.get(i, -1) != j0:
            continue  # held out, or its previous hull step was not taken
        if spent + c <= budget + 1e-9:
            chosen[i] = j
            spent += c
            objective += v
            if marginal is None:
                lp_bound += v
        elif marginal is None:
            lp_bound += v * (budget - spent) / c if c > 0 else v
            marginal = float(ratio[k])
    if marginal is None:
        marginal = 0.0
        lp_bound = objective  # every upgrade fitted: the plan is the LP (and integer) optimum
    # control: the held-out customers' upgrades that beat the marginal ratio, in path order
    would: dict[int, int] = {}
    for k in np.flatnonzero(held[inc_cust] & (ratio > marginal)):
        i = inc_cust[k]
        if would.get(i, -1) == inc_prev[k]:
            would[i] = inc_action[k]
    if cfg.control_share > 0 and len(chosen) and not would:
        notes.append(f"control group is empty: no held-out customer (hash < {cfg.control_share:g}) would have been selected")

    rows = []
    for i, j in chosen.items():
        a = actions[j].name
        rows.append((ids[i], "treatment", a, labels[a], float(cost[j]), float(saved[i, j]), a, float(saved[i, j]), recommended[i], u[i]))
    for i, j in would.items():
        a = actions[j].name
        rows.append((ids[i], "control", "none", "No action (control group)", 0.0, 0.0, a, float(saved[i, j]), recommended[i], u[i]))
    plan = pd.DataFrame(rows, columns=["customer_id", "group", "action", "action_label", "cost", "expected_saved_value",
                                       "planned_action", "planned_expected_saved_value", "recommended_action", "u"])
    extra = df.set_index(df["customer_id"].astype(str))
    for col in ["segment", "churn_probability", "predicted_clv", "value_if_retained", "value_at_risk"]:
        if col in extra.columns:
            plan[col] = extra[col].reindex(plan["customer_id"]).to_numpy()
    first = ["customer_id", "group", "action", "cost", "expected_saved_value", "segment", "churn_probability", "value_if_retained",
             "value_at_risk"]
    plan = plan[[c for c in first if c in plan.columns] + [c for c in plan.columns if c not in first]]
    sources = {a.name: effect_source(a) for a in actions}
    plan["margin"] = float(margin)
    plan["effect_source"] = plan["planned_action"].map(sources).astype(object)
    plan = plan.sort_values(["group", "expected_saved_value", "planned_expected_saved_value", "customer_id"],
                            ascending=[False, False, False, True], kind="stable").reset_index(drop=True)
    basis = assumptions(cfg, margin)
    summary = _summary(plan, labels)
    summary["churn_reduction"] = summary.index.map({a.name: a.churn_reduction for a in actions})
    summary["effect_source"] = summary.index.map(lambda a: sources.get(a, ""))
    return CampaignPlan(plan, summary, float(budget), float(objective), float(lp_bound),
                        "LP-hull greedy (multiple-choice knapsack)", float(marginal), notes, basis)


def _summary(plan: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """Per action: treated customers, cost, expected saved value, net value, ROI (currency, on the
    plan's margin) and the control customers the same rule would have given it; then a total row.
    :func:`plan_campaign` adds each action's ``churn_reduction`` and ``effect_source``."""
    t = plan[plan["group"] == "treatment"]
    c = plan[plan["group"] == "control"]
    summary = t.groupby("action").agg(
        customers=("customer_id", "size"), cost=("cost", "sum"), expected_saved_value=("expected_saved_value", "sum")
    )
    summary = summary.reindex(summary.index.union(c["planned_action"].unique())).fillna(0)
    summary["customers"] = summary["customers"].astype(int)
    summary["control_customers"] = c.groupby("planned_action").size().reindex(summary.index).fillna(0).astype(int)
    total = pd.DataFrame(
        {"customers": [len(t)], "cost": [t["cost"].sum()], "expected_saved_value": [t["expected_saved_value"].sum()],
         "control_customers": [len(c)]},
        index=pd.Index(["total"], name="action"),
    )
    summary = pd.concat([summary, total])
    summary.index.name = "action"
    summary["net_value"] = summary["expected_saved_value"] - summary["cost"]
    summary["roi"] = summary["net_value"] / summary["cost"].where(summary["cost"] > 0)
    summary.insert(0, "label", [labels.get(a, "All actions") for a in summary.index])
    return summary[["label", "customers", "cost", "expected_saved_value", "net_value", "roi", "control_customers"]]


# --------------------------------------------------------------------------- measured effects and power


def apply_effects(config: CampaignConfig, readout: pd.DataFrame, *, min_n: int = 30,
                  source: str | None = None) -> tuple[CampaignConfig, list[str]]:
    """The catalog with measured effects: for every action with a read-out row (``level ==
    "action"``, see :func:`churnml.readout.readout`) and at least ``min_n`` customers per arm,
    ``churn_reduction`` becomes the lower 95% bound of the measured relative churn reduction,
    clipped to [0, 1] (conservative: a not-significant effect's bound is at or below 0, so the
    action gets 0 and drops out of the next plan until the catalog is edited). Actions measured
    on fewer customers keep their guess. A replaced action's ``effect_source`` becomes
    ``"measured: read-out <source>, n=<treated>/<control>, measured <r>, 95% interval [<low>,
    <high>]"`` (``source``: the read-out's file name or date); kept ones stay assumed. Returns the
    new config and one line per action saying what was replaced or kept."""
    from churnml.errors import DataError

    missing = [c for c in ("level", "name", "n_treatment", "n_control", "churn_reduction", "churn_reduction_low") if c not in readout.columns]
    if missing:
        raise DataError(f"--effects: not a churnml read-out, missing column(s) {missing}")
    rows = readout.loc[readout["level"].astype(str) == "action"].set_index(readout.loc[readout["level"].astype(str) == "action", "name"].astype(str))
    actions, lines = [], []
    for a in config.actions:
        if a.name not in rows.index:
            actions.append(a)
            lines.append(f"{a.name}: kept {a.churn_reduction:.3f} (no measurement in the read-out)")
            continue
        r = rows.loc[a.name]
        n = int(min(r["n_treatment"], r["n_control"]))
        low = float(r["churn_reduction_low"])
        if n < min_n or not np.isfinite(low):
            actions.append(a)
            lines.append(f"{a.name}: kept {a.churn_reduction:.3f} (measured on too few customers: {n} in the smaller arm, < {min_n})")
            continue
        new = float(np.clip(low, 0.0, 1.0))
        high = float(r["churn_reduction_high"]) if "churn_reduction_high" in r.index else float("nan")
        where = f"read-out {source}" if source else "read-out"
        label = (f"measured: {where}, n={int(r['n_treatment'])} treated/{int(r['n_control'])} control, measured "
                 f"{float(r['churn_reduction']):.3f}, 95% interval [{low:.3f}, {high:.3f}], lower bound used")
        actions.append(a.model_copy(update={"churn_reduction": new, "effect_source": label}))
        lines.append(f"{a.name}: churn_reduction {a.churn_reduction:.3f} -> {new:.3f} (lower 95% bound of the measured "
                     f"{float(r['churn_reduction']):.3f}, {int(r['n_treatment'])} treated / {int(r['n_control'])} control)")
    return config.model_copy(update={"actions": actions}), lines


def power(plan: pd.DataFrame, config: CampaignConfig | None = None, *, alpha: float = 0.05, power: float = 0.8,
          min_control: int = 30) -> dict:
    """What the plan's control group can detect: the minimum detectable difference in retention
    (share of customers, two-sided ``alpha``, ``power``, two-proportion normal approximation at
    the baseline retention 1 - mean churn_probability of the selected customers,
    ``(z_{1-alpha/2} + z_power) * sqrt(p (1 - p) (1/n_t + 1/n_c))``), the plan's expected effect
    (mean over treated of churn_probability x the action's churn_reduction) and a warning when
    the control group has fewer than ``min_control`` customers or the MDE exceeds the expected
    effect."""
    from scipy.stats import norm

    cfg = config or CampaignConfig()
    red = {a.name: a.churn_reduction for a in cfg.actions}
    t = plan.loc[plan["group"] == "treatment"]
    n_t, n_c = int(len(t)), int((plan["group"] == "control").sum())
    p = 1.0 - float(plan["churn_probability"].mean()) if len(plan) else float("nan")
    z = float(norm.ppf(1 - alpha / 2) + norm.ppf(power))
    mde = z * np.sqrt(p * (1 - p) * (1 / n_t + 1 / n_c)) if n_t and n_c else float("inf")
    expected = float((t["churn_probability"] * t["action"].map(red).fillna(0.0)).mean()) if n_t else float("nan")
    warning = None
    if n_c < min_control:
        warning = (f"the control group has {n_c} customers (< {min_control}): too small to read out; raise campaign.control_share "
                   "or the budget")
    elif not mde <= expected:
        warning = (f"the control group can only detect a retention difference of {mde * 100:.1f} pp, larger than the plan's "
                   f"expected effect {expected * 100:.1f} pp: the read-out will likely be 'not significant' even if the "
                   "campaign works; raise campaign.control_share")
    finite = lambda v: float(v) if np.isfinite(v) else None  # noqa: E731  (JSON has no inf/NaN)
    return {"n_treatment": n_t, "n_control": n_c, "baseline_retention": finite(p), "alpha": alpha, "power": power,
            "min_detectable_difference": finite(mde), "expected_effect": finite(expected), "warning": warning}
