"""A self-contained HTML report for marketing: one file, no server, no network.

KPI tiles, the risk x value segment matrix, distributions of churn probability and CLV (inline
SVG), and an at-risk table that sorts, filters (segment, minimum value, id search), pages (so
100k customers stay responsive) and downloads the filtered rows as CSV. Scripts and styles are
inlined; the data is embedded as compact JSON.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from churnml._atomic import atomic_path
from churnml.segments import kpis

__all__ = ["actions_section", "build_report", "describe_tiers", "readout_section", "report_context", "write_report"]

TABLE_COLUMNS = [
    ("customer_id", "Customer ID"),
    ("segment", "Segment"),
    ("rfm_segment", "RFM segment"),
    ("churn_probability", "Churn probability"),
    ("predicted_clv", "Predicted value"),
    ("value_if_retained", "Value if retained"),
    ("value_at_risk", "Value at risk"),
    ("recommended_action", "Recommended action"),
    ("reasons", "Risk drivers"),
]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2733;background:#f6f8fa}
h1{margin:0 0 4px}h2{margin:28px 0 8px}.sub{color:#5b6773;margin-bottom:16px}
.tiles{display:flex;flex-wrap:wrap;gap:12px}.tile{background:#fff;border:1px solid #dde3e9;border-radius:8px;padding:12px 16px;min-width:150px}
.tile .v{font-size:24px;font-weight:600}.tile .l{color:#5b6773;font-size:13px}
table{border-collapse:collapse;background:#fff}th,td{border:1px solid #dde3e9;padding:6px 8px;font-size:13px;text-align:left}
th{background:#eef2f6;cursor:pointer;user-select:none}td.n{text-align:right;font-variant-numeric:tabular-nums}
.matrix td{text-align:center;min-width:110px}.matrix .name{font-weight:600}
.controls{display:flex;flex-wrap:wrap;gap:10px;align-items:center;margin:8px 0}
.controls input,.controls select,.controls button{padding:5px 8px;font-size:13px}
.charts{display:flex;flex-wrap:wrap;gap:16px}.chart{background:#fff;border:1px solid #dde3e9;border-radius:8px;padding:8px}
#pager{margin:8px 0;font-size:13px}
.warn{background:#fff4e5;border:1px solid #f0b45a;border-radius:6px;padding:6px 10px;color:#7a4a00}
"""

_JS = r"""
(function(){
const D = JSON.parse(document.getElementById('data').textContent);
const cols = D.columns, rows = D.rows;
const idx = Object.fromEntries(cols.map((c,i)=>[c.key,i]));
let sortKey = 'value_at_risk', sortDir = -1, page = 0;
const PAGE = 50;
const seg = document.getElementById('f-segment'), minv = document.getElementById('f-min'),
      q = document.getElementById('f-search'), body = document.getElementById('rows'),
      pager = document.getElementById('pager'), count = document.getElementById('count');
function filtered(){
  const s = seg.value, m = parseFloat(minv.value), t = q.value.trim().toLowerCase();
  let out = rows.filter(r => (!s || r[idx.segment]===s || r[idx.rfm_segment]===s)
      && (isNaN(m) || r[idx.value_if_retained ?? idx.predicted_clv] >= m)
      && (!t || String(r[idx.customer_id]).toLowerCase().includes(t)));
  const k = idx[sortKey];
  out.sort((a,b)=> (a[k]<b[k]?-1:a[k]>b[k]?1:0)*sortDir || (a[0]<b[0]?-1:1));
  return out;
}
function fmt(c,v){ if(c.type==='num'){ return c.key==='churn_probability' ? (v*100).toFixed(1)+'%' : Number(v).toLocaleString(undefined,{maximumFractionDigits:2}); } return v; }
function render(){
  const f = filtered(); const pages = Math.max(1, Math.ceil(f.length/PAGE)); page = Math.min(page, pages-1);
  const slice = f.slice(page*PAGE, page*PAGE+PAGE);
  body.innerHTML = slice.map(r => '<tr>' + cols.map(c => '<td class="'+(c.type==='num'?'n':'')+'">'+esc(fmt(c, r[idx[c.key]]))+'</td>').join('') + '</tr>').join('');
  count.textContent = f.length.toLocaleString() + (f.length === 1 ? ' customer' : ' customers');
  pager.innerHTML = 'page ' + (page+1) + ' of ' + pages + ' <button id="prev">previous</button> <button id="next">next</button>';
  document.getElementById('prev').onclick = ()=>{ if(page>0){page--; render();} };
  document.getElementById('next').onclick = ()=>{ if(page<pages-1){page++; render();} };
}
function esc(s){ return String(s).replace(/[&<>"]/g, ch => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[ch])); }
function csvCell(v){ let s = String(v); if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) { s = "'" + s; }
  return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g,'""') + '"' : s; }
document.querySelectorAll('th[data-key]').forEach(th => th.onclick = () => {
  const k = th.dataset.key; if(sortKey===k){ sortDir = -sortDir; } else { sortKey = k; sortDir = th.dataset.type==='num' ? -1 : 1; }
  page = 0; render();
});
[seg, minv, q].forEach(el => el.addEventListener('input', ()=>{ page = 0; render(); }));
document.getElementById('download').onclick = () => {
  const f = filtered();
  const lines = [cols.map(c=>csvCell(c.label)).join(',')].concat(f.map(r => cols.map(c => csvCell(r[idx[c.key]])).join(',')));
  const blob = new Blob([lines.join('\n') + '\n'], {type: 'text/csv'});
  const a = document.createElement('a'); a.href = URL.createObjectURL(blob); a.download = 'at_risk_filtered.csv';
  document.body.appendChild(a); a.click(); a.remove();
};
render();
})();
"""


def _histogram_svg(values: np.ndarray, title: str, bins: int = 30, width: int = 420, height: int = 200, log_x: bool = False) -> str:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if log_x:
        v = np.log10(np.clip(v, 1e-2, None))
    counts, edges = np.histogram(v, bins=bins) if len(v) else (np.zeros(bins), np.linspace(0, 1, bins + 1))
    top = max(int(counts.max()), 1)
    pad, w, h = 44, width - 54, height - 50
    bars = []
    for i, c in enumerate(counts):
        bh = h * c / top
        x = pad + i * w / bins
        bars.append(f'<rect x="{x:.1f}" y="{20 + h - bh:.1f}" width="{w / bins - 1:.1f}" height="{bh:.1f}" fill="#3b73b9"><title>{int(c)}</title></rect>')
    lo, hi = edges[0], edges[-1]
    if log_x:
        lo_s, hi_s = f"{10 ** lo:,.2f}", f"{10 ** hi:,.0f}"
    else:
        lo_s, hi_s = f"{lo:,.2f}", f"{hi:,.2f}"
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="{html.escape(title)}">'
        f'<text x="{pad}" y="14" font-size="13">{html.escape(title)}</text>{"".join(bars)}'
        f'<text x="{pad}" y="{height - 8}" font-size="11">{lo_s}</text>'
        f'<text x="{pad + w}" y="{height - 8}" font-size="11" text-anchor="end">{hi_s}</text>'
        f'<text x="{pad - 4}" y="28" font-size="11" text-anchor="end">{top}</text></svg>'
    )


KPI_HEADERS = {
    "customers": "Customers",
    "churn_rate": "Expected churn rate",
    "retention_rate": "Expected retention rate",
    "purchase_frequency": "Purchases per year",
    "avg_order_value": "Average order value",
    "clv_mean": "Predicted value, mean",
    "clv_median": "Predicted value, median",
    "clv_p90": "Predicted value, 90th percentile",
    "clv_total": "Predicted value, total",
    "value_at_risk": "Value at risk, total",
}
_MONEY_KPIS = {"avg_order_value", "clv_mean", "clv_median", "clv_p90", "clv_total", "value_at_risk"}


def describe_tiers(tier: dict | None, score: str) -> str:
    """A sentence stating how a tier is cut: absolute values of ``score`` or shares of customers."""
    if not tier:
        return ""
    labels, cuts = list(tier["labels"]), list(tier["thresholds"])
    pct = (lambda x: f"{x * 100:g}%")
    if tier["method"] == "absolute":
        fmt = pct if score == "churn probability" else (lambda x: f"{x:,g}")
        parts = [f"{labels[0]}: below {fmt(cuts[0])}"]
        parts += [f"{labels[i]}: {fmt(cuts[i - 1])} to {fmt(cuts[i])}" for i in range(1, len(cuts))]
        parts.append(f"{labels[-1]}: {fmt(cuts[-1])} and above")
        return f"absolute {score} ({'; '.join(parts)})"
    bounds = [0.0, *cuts, 1.0]
    parts = [f"{labels[i]}: {pct(bounds[i])} to {pct(bounds[i + 1])} of customers" for i in range(len(labels))]
    return f"shares of customers ranked by {score}, lowest first ({'; '.join(parts)})"


def _readout_svg(table: pd.DataFrame, width: int = 560, row_h: int = 22) -> str:
    """Forest plot: per read-out row the retention difference (pp) as a dot and its 95% interval as a bar."""
    t = table.dropna(subset=["retention_diff"])
    if t.empty:
        return ""
    lo, hi = float(min(t["retention_diff_low"].min(), 0)), float(max(t["retention_diff_high"].max(), 0))
    pad = (hi - lo) * 0.05 or 0.01
    lo, hi = lo - pad, hi + pad
    left, right, top = 170, 20, 20
    h = top + row_h * len(t) + 24
    x = lambda v: left + (v - lo) / (hi - lo) * (width - left - right)  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" role="img" '
             f'aria-label="Retention difference treatment minus control with 95% intervals">',
             f'<line x1="{x(0):.1f}" y1="{top - 6}" x2="{x(0):.1f}" y2="{h - 20}" stroke="#888" stroke-dasharray="3,3"/>']
    for i, (_, r) in enumerate(t.iterrows()):
        y = top + i * row_h + row_h / 2
        label = "overall" if r["level"] == "overall" else f"{r['level']}: {r['name']}"
        sig = str(r.get("verdict", "")).startswith("significant")
        color = "#1f6fb2" if sig else "#8a96a3"
        parts.append(f'<text x="4" y="{y + 4:.1f}" font-size="12">{html.escape(label[:26])}</text>'
                     f'<line x1="{x(r["retention_diff_low"]):.1f}" y1="{y:.1f}" x2="{x(r["retention_diff_high"]):.1f}" y2="{y:.1f}" '
                     f'stroke="{color}" stroke-width="3"/>'
                     f'<circle cx="{x(r["retention_diff"]):.1f}" cy="{y:.1f}" r="4" fill="{color}"/>')
    for v in (lo, 0.0, hi):
        parts.append(f'<text x="{x(v):.1f}" y="{h - 6}" font-size="11" text-anchor="middle">{v * 100:+.0f} pp</text>')
    parts.append("</svg>")
    return "".join(parts)


def readout_section(table: pd.DataFrame, currency: str = "") -> str:
    """The read-out as an HTML section: a plot of the retention effect with its interval per row and the table."""
    cur = f" ({currency})" if currency else ""
    t = table
    rows = []
    for _, r in t.iterrows():
        fmt_pp = ("" if pd.isna(r["retention_diff"]) else
                  f"{r['retention_diff'] * 100:+.1f} pp [{r['retention_diff_low'] * 100:+.1f}, {r['retention_diff_high'] * 100:+.1f}]")
        val = ("" if pd.isna(r.get("incremental_value", np.nan)) else
               f"{r['incremental_value']:+,.0f} [{r['incremental_value_low']:+,.0f}, {r['incremental_value_high']:+,.0f}]")
        pct = lambda v: "" if pd.isna(v) else f"{v * 100:.1f}%"  # noqa: E731
        label = "overall" if r["level"] == "overall" else f"{r['level']}: {r['name']}"
        cells = [label, f"{int(r['n_treatment']):,}", f"{int(r['n_control']):,}", pct(r["retention_treatment"]),
                 pct(r["retention_control"]), fmt_pp, val, str(r["verdict"])]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = ["Group", "Treated", "Control", "Retention treated", "Retention control", "Difference [95% CI]",
            f"Extra value{cur} [95% CI]", "Verdict"]
    return ('<h2>Campaign read-out</h2><p class="sub">Retention (a purchase in the read-out window) of treated vs control '
            "customers; 95% intervals (Newcombe for retention, bootstrap for value); grey = not significant.</p>"
            f'<div class="chart">{_readout_svg(t)}</div>'
            '<table class="readout"><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>")


def build_report(scores: pd.DataFrame, *, title: str = "Customer retention report", context: dict | None = None,
                 readout: pd.DataFrame | None = None, at_risk: pd.DataFrame | None = None,
                 at_risk_tiers: list[str] | None = None, at_risk_top: int | None = 1000,
                 action_labels: dict[str, str] | None = None) -> str:
    """The report as one HTML string (see the module docstring). ``context``: what the scores'
    sidecar says (``horizons`` in days, ``currency``, ``tiers``); amounts are labelled with the
    currency and every rate and value with its horizon when known. ``readout``: a campaign
    read-out table (:func:`churnml.readout.readout`) shown as a section with its plot.
    ``at_risk``: the rows of the at-risk table, in order (``churnml run`` passes the customers of
    ``at_risk.xlsx``); default :func:`churnml.campaigns.at_risk_rows` of ``scores`` with
    ``at_risk_tiers`` (default ``["high"]``) and ``at_risk_top``, the same rule as the workbook.
    ``action_labels``: action name -> catalogue label (:func:`churnml.excel.action_labels`)."""
    from churnml.campaigns import at_risk_rows
    from churnml.excel import action_label

    ctx = context or {}
    s = scores.reset_index() if "customer_id" not in scores.columns else scores
    tiers_shown = list(at_risk_tiers or ["high"])
    listed = at_risk if at_risk is not None else at_risk_rows(s, tiers_shown, at_risk_top)
    listed = listed.reset_index() if "customer_id" not in listed.columns else listed
    if "recommended_action" in listed.columns:
        listed = listed.assign(recommended_action=listed["recommended_action"].map(lambda a: action_label(a, action_labels)))
    if "recommended_action" in s.columns:
        s = s.assign(recommended_action=s["recommended_action"].map(lambda a: action_label(a, action_labels)))
    k = kpis(s)
    overall = k.loc["all"]
    as_of = str(pd.Timestamp(s["as_of"].iloc[0]).date()) if "as_of" in s.columns and len(s) else ""
    version = str(s["model_version"].iloc[0]) if "model_version" in s.columns and len(s) else ""
    cur = str(ctx.get("currency") or "").strip()
    money = (lambda x: f"{cur} {x:,.0f}" if cur else f"{x:,.0f}")
    h = ctx.get("horizons") or {}
    churn_h = f"no purchase in the next {h['churn_days']} days" if h.get("churn_days") else "no purchase within the model's horizon"
    clv_h = f"next {h['clv_days']} days" if h.get("clv_days") else "the CLV horizon"
    tiles = [
        (f"{overall['customers']:,.0f}", "customers in scope"),
        (f"{overall['churn_rate'] * 100:.1f}%", f"expected churn rate ({churn_h})"),
        (f"{overall['retention_rate'] * 100:.1f}%", "expected retention rate (buy again in that time)"),
        (money(overall["value_at_risk"]), f"value at risk ({clv_h}): churn probability x value if retained"),
        (money(overall["clv_total"]), f"predicted customer value (CLV, {clv_h}, discounted)"),
    ]
    seg_counts = s["segment"].value_counts()
    tiles += [(f"{n:,}", f"customers in {name}") for name, n in seg_counts.items()]
    tiers = ctx.get("tiers") or {}
    tier_text = " ".join(
        x for x in [
            f"Risk tiers: {describe_tiers(tiers.get('risk'), 'churn probability')}." if tiers.get("risk") else "",
            f"Value tiers: {describe_tiers(tiers.get('value'), 'value if retained')}." if tiers.get("value") else "",
        ] if x
    )
    tiles_html = "".join(f'<div class="tile"><div class="v">{html.escape(v)}</div><div class="l">{html.escape(label)}</div></div>' for v, label in tiles)

    risk_levels = [x for x in ["high", "medium", "low"] if x in set(s.get("risk_tier", []))] or sorted(set(s.get("risk_tier", [])))
    value_levels = [x for x in ["low", "medium", "high"] if x in set(s.get("value_tier", []))] or sorted(set(s.get("value_tier", [])))
    cells = s.groupby(["risk_tier", "value_tier"]).agg(n=("customer_id", "size"), var=("value_at_risk", "sum"), name=("segment", "first"))
    rows = []
    for r in risk_levels:
        tds = []
        for v in value_levels:
            if (r, v) in cells.index:
                c = cells.loc[(r, v)]
                tds.append(f'<td><div class="name">{html.escape(str(c["name"]))}</div>{int(c["n"]):,} customers<br>{html.escape(money(c["var"]))} at risk</td>')
            else:
                tds.append("<td>-</td>")
        rows.append(f"<tr><th>{html.escape(r)} risk</th>{''.join(tds)}</tr>")
    matrix = (
        '<table class="matrix"><tr><th></th>' + "".join(f"<th>{html.escape(v)} value</th>" for v in value_levels) + "</tr>"
        + "".join(rows) + "</table>"
    )
    kt = k.drop(columns=["share"]).copy()
    kt["customers"] = kt["customers"].map(lambda x: f"{x:,.0f}")
    for c in ("churn_rate", "retention_rate"):
        kt[c] = kt[c].map(lambda x: f"{x * 100:.1f}%")
    for c in kt.columns:
        if c not in ("customers", "churn_rate", "retention_rate"):
            kt[c] = kt[c].map(lambda x: "" if pd.isna(x) else f"{x:,.2f}")
    kt = kt.rename(columns={c: KPI_HEADERS.get(c, c.replace("_", " ").capitalize()) + (f" ({cur})" if cur and c in _MONEY_KPIS else "")
                            for c in kt.columns})
    kt.index.name = "Segment"
    kpi_table = kt.to_html(classes="kpis", border=0)
    charts = (
        f'<div class="chart">{_histogram_svg(s["churn_probability"], "Churn probability")}</div>'
        f'<div class="chart">{_histogram_svg(s["predicted_clv"], "Predicted value (CLV, log scale)", log_x=True)}</div>'
    )
    money_cols = {"predicted_clv", "value_if_retained", "value_at_risk"}
    cols = [(c, label + (f" ({cur})" if cur and c in money_cols else "")) for c, label in TABLE_COLUMNS if c in listed.columns]
    col_meta = [{"key": c, "label": label, "type": "num" if pd.api.types.is_numeric_dtype(listed[c]) else "text"} for c, label in cols]
    data_rows = listed[[c for c, _ in cols]].copy()
    for c in data_rows.columns:
        if pd.api.types.is_numeric_dtype(data_rows[c]):
            data_rows[c] = data_rows[c].astype(float).round(4)
        else:
            data_rows[c] = data_rows[c].astype(str)
    payload = json.dumps({"columns": col_meta, "rows": data_rows.to_numpy().tolist()}, separators=(",", ":"), allow_nan=False)
    payload = payload.replace("</", "<\\/")
    segments = (sorted(set(listed["segment"].astype(str))) + sorted(set(listed["rfm_segment"].astype(str))) if "rfm_segment" in listed
                else sorted(set(listed["segment"].astype(str))))
    in_tiers = int(s["risk_tier"].isin(tiers_shown).sum()) if "risk_tier" in s.columns else len(listed)
    capped = f": the first {len(listed):,} of {in_tiers:,} by value at risk" if in_tiers > len(listed) else ", by value at risk"
    list_text = (f"The {len(listed):,} customers of the at-risk list ({', '.join(tiers_shown)} risk{capped}), "
                 "in the order of at_risk.xlsx.")
    options = '<option value="">all segments</option>' + "".join(f'<option value="{html.escape(x)}">{html.escape(x)}</option>' for x in dict.fromkeys(segments))
    head = "".join(f'<th data-key="{m["key"]}" data-type="{m["type"]}">{html.escape(m["label"])}</th>' for m in col_meta)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<div class="sub">As of {html.escape(as_of)} &middot; model {html.escape(version)} &middot; churn = {html.escape(churn_h)}
&middot; values over the {html.escape(clv_h)}{(" in " + html.escape(cur)) if cur else ""}</div>
<div class="tiles">{tiles_html}</div>
<h2>Risk x value segments</h2>{matrix}
<p class="sub" id="tiers">{html.escape(tier_text)}</p>
<h2>Distributions</h2><div class="charts">{charts}</div>
<h2>KPIs by segment</h2>{kpi_table}
{readout_section(readout, cur) if readout is not None else ""}
{actions_section(ctx.get("economics"))}
<h2>At-risk customers</h2>
<p class="sub" id="at-risk-scope">{html.escape(list_text)}</p>
<div class="controls">
<label>Segment <select id="f-segment">{options}</select></label>
<label>Min. value <input id="f-min" type="number" step="any" placeholder="0"></label>
<label>Search id <input id="f-search" type="search" placeholder="customer id"></label>
<button id="download">Download filtered rows (CSV)</button>
<span id="count"></span>
</div>
<table id="atrisk"><thead><tr>{head}</tr></thead><tbody id="rows"></tbody></table>
<div id="pager"></div>
<script id="data" type="application/json">{payload}</script>
<script>{_JS}</script>
</body></html>
"""


def report_context(scores_path: str | Path, config=None) -> dict:
    """What the report states besides the scores: the scores' sidecar ``<file>.meta.json``
    (written by ``churnml score`` and ``churnml run``: horizons of the model that scored, tiers,
    currency) when present, else the given config's."""
    p = Path(scores_path)
    meta_path = p.with_name(p.name + ".meta.json")
    ctx: dict = {}
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            ctx = {k: meta[k] for k in ("horizons", "currency", "tiers", "economics") if k in meta}
        except (OSError, ValueError):
            ctx = {}
    if config is not None:
        ctx.setdefault("horizons", {"churn_days": config.churn.horizon_days, "clv_days": config.clv.horizon_days})
        ctx.setdefault("tiers", {"risk": config.segments.risk.model_dump(), "value": config.segments.value.model_dump()})
        if not ctx.get("currency"):
            ctx["currency"] = config.report.currency
        if "economics" not in ctx:
            from churnml.campaigns import assumptions

            ctx["economics"] = assumptions(config.campaign, config.clv.margin)
    return ctx


def actions_section(economics: dict | None) -> str:
    """What every recommended action rests on (``economics``: :func:`churnml.campaigns.assumptions`):
    the margin its net value is on (loudly "revenue" at 1.0), and each action's cost, assumed or
    measured churn reduction and its source; empty without it."""
    if not economics:
        return ""
    m = float(economics.get("margin", 1.0))
    basis = (f"Recommended actions pay on profit at margin {m:g}: expected saved value "
             "(churn probability x churn reduction x value if retained) exceeds the action's cost."
             if economics.get("roi_basis") == "profit" else
             "Recommended actions are judged on revenue, not profit: no margin is configured (clv.margin is 1.0).")
    rows = "".join(
        f"<tr><td>{html.escape(str(a['label']))}</td><td>{float(a['cost']):,.2f}</td>"
        f"<td>{float(a['churn_reduction']) * 100:.1f}%</td><td>{html.escape(str(a['effect_source']))}</td></tr>"
        for a in economics.get("actions", []))
    warn = "".join(f'<p class="warn"><b>Warning:</b> {html.escape(w)}</p>' for w in economics.get("warnings", []))
    return ('<h2>Actions and their assumptions</h2>' + warn + f'<p class="sub" id="actions-basis">{html.escape(basis)}</p>'
            '<table class="kpis" id="actions"><tr><th>Action</th><th>Cost per customer</th><th>Churn reduction (relative)</th>'
            f'<th>Source of the effect</th></tr>{rows}</table>')


def write_report(scores: pd.DataFrame, out: str | Path, **kwargs) -> Path:
    """Build the report and write it atomically."""
    with atomic_path(out) as tmp:
        tmp.write_text(build_report(scores, **kwargs), encoding="utf-8")
    return Path(out)
