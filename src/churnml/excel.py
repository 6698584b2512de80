"""Spreadsheet output for people: rounded numbers, number formats, widths, a filter and a frozen
header row; CSV lists get the same rounding. Written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from churnml._atomic import atomic_path

__all__ = ["FORMULA_TRIGGERS", "action_label", "action_labels", "neutralise_formulas", "neutralise_text", "presentable",
           "restore_formulas", "write_list"]

# column (raw or plain header) -> kind; kinds decide rounding and the Excel number format
_KINDS = {
    "churn_probability": "share", "Churn probability": "share",
    "p_alive": "share", "Probability still active": "share",
    "predicted_clv": "money", "Predicted value": "money",
    "value_if_retained": "money", "Value if retained": "money",
    "value_at_risk": "money", "Value at risk": "money",
    "expected_saved_value": "money", "Expected saved value": "money",
    "cost": "money", "Cost": "money",
    "expected_purchases": "decimal", "Expected purchases": "decimal",
}
_FORMATS = {"share": "0.0%", "money": "#,##0.00", "decimal": "#,##0.00", "count": "#,##0"}
_ROUND = {"share": 4, "money": 2, "decimal": 2}
_WIDE_TEXT = {"reasons", "Risk drivers"}

# first characters that make a spreadsheet read a text cell as a formula (OWASP CSV injection)
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_text(value):
    """``value`` with a single quote in front when it is text a spreadsheet would run as a
    formula (starts with ``= + - @``, tab or carriage return); anything else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def _is_text(col: pd.Series | pd.Index) -> bool:
    dtype = col.dtype
    return (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
            or isinstance(dtype, pd.CategoricalDtype))


def _neutralise_values(values: pd.Series | pd.Index):
    if not _is_text(values):
        return None
    hit = np.fromiter((isinstance(v, str) and v.startswith(FORMULA_TRIGGERS) for v in values), bool, len(values))
    if not hit.any():
        return None
    return [("'" + v) if h else v for v, h in zip(values, hit)]


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` safe to open in a spreadsheet: every text cell (object, string or
    categorical columns, the index and the column names) that would run as a formula gets a
    leading single quote (see :func:`neutralise_text`). Numbers, including negative ones, stay
    numbers. The rule every ``.csv``/``.xlsx`` writer of churnml applies."""
    out = frame.copy()
    for i, col in enumerate(frame.columns):
        fixed = _neutralise_values(frame.iloc[:, i])
        if fixed is not None:
            out.isetitem(i, pd.Series(fixed, index=frame.index, dtype=object))
    fixed = _neutralise_values(frame.index)
    if fixed is not None and not isinstance(frame.index, pd.MultiIndex):
        out.index = pd.Index(fixed, name=frame.index.name, dtype=object)
    out.columns = [neutralise_text(c) for c in frame.columns] if not isinstance(frame.columns, pd.MultiIndex) else frame.columns
    return out


def restore_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Undo :func:`neutralise_formulas` on a table read back from a churnml CSV: text cells of
    the form ``'`` + formula trigger + rest lose the quote, so ids round-trip."""
    out = frame.copy()
    for i in range(frame.shape[1]):
        col = frame.iloc[:, i]
        if not _is_text(col):
            continue
        hit = np.fromiter((isinstance(v, str) and len(v) > 1 and v[0] == "'" and v[1:].startswith(FORMULA_TRIGGERS)
                           for v in col), bool, len(col))
        if hit.any():
            out.isetitem(i, pd.Series([v[1:] if h else v for v, h in zip(col, hit)], index=frame.index, dtype=object))
    return out


def action_label(name, labels=None) -> str:
    """A readable label of an action identifier: the catalogue's label when ``labels`` (action
    name -> label, e.g. :func:`action_labels` of the config) has it, so every output names an
    action the same way; else ``personal_contact`` -> ``Personal contact``."""
    s = str(name)
    if s in ("", "nan", "None"):
        return ""
    if s == "none":
        return "No action"
    if labels and s in labels:
        return str(labels[s])
    return s.replace("_", " ").strip().capitalize()


def action_labels(campaign) -> dict[str, str]:
    """Action name -> the label the catalogue gives it (``campaign``: a CampaignConfig)."""
    return {a.name: a.display_label for a in campaign.actions}


def presentable(table: pd.DataFrame) -> pd.DataFrame:
    """Numbers rounded for reading (shares 4 decimals, money and expectations 2); other columns
    as they are."""
    out = table.copy()
    for col in out.columns:
        kind = _KINDS.get(col)
        if kind in _ROUND and pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].astype(float).round(_ROUND[kind])
    return out


def economics_notes(economics: dict | None) -> list[str]:
    """Plain lines stating what a recommended action rests on (``economics``:
    :func:`churnml.campaigns.assumptions`): warnings first, the margin, then each action's effect
    and its source."""
    if not economics:
        return []
    m = float(economics.get("margin", 1.0))
    lines = [f"Warning: {w}" for w in economics.get("warnings", [])]
    lines.append(f"Recommended action: the action whose expected saved value (churn probability x churn reduction x value "
                 f"if retained) minus its cost is highest and positive, on {economics.get('roi_basis', 'revenue')} "
                 f"(margin {m:g}).")
    lines += [f"{a['label']}: cost {float(a['cost']):,.2f} per customer, churn reduction {float(a['churn_reduction']) * 100:.1f}% "
              f"({a['effect_source']})." for a in economics.get("actions", [])]
    return lines


def write_list(table: pd.DataFrame, path: str | Path, *, sheet: str = "At risk", notes: list[str] | None = None) -> Path:
    """Write a customer list as ``.csv`` or ``.xlsx`` (by extension), atomically. The workbook has
    number formats (shares as %, money with thousands separators), column widths fitted to the
    content, an autofilter on the header row and the header frozen; text that a spreadsheet would run
    as a formula gets a leading quote (:func:`neutralise_formulas`); ``notes`` (e.g.
    :func:`economics_notes`) go to a second sheet "Assumptions", one line a row."""
    path = Path(path)
    table = neutralise_formulas(presentable(table))
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            table.to_csv(tmp, index=False)
        elif suffix == ".xlsx":
            _write_xlsx(table, tmp, sheet, notes)
        else:
            from churnml.errors import DataError

            raise DataError(f"--out {path}: use a .csv or .xlsx file name")
    return path


def _write_xlsx(table: pd.DataFrame, tmp: Path, sheet: str, notes: list[str] | None = None) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    ws.title = sheet[:31]
    ws.append([str(c) for c in table.columns])
    for row in table.itertuples(index=False, name=None):
        ws.append([_cell(v) for v in row])
    for row in ws.iter_rows():
        for cell in row:  # text is never a formula (neutralise_formulas already quoted it; belt and braces)
            if cell.data_type == "f":
                cell.value = "'" + str(cell.value)
                cell.data_type = "s"
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for j, col in enumerate(table.columns, 1):
        letter = get_column_letter(j)
        kind = _KINDS.get(col)
        if kind is None and pd.api.types.is_integer_dtype(table[col]):
            kind = "count"
        if kind in _FORMATS:
            for cell in ws[letter][1:]:
                cell.number_format = _FORMATS[kind]
        values = table[col].head(2000)
        if kind in _FORMATS:
            sample = [f"{v:,.2f}" if isinstance(v, (float, np.floating)) and np.isfinite(v) else str(v) for v in values]
        else:
            sample = values.astype(str).tolist()
        longest = max([len(str(col))] + [len(x) for x in sample]) if len(sample) else len(str(col))
        wide = col in _WIDE_TEXT
        ws.column_dimensions[letter].width = min(max(longest + 2, 10), 80 if wide else 40)
        if wide:
            for cell in ws[letter][1:]:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
    ws.freeze_panes = "A2"
    if len(table.columns):
        ws.auto_filter.ref = f"A1:{get_column_letter(len(table.columns))}{len(table) + 1}"
    if notes:
        ns = wb.create_sheet("Assumptions")
        for line in notes:
            ns.append([neutralise_text(line)])
        ns.column_dimensions["A"].width = 120
    wb.save(tmp)


def _cell(v):
    """A value openpyxl can store: numpy scalars to Python, missing to empty, timestamps naive."""
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if isinstance(v, pd.Timestamp):
        return v.tz_localize(None).to_pydatetime() if v.tzinfo else v.to_pydatetime()
    return v
