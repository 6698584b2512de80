"""Typed configuration loaded from ``configs/*.yaml``.

Every section is a pydantic model that forbids unknown keys, so a typo such as
``data.colums`` is an error naming the key instead of a silently ignored setting.
``load_config`` resolves relative data paths against the config file's folder.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from churnml.errors import ConfigError

__all__ = [
    "ActionConfig",
    "AuditConfig",
    "CampaignConfig",
    "ScoreConfig",
    "SegmentsConfig",
    "TierConfig",
    "ChurnConfig",
    "CLVConfig",
    "ColumnsConfig",
    "Config",
    "DataConfig",
    "EventColumnsConfig",
    "FeaturesConfig",
    "MlflowConfig",
    "RFMConfig",
    "RFMSegmentRule",
    "default_actions",
    "load_config",
    "parse_condition",
]


def _share_check(key: str, v: float, *, low_open: bool = False, high_open: bool = False) -> float:
    """``v`` as a share in [0, 1] (ends open as asked); above 1 the message says it reads as a
    percentage: "write 0.3, not 30"."""
    if v > 1:
        hint = f"write {v / 100:g}, not {v:g}" if v <= 100 else "write 0.3, not 30"
        raise ValueError(f"{key} is a share between 0 and 1, got {v:g}: {hint}")
    if v < 0 or (low_open and v == 0) or (high_open and v == 1):
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"{key} must be in {lo}0, 1{hi}, got {v:g}")
    return v


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ColumnsConfig(_Section):
    """Map the canonical transaction fields to the column names in the user's file.

    The amount of an order line is ``amount`` when that column is mapped, otherwise
    ``quantity x unit_price``; with neither, the log has purchase dates only.
    """

    customer_id: str = "customer_id"
    timestamp: str = "timestamp"
    order_id: str | None = None
    amount: str | None = "amount"
    quantity: str | None = None
    unit_price: str | None = None

    @model_validator(mode="after")
    def _amount_source(self) -> "ColumnsConfig":
        if (self.quantity is None) != (self.unit_price is None):
            raise ValueError("data.columns.quantity and data.columns.unit_price must be given together")
        return self


class EventColumnsConfig(_Section):
    """Column names of the optional customer-events table (tickets, complaints, NPS, CSAT)."""

    customer_id: str = "customer_id"
    timestamp: str = "timestamp"
    type: str = "type"
    value: str | None = "value"


class DataConfig(_Section):
    """Where the data lives and how to read it.

    ``transactions`` is a CSV (``.gz`` allowed), Parquet or Excel ``.xlsx`` path, or
    ``bundled:NAME`` for a data set shipped with an installed package (``bundled:cdnow_master``,
    ``bundled:cdnow_sample``). The same reading rules apply to ``customers`` and ``events``:

    ``encoding``
        ``auto`` (default): a byte-order mark decides (UTF-8, UTF-16, UTF-32); UTF-16 without one
        is recognised by its zero bytes; otherwise UTF-8, and a file that is not valid UTF-8 and has
        no UTF-8 characters at all is read as Windows-1252 (Latin-1), with a note in the load
        report. Any Python codec name (``latin-1``, ``cp1252``, ``utf-16``) forces that encoding.
    ``sep``
        a literal separator (one or more characters; several are read by the slower Python
        parser), or ``\\s+`` for runs of spaces and tabs;
        ``None`` sniffs it from the header line.
    ``timezone``
        the IANA zone (``Europe/Helsinki``, ``UTC``) of timestamps written without an offset.
        Timestamps are always stored as naive UTC: ones with an offset (``+02:00``, ``Z``) are
        converted to UTC; ones without are taken as they are when ``timezone`` is ``None`` and
        converted from ``timezone`` otherwise. A column mixing both is an error unless
        ``timezone`` is set.
    ``sheet``
        the worksheet of an Excel file (name, or 0-based position); ``None`` = the first.
    ``max_abs_amount``
        the largest plausible |amount| of one order line (currency); larger values, like
        non-finite ones, are an error naming the rows.
    ``timestamp_format``
        a strftime format (``%Y%m%d``) for every timestamp; ``None`` infers one format per
        column: ISO 8601, ``YYYYMMDD``, or numeric day/month dates whose order (day-first or
        month-first) the values decide. A column that fits both orders, mixes formats, or holds
        times without a date is an error naming example rows.
    ``min_date``, ``max_date``
        the plausible window of timestamps (``YYYY-MM-DD``, both days inclusive) in the
        transactions and events; ``None`` = 1970-01-01 and the run date + 1 day (UTC). Dates
        outside are an error naming the rows.
    ``cancel_window_days``
        with ``returns: net``, how many days back a credit note looks for several orders whose
        amounts add up to its own (it then cancels them all); a credit note equal to one order
        cancels it at any age (see :func:`churnml.io.prepare_transactions`).
    """

    transactions: str | None = None
    columns: ColumnsConfig = Field(default_factory=ColumnsConfig)
    timestamp_format: str | None = None
    sep: str | None = None
    csv_names: list[str] | None = None
    encoding: str = "auto"
    timezone: str | None = None
    sheet: str | int | None = None
    max_abs_amount: float = 1e12
    min_date: str | None = None
    max_date: str | None = None
    returns: Literal["net", "drop"] = "net"
    cancel_window_days: float = Field(default=30.0, ge=0)
    customers: str | None = None
    customers_id_column: str | None = None
    events: str | None = None
    event_columns: EventColumnsConfig = Field(default_factory=EventColumnsConfig)

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        import codecs

        if v.lower() == "auto":
            return "auto"
        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(f"unknown encoding {v!r}: use auto or a codec name such as utf-8, cp1252, latin-1, utf-16") from None
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str | None) -> str | None:
        if v is None:
            return v
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}: use an IANA name such as Europe/Helsinki or UTC") from None
        return v

    @field_validator("sep")
    @classmethod
    def _sep(cls, v: str | None) -> str | None:
        if v == "\\t":  # '\t' in single quotes (YAML keeps the backslash): a tab was meant
            return "\t"
        if v is not None and (v == "" or v in ("\n", "\r", '"')):
            raise ValueError("must be a non-empty separator other than a newline or the quote character")
        return v

    @field_validator("min_date", "max_date", mode="before")
    @classmethod
    def _date(cls, v: Any) -> str | None:
        if v is None:
            return v
        import datetime

        if isinstance(v, (datetime.date, datetime.datetime)):
            v = v.isoformat()
        if not isinstance(v, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v.strip()):
            raise ValueError(f"must be a date YYYY-MM-DD or null, not {v!r}")
        try:
            import datetime as _dt

            _dt.date.fromisoformat(v.strip())
        except ValueError:
            raise ValueError(f"{v!r} is not a calendar date (YYYY-MM-DD)") from None
        return v.strip()

    @model_validator(mode="after")
    def _window(self):
        if self.min_date is not None and self.max_date is not None and self.min_date > self.max_date:
            raise ValueError(f"min_date {self.min_date} is after max_date {self.max_date}")
        return self

    @field_validator("max_abs_amount")
    @classmethod
    def _max_amount(cls, v: float) -> float:
        if not v > 0 or v == float("inf"):
            raise ValueError("must be a positive finite amount")
        return v


class FeaturesConfig(_Section):
    """Point-in-time snapshot features; windows in days, all trailing from the cutoff (exclusive)."""

    windows_days: list[int] = Field(default_factory=lambda: [30, 90, 180, 365])
    trend_window_days: int = 90
    event_types: list[str] = Field(
        default_factory=lambda: ["support_ticket", "complaint", "nps", "csat"]
    )
    event_value_types: list[str] = Field(default_factory=lambda: ["nps", "csat"])
    event_count_window_days: int = 90
    freq: str = "D"
    freq_multiplier: float = 1.0

    @field_validator("windows_days")
    @classmethod
    def _positive_windows(cls, v: list[int]) -> list[int]:
        if not v or any(w <= 0 for w in v):
            raise ValueError("windows_days must be a non-empty list of positive day counts")
        return sorted(set(v))

    @field_validator("trend_window_days", "event_count_window_days")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("must be a positive number of days")
        return v


class RFMSegmentRule(_Section):
    """One named cell range of the R x FM score grid (scores 1-5, bounds inclusive)."""

    name: str
    r: tuple[int, int]
    fm: tuple[int, int]


def _default_segments() -> list[RFMSegmentRule]:
    rules = [
        ("Champions", (5, 5), (4, 5)),
        ("Loyal Customers", (3, 4), (4, 5)),
        ("Potential Loyalists", (4, 5), (2, 3)),
        ("New Customers", (5, 5), (1, 1)),
        ("Promising", (4, 4), (1, 1)),
        ("Need Attention", (3, 3), (3, 3)),
        ("About to Sleep", (3, 3), (1, 2)),
        ("Can't Lose Them", (1, 2), (5, 5)),
        ("At Risk", (1, 2), (3, 4)),
        ("Hibernating", (2, 2), (1, 2)),
        ("Lost", (1, 1), (1, 2)),
    ]
    return [RFMSegmentRule(name=n, r=r, fm=fm) for n, r, fm in rules]


class RFMConfig(_Section):
    """Classic RFM quintile scores and the named segment grid (first matching rule wins)."""

    bins: int = 5
    fm_combine: Literal["mean", "frequency"] = "mean"
    segments: list[RFMSegmentRule] = Field(default_factory=_default_segments)

    @field_validator("bins")
    @classmethod
    def _bins(cls, v: int) -> int:
        if not 2 <= v <= 10:
            raise ValueError("bins must be between 2 and 10")
        return v


class CLVConfig(_Section):
    """BTYD models and the value model; horizon in days, discount rate per year."""

    purchase_model: Literal["bgnbd", "pareto_nbd", "mbgnbd"] = "mbgnbd"
    time_unit: Literal["W", "D"] = "W"
    horizon_days: float = 365.0
    discount_rate: float = 0.10
    margin: float = 1.0
    penalizer: float = 0.0
    spend_penalizer: float = 0.0
    corr_threshold: float = 0.3
    min_repeaters: int = 20
    value_model: Literal["btyd", "ml", "blend", "naive", "past_spend", "recent_spend", "hybrid", "auto"] = "auto"
    max_fit_customers: int | None = 200_000
    """BTYD parameters are estimated on a seeded random sample of at most this many customers
    (None = all); every customer is still scored with them. Four population parameters are
    pinned down to well under 1% by 200,000 customers, and the fit costs the same on any log."""
    ml_max_train_rows: int | None = 250_000
    """The LightGBM value model trains on a seeded random sample of at most this many customers
    (None = all)."""

    @field_validator("horizon_days", "margin")
    @classmethod
    def _positive_float(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be positive")
        return v

    @field_validator("margin")
    @classmethod
    def _margin_share(cls, v: float) -> float:
        return _share_check("clv.margin", v, low_open=True)

    @field_validator("max_fit_customers", "ml_max_train_rows")
    @classmethod
    def _cap(cls, v: int | None) -> int | None:
        if v is not None and v < 1000:
            raise ValueError("must be at least 1000 (or null for no limit)")
        return v

    @field_validator("discount_rate", "penalizer", "spend_penalizer")
    @classmethod
    def _non_negative(cls, v: float) -> float:
        if v < 0:
            raise ValueError("must not be negative")
        return v


class ChurnConfig(_Section):
    """Churn label, training cutoffs, LightGBM, calibration and the contact economics.

    A customer is in scope at cutoff T when they bought before T (within ``lookback_days`` if
    set); they churn when they make no purchase in the ``horizon_days`` days from T on.
    """

    horizon_days: int = 90
    lookback_days: int | None = None
    n_cutoffs: int = 4
    cutoff_step_days: int = 90
    backtest_cutoffs: int = 2
    bootstrap_resamples: int = 200
    min_history_days: int = 60
    calibration: Literal["isotonic", "sigmoid"] = "isotonic"
    n_estimators: int = 1000
    learning_rate: float = 0.03
    num_leaves: int = 15
    max_depth: int = 5
    min_child_samples: int = 50
    early_stopping_rounds: int = 50
    contact_cost: float = 2.0
    offer_acceptance: float = 0.2
    top_k_share: float = 0.1
    seed: int = 42
    max_train_rows: int | None = 500_000
    """LightGBM trains on at most this many (customer, cutoff) rows: above it, a seeded random
    sample of customers (the same customers at every cutoff); None = all rows."""

    @field_validator("horizon_days", "n_cutoffs", "cutoff_step_days", "backtest_cutoffs", "n_estimators")
    @classmethod
    def _horizon(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("must be positive")
        return v

    @field_validator("max_train_rows")
    @classmethod
    def _max_rows(cls, v: int | None) -> int | None:
        if v is not None and v < 1000:
            raise ValueError("must be at least 1000 (or null for no limit)")
        return v

    @field_validator("bootstrap_resamples")
    @classmethod
    def _resamples(cls, v: int) -> int:
        if v < 0:
            raise ValueError("must not be negative (0 = no bootstrap intervals)")
        return v

    @field_validator("offer_acceptance", "top_k_share")
    @classmethod
    def _share(cls, v: float, info: ValidationInfo) -> float:
        return _share_check(f"churn.{info.field_name}", v, low_open=True)


class TierConfig(_Section):
    """Tiers of a score: ``quantile`` thresholds are shares of the scored population (0.5, 0.8
    = bottom half, next 30%, top 20%); ``absolute`` thresholds are values of the score."""

    method: Literal["quantile", "absolute"] = "quantile"
    thresholds: list[float] = Field(default_factory=lambda: [0.5, 0.8])
    labels: list[str] = Field(default_factory=lambda: ["low", "medium", "high"])

    @model_validator(mode="after")
    def _consistent(self) -> "TierConfig":
        if len(self.labels) != len(self.thresholds) + 1:
            raise ValueError("labels must have one more entry than thresholds")
        if sorted(self.thresholds) != list(self.thresholds):
            raise ValueError("thresholds must be ascending")
        if self.method == "quantile" and any(not 0 < t < 1 for t in self.thresholds):
            big = [t for t in self.thresholds if t > 1]
            hint = (f": write {big[0] / 100:g}, not {big[0]:g}" if big and big[0] <= 100 else
                    ": write 0.3, not 30" if big else "")
            raise ValueError(f"quantile thresholds are shares of the scored population, each in (0, 1){hint}")
        return self


def _default_matrix() -> dict[str, str]:
    return {
        "high|high": "Save now",
        "high|medium": "Win back",
        "high|low": "Let go",
        "medium|high": "Protect",
        "medium|medium": "Nurture",
        "medium|low": "Automate",
        "low|high": "VIP",
        "low|medium": "Grow",
        "low|low": "Maintain",
    }


def _default_playbook() -> dict[str, "PlaybookEntry"]:
    # segments the business leaves alone; every other segment may get any action whose own
    # ``segments`` and ``requires`` allow it
    return {"Let go": "none", "Automate": "none", "Maintain": "none"}


PlaybookEntry = Union[Literal["all", "none"], list[str]]
"""A segment's allowed actions: ``all``, ``none`` or a non-empty list of action names."""


def _playbook_entry(segment: str, v: Any) -> Any:
    if isinstance(v, str) and v not in ("all", "none"):
        return [v]  # one action name
    if isinstance(v, list) and not v:
        raise ValueError(f"segments.playbook[{segment!r}] is an empty list, which is ambiguous: write none (no action "
                         "for this segment), all, or list the allowed action names")
    return v


class SegmentsConfig(_Section):
    """Risk tier (churn probability) x value tier (value if retained) -> segment; the playbook
    says which retention actions each segment may get.

    Risk tiers are absolute by default (churn probability below 0.3 low, from 0.6 high), so "high
    risk" means the same thing on every log and high-value customers at real risk always land in
    "Save now"; value tiers are population quantiles (top 20% high).

    ``playbook`` maps a segment name to its allowed actions: a list of ``campaign.actions`` names
    (one name alone is a one-item list), ``all``, or ``none`` (the segment is left alone). A
    segment the playbook does not name allows every action. An empty list is an error (write
    ``none``). The action a customer gets is chosen by value among the allowed ones
    (:func:`churnml.campaigns.recommended_actions`), not by the playbook."""

    risk: TierConfig = Field(default_factory=lambda: TierConfig(method="absolute", thresholds=[0.3, 0.6]))
    value: TierConfig = Field(default_factory=TierConfig)
    matrix: dict[str, str] = Field(default_factory=_default_matrix)
    playbook: dict[str, PlaybookEntry] = Field(default_factory=_default_playbook)

    @field_validator("risk", "value")
    @classmethod
    def _tier_shares(cls, v: TierConfig, info: ValidationInfo) -> TierConfig:
        # risk thresholds are churn probabilities (absolute) or shares (quantile): both in [0, 1];
        # value thresholds with method absolute are currency and may be any size
        if v.method == "quantile" or info.field_name == "risk":
            for t in v.thresholds:
                _share_check(f"segments.{info.field_name}.thresholds", t)
        return v

    @field_validator("playbook", mode="before")
    @classmethod
    def _playbook_entries(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: _playbook_entry(k, e) for k, e in v.items()}
        return v

    @model_validator(mode="after")
    def _covers(self) -> "SegmentsConfig":
        missing = [f"{r}|{v}" for r in self.risk.labels for v in self.value.labels if f"{r}|{v}" not in self.matrix]
        if missing:
            raise ValueError(f"segments.matrix lacks the cell(s) {missing}")
        names = set(self.matrix.values())
        unknown = sorted(set(self.playbook) - names)
        if unknown and "playbook" not in self.model_fields_set:
            # the default playbook names the default matrix's segments: keep those that exist
            object.__setattr__(self, "playbook", {k: e for k, e in self.playbook.items() if k in names})
        elif unknown:
            raise ValueError(f"segments.playbook names segment(s) {unknown} that segments.matrix does not; "
                             f"the segments are {sorted(names)}")
        return self

    def allowed(self, segment: str) -> "PlaybookEntry":
        """The actions the playbook allows in ``segment`` (``all`` when it does not name it)."""
        return self.playbook.get(segment, "all")


_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
CONDITION_OPERATORS = (">", ">=", "<", "<=", "==", "!=")


def parse_condition(text: str) -> tuple[str, str, float]:
    """``"n_complaint_90d > 0"`` -> ``("n_complaint_90d", ">", 0.0)``: a numeric column of the
    scores table, an operator (> >= < <= == !=) and a number; ValueError otherwise."""
    m = _CONDITION.match(text) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"requires condition {text!r} is not '<column> <op> <number>' with op one of "
                         f"{' '.join(CONDITION_OPERATORS)} (e.g. 'n_complaint_90d > 0')")
    return m.group(1), m.group(2), float(m.group(3))


class ActionConfig(_Section):
    """A retention action: cost per customer (currency), expected relative reduction of the
    churn probability (a share in [0, 1]) and who may get it.

    ``segments``
        ``all`` (the default when omitted) or a non-empty list of segment names
        (``segments.matrix`` cells). An empty list is an error: it used to mean "all" silently.
    ``requires``
        conditions on numeric columns of the scores table, all of which must hold, each
        ``"<column> <op> <number>"`` with op one of ``> >= < <= == !=`` (``"n_complaint_90d > 0"``).
        A customer whose value is missing fails the condition; when the scores have no such column
        (e.g. event features without an events table) the action is eligible for nobody and the
        plan says so.
    ``label``
        a human name for lists and plans (default: the name with spaces).
    ``effect_source``
        where ``churn_reduction`` comes from: null (the default) = an assumption, not measured;
        :func:`churnml.campaigns.apply_effects` sets ``"measured: read-out <file>, n=..., 95%
        interval [...]"`` for effects a read-out measured. Plans, summaries and reports show it.
    """

    name: str
    cost: float
    churn_reduction: float
    segments: Union[Literal["all"], list[str]] = "all"
    requires: list[str] = Field(default_factory=list)
    label: str | None = None
    description: str = ""
    effect_source: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v.strip() or v in ("none", "all"):
            raise ValueError("an action name must be non-empty and not 'none' or 'all' (reserved)")
        return v

    @field_validator("segments", mode="before")
    @classmethod
    def _segments(cls, v: Any) -> Any:
        if v is None or (isinstance(v, list) and not v):
            raise ValueError("write all (every segment) or a non-empty list of segment names; an empty list or null "
                             "is ambiguous (to drop an action, remove it from campaign.actions)")
        if isinstance(v, str) and v != "all":
            raise ValueError(f"{v!r}: write all or a list of segment names, e.g. [{v}]")
        return v

    @field_validator("requires")
    @classmethod
    def _requires(cls, v: list[str]) -> list[str]:
        out = []
        for text in v:
            col, op, value = parse_condition(text)
            out.append(f"{col} {op} {value:g}")
        return out

    @field_validator("churn_reduction")
    @classmethod
    def _reduction(cls, v: float, info: ValidationInfo) -> float:
        name = info.data.get("name")
        return _share_check(f"campaign.actions[{name}].churn_reduction" if name else "churn_reduction", v)

    @field_validator("cost")
    @classmethod
    def _cost(cls, v: float) -> float:
        if v < 0:
            raise ValueError("cost must not be negative")
        return v

    @property
    def conditions(self) -> list[tuple[str, str, float]]:
        """``requires`` parsed: (column, operator, number) triples."""
        return [parse_condition(c) for c in self.requires]

    @property
    def display_label(self) -> str:
        return self.label or self.name.replace("_", " ")


DEFAULT_EFFECT_RULE = "stated loyalty increase / 750"
"""How the default catalogue's churn_reduction figures were set (see :func:`default_actions`)."""


def default_actions() -> list[ActionConfig]:
    """The default action catalogue (``campaign.actions``): fresh objects on every call."""
    # Assumptions, not measurements. The relative ordering of cost and effect follows a Nordic
    # retention guide's table (personal contact most expensive and most effective); its figures
    # are marketing claims ("loyalty +60%"), not measured uplifts. The effects here are
    # conservative: the guide's stated loyalty increase / 750 (60% -> 0.080 for a call, 42% ->
    # 0.056 for a reward), in line with published retention-campaign uplifts of a few percentage
    # points of retention. A read-out (`churnml campaign --effects`) replaces them with measured ones.
    return [
        ActionConfig(name="personal_contact", label="Personal contact", cost=25.0, churn_reduction=0.080,
                     segments=["Save now", "Win back", "Protect", "VIP"], description="A call or meeting from a named person"),
        ActionConfig(name="fast_complaint_followup", label="Fast complaint follow-up", cost=12.0, churn_reduction=0.073,
                     requires=["n_complaint_90d > 0"], description="Resolve open complaints fast, then follow up"),
        ActionConfig(name="proactive_checkin", label="Proactive check-in", cost=6.0, churn_reduction=0.067,
                     segments=["Save now", "Win back", "Protect", "Nurture", "VIP", "Grow"], description="A proactive check-in message"),
        ActionConfig(name="personalised_offer", label="Personalised offer", cost=8.0, churn_reduction=0.064,
                     description="An offer based on what the customer buys"),
        ActionConfig(name="loyalty_reward", label="Loyalty reward", cost=10.0, churn_reduction=0.056,
                     segments=["Save now", "Protect", "VIP", "Nurture", "Grow"], description="Points, a gift or early access"),
    ]


class CampaignConfig(_Section):
    """Budgeted campaign planning: the action catalog and the persistent control group.

    ``control_share``: a customer is held out when ``hash(seed, customer id)``, a number uniform
    in [0, 1), is below it; held-out customers the plan would have selected form the control
    group, so about that share of the selected customers is control, and a customer held out
    once is held out whenever selected in a later campaign with the same ``seed``."""

    actions: list[ActionConfig] = Field(default_factory=default_actions)
    control_share: float = 0.1
    seed: int = 42

    @field_validator("control_share")
    @classmethod
    def _share(cls, v: float) -> float:
        return _share_check("campaign.control_share", v, high_open=True)

    @field_validator("actions")
    @classmethod
    def _unique(cls, v: list[ActionConfig]) -> list[ActionConfig]:
        names = [a.name for a in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"action name(s) {dup} appear more than once")
        return v

    def required_columns(self) -> list[str]:
        """The scores columns the actions' ``requires`` conditions read (in catalog order)."""
        return list(dict.fromkeys(col for a in self.actions for col, _, _ in a.conditions))


class ScoreConfig(_Section):
    """Batch scoring: customers per chunk (bounds memory), the drift warning threshold, and how
    reasons are attributed: ``path`` (default; each split on the way to a customer's leaf credits
    its feature, the cost of one prediction) or ``shap`` (TreeSHAP, exact Shapley values, about
    10x slower). Both add up exactly to the shipped churn probability's log-odds."""

    chunk_customers: int = 250_000
    psi_threshold: float = 0.2
    reasons_method: Literal["shap", "path"] = "path"


class AuditConfig(_Section):
    """The decisions audit (:mod:`churnml.audit`) at the end of ``run`` and ``score``: ``on_fail``
    ``error`` (default) refuses scores whose audit fails (exit 3, nothing written: the output would
    mislead a marketer); ``warn`` writes them and reports the failures in the run report, the
    scores' ``.meta.json``, MLflow and the console. Warnings and notes never block."""

    on_fail: Literal["error", "warn"] = "error"


class MlflowConfig(_Section):
    """Tracking: the given URI, else ``MLFLOW_TRACKING_URI``, else the embedded store
    ``mlflow.db`` (artifacts in ``mlruns/`` beside it) in the config file's folder. A relative
    ``sqlite:///`` path in a config file is relative to that folder too."""

    tracking_uri: str | None = None
    experiment: str = "churnml"
    model_name: str = "churnml"


class OutputConfig(_Section):
    """Where jobs write their files (relative to the config file's folder), and the at-risk list
    ``churnml run`` writes beside the scores: customers in the risk tiers ``at_risk_tiers``, by value
    at risk, the first ``at_risk_top`` (a list a team can work through; null = all). ``file_mode``:
    permissions of new output files (default "0600", owner only); rewritten files keep theirs."""

    dir: str = "outputs"
    at_risk_tiers: list[str] = Field(default_factory=lambda: ["high"])
    at_risk_top: int | None = 1000
    file_mode: str = "0600"

    @field_validator("file_mode", mode="before")
    @classmethod
    def _octal_mode(cls, v: Any) -> str:
        """``file_mode``: permissions of NEW output files, a quoted octal string ("0600" owner
        only, "0640" + group read); a rewritten file keeps its own mode; folders churnml creates
        get the matching 07x0/0755 mode."""
        from churnml._atomic import parse_mode

        parse_mode(v)
        return v.strip()


class ReportConfig(_Section):
    """How money is labelled in reports and lists: ``currency`` is a code or symbol shown with
    every amount (e.g. "EUR", "$"); empty = amounts in the log's currency, unlabelled."""

    currency: str = ""
    title: str = "Customer retention report"


class Config(_Section):
    """The whole churnml configuration."""

    data: DataConfig = Field(default_factory=DataConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    rfm: RFMConfig = Field(default_factory=RFMConfig)
    clv: CLVConfig = Field(default_factory=CLVConfig)
    churn: ChurnConfig = Field(default_factory=ChurnConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    segments: SegmentsConfig = Field(default_factory=SegmentsConfig)
    campaign: CampaignConfig = Field(default_factory=CampaignConfig)
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    seed: int = 42
    n_jobs: int = Field(default=0, ge=0)
    """Threads LightGBM trains with (0 = auto: every core from 100,000 rows on, one thread below).
    Results do not depend on it (LightGBM's deterministic mode)."""

    @model_validator(mode="after")
    def _actions_and_segments_agree(self) -> "Config":
        segment_names = set(self.segments.matrix.values())
        action_names = {a.name for a in self.campaign.actions}
        problems = []
        for a in self.campaign.actions:
            unknown = sorted(set(a.segments) - segment_names) if a.segments != "all" else []
            if unknown:
                problems.append(f"campaign.actions[{a.name}].segments names {unknown}, not segments of segments.matrix "
                                f"{sorted(segment_names)}")
            for col, _, _ in a.conditions:
                m = re.match(r"^n_(.+)_(\d+)d$", col)
                if m and m.group(1) in self.features.event_types and int(m.group(2)) != self.features.event_count_window_days:
                    w = self.features.event_count_window_days
                    problems.append(f"campaign.actions[{a.name}].requires reads {col}, but features.event_count_window_days is {w}: "
                                    f"the column is n_{m.group(1)}_{w}d")
        for seg, allowed in self.segments.playbook.items():
            unknown = sorted(set(allowed) - action_names) if isinstance(allowed, list) else []
            if unknown:
                problems.append(f"segments.playbook[{seg}] names {unknown}, not actions of campaign.actions {sorted(action_names)}")
        if problems and "actions" not in self.campaign.model_fields_set:
            problems.append("the default campaign.actions name the default segments: with your own segments.matrix, "
                            "write campaign.actions too")
        if problems:
            raise ValueError("; ".join(problems))
        return self
    _base_dir: Path | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> Path:
        """The folder relative paths of this config resolve against: the config file's folder,
        or the working directory for a config not read from a file."""
        return self._base_dir or Path.cwd()

    def with_overrides(
        self,
        *,
        transactions: str | Path | None = None,
        tracking_uri: str | None = None,
        model_name: str | None = None,
    ) -> "Config":
        """Return a copy with CLI-style overrides applied (``None`` leaves a value as is)."""
        cfg = self.model_copy(deep=True)
        if transactions is not None:
            cfg.data.transactions = str(transactions)
        if tracking_uri is not None:
            cfg.mlflow.tracking_uri = tracking_uri
        if model_name is not None:
            cfg.mlflow.model_name = model_name
        return cfg


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(root)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  - unknown key '{key}'")
        elif len(e["loc"]) <= 1 and e["type"] == "value_error":  # a section's cross-field check: its input is the whole section
            lines.append(f"  - {e['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"  - {key}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def config_from_dict(raw: dict[str, Any], source: str = "<dict>") -> Config:
    """Validate a plain mapping into a :class:`Config`; errors name the offending key."""
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


MAX_CONFIG_BYTES = 1_000_000
"""Largest config file read (bytes); a real config is a few kB, so a bigger one is refused unread."""


class _AliasRefused(Exception):
    def __init__(self, anchor: str, line: int) -> None:
        super().__init__(anchor, line)
        self.anchor, self.line = anchor, line


class _NoAliasLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses every alias (``*name``): an anchor bomb ("billion laughs")
    expands a few hundred bytes into gigabytes, and no churnml setting needs to repeat a node."""

    def compose_node(self, parent, index):  # noqa: D102
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _AliasRefused(event.anchor, event.start_mark.line + 1)
        return super().compose_node(parent, index)


def _read_config_text(path: Path) -> str:
    """The text of the config file at ``path``, refusing non-regular files (a named pipe would block
    forever) and files over :data:`MAX_CONFIG_BYTES`, without reading them."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as err:
        raise ConfigError(f"config file {path}: cannot read it: {err.strerror or err}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"config file {path} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"config file {path} is not a regular file (a pipe, device or socket); name a YAML file")
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file {path} is too large ({st.st_size:,} bytes; the limit is {MAX_CONFIG_BYTES:,})"
        )
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"config file {path}: cannot read it: {err.strerror or err}") from None
    if len(data) > MAX_CONFIG_BYTES:  # grew after the stat
        raise ConfigError(f"config file {path} is too large (over {MAX_CONFIG_BYTES:,} bytes)")
    try:
        return data.decode()
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate a YAML config; ``None`` gives the defaults.

    One rule for paths: every relative path written in a config file (``data.transactions``,
    ``data.customers``, ``data.events``, ``output.dir``, a ``sqlite:///`` tracking URI, and the
    default ``mlflow.db`` store) is relative to the config file's folder, so a scheduled job
    gives the same result from any working directory. Paths given on the command line
    (``--out``, ``--out-dir``, ``--transactions``, ``--tracking-uri``) are relative to the
    working directory, as for any command.
    """
    if path is None:
        return Config()
    path = Path(path)
    text = _read_config_text(path)
    try:
        raw = yaml.load(text, Loader=_NoAliasLoader) or {}
    except _AliasRefused as err:
        raise ConfigError(
            f"config file {path}: YAML aliases are not allowed (*{err.anchor} on line {err.line}); "
            "write the value out instead of referring to an anchor"
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    cfg = config_from_dict(raw, str(path))
    base = path.resolve().parent
    for attr in ("transactions", "customers", "events"):
        value = getattr(cfg.data, attr)
        if value and ":" not in value.split("/")[0] and not Path(value).is_absolute():
            setattr(cfg.data, attr, str((base / value).resolve()))
    if not Path(cfg.output.dir).is_absolute():
        cfg.output.dir = str((base / cfg.output.dir).resolve())
    cfg.mlflow.tracking_uri = absolute_sqlite_uri(cfg.mlflow.tracking_uri, base)
    cfg._base_dir = base
    return cfg


def absolute_sqlite_uri(uri: str | None, base: Path) -> str | None:
    """A ``sqlite:///relative/path.db`` URI made absolute against ``base``; other URIs as they are."""
    if not uri or not uri.startswith("sqlite:///"):
        return uri
    path = uri[len("sqlite:///"):]
    if path.startswith("/") or path.startswith(":memory:") or not path:
        return uri
    return f"sqlite:///{(base / path).resolve()}"
