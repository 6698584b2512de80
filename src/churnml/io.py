"""Reading and validating transaction logs, customer attributes and customer events.

The output of this module is the data contract every other module relies on:

``transactions``
    one row per order (purchase event) with columns ``customer_id`` (str), ``timestamp``
    (datetime64, naive UTC), ``amount`` (float, currency of the file, net of returns inside the
    order), ``is_return`` (bool, an order whose net amount is negative), ``n_lines`` and
    ``cancelled_at`` (datetime64, NaT unless the order is cancelled or is a credit note that
    cancels one or several orders, see :func:`prepare_transactions`); plus ``order_id`` when the file has one. Sorted by
    customer and time. Point-in-time readers keep the rows of :func:`active_rows` (a row
    cancelled before the cutoff never happened) and :func:`purchases`.
``customers``
    one row per customer, indexed by ``customer_id``, static attributes as given.
``events``
    ``customer_id, timestamp, type, value``: service signals (tickets, complaints, NPS, CSAT).

Bad input raises :class:`~churnml.errors.DataError` naming the file, the column and the
first offending rows with their line numbers.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import errno
import gzip
import json
import re
import shlex
import stat
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnml.config import ColumnsConfig, Config, DataConfig, EventColumnsConfig
from churnml.datasets import resolve_path
from churnml.errors import DataError

__all__ = [
    "AMOUNT",
    "CANCELLED_AT",
    "CUSTOMER_ID",
    "Dataset",
    "IS_RETURN",
    "LoadReport",
    "NAT",
    "TIMESTAMP",
    "active_rows",
    "cancelled_before",
    "load_dataset",
    "match_multi_order",
    "normalise_ids",
    "date_setting",
    "parse_date",
    "prepare_events",
    "prepare_transactions",
    "purchases",
    "read_customers",
    "read_events",
    "read_table",
    "read_transactions",
]

CUSTOMER_ID = "customer_id"
TIMESTAMP = "timestamp"
AMOUNT = "amount"
IS_RETURN = "is_return"
CANCELLED_AT = "cancelled_at"
_EXAMPLES = 5
MAX_ABS_AMOUNT = 1e12
"""Default largest plausible |amount| of one order line (currency), ``data.max_abs_amount``."""


@dataclasses.dataclass
class LoadReport:
    """What happened while loading a transaction log; nothing is dropped without a count here.

    ``encoding`` is the text encoding the file was read with (``None`` for Parquet and Excel);
    ``notes`` say what was converted on the way: a fallback encoding, UTC offsets converted,
    local times read in ``data.timezone``; for the customers and events files too.
    ``cancellations`` counts the purchase orders cancelled by a credit note (a return order of
    the same amount, or of the summed amount of several orders: ``multi_order_credit_notes``
    counts those credit notes); ``orders_netting_to_zero`` the orders cancelled inside themselves;
    ``unmatched_returns`` the return orders that cancel nothing and net from their own date (all
    rows stay, marked by ``cancelled_at``; see :func:`prepare_transactions`).
    """

    source: str
    rows_read: int = 0
    rows_missing_customer: int = 0
    rows_negative_dropped: int = 0
    order_lines: int = 0
    orders: int = 0
    purchase_events: int = 0
    return_events: int = 0
    cancellations: int = 0
    multi_order_credit_notes: int = 0
    orders_netting_to_zero: int = 0
    unmatched_returns: int = 0
    customers: int = 0
    first_timestamp: str | None = None
    last_timestamp: str | None = None
    returns: str = "net"
    encoding: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        d = self.to_dict()
        width = max(len(k) for k in d)
        show = {k: ("; ".join(v) or "none") if isinstance(v, list) else v for k, v in d.items()}
        return "\n".join(f"{k:<{width}}  {v}" for k, v in show.items())


@dataclasses.dataclass
class Dataset:
    """Validated inputs of one run: transactions plus optional customers and events."""

    transactions: pd.DataFrame
    report: LoadReport
    customers: pd.DataFrame | None = None
    events: pd.DataFrame | None = None


# --------------------------------------------------------------------------- raw reading

_HEAD_BYTES = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_PARQUET_MAGIC = b"PAR1"
_EXCEL_SUFFIXES = (".xlsx", ".xlsm")
_OTHER_COMPRESSION = {".zip": "zip", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstandard", ".7z": "7-Zip"}
_WHITESPACE = r"\s+"
_BOMS = (  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


@dataclasses.dataclass
class _Table:
    """A raw table as read, with what the messages about it need."""

    df: pd.DataFrame
    first_line: int  # line (CSV), sheet row (Excel) of the first data row; 0 = 0-based positions
    line_label: str = "line"
    encoding: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)


def _is_parquet(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".parquet", ".pq", ".parquet.gz"))


def _setting_hint(setting: str | None) -> str:
    return f" ({setting})" if setting else ""


def _read_head(path: Path, n: int = _HEAD_BYTES) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def _gunzip_head(path: Path, raw: bytes) -> bytes:
    """The first decompressed bytes of a gzip file (a damaged stream is bad input)."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, _HEAD_BYTES)
    except zlib.error as err:
        raise DataError(f"{path}: damaged gzip data ({err}); compress the file again") from None


def _content_kind(head: bytes) -> str | None:
    """What a file is by its first bytes, when that is something other than text."""
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_PARQUET_MAGIC):
        return "parquet"
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    return None


def _check_text(path: Path, head: bytes, what: str) -> None:
    """Refuse a file whose content is not what its name says (gzip, Parquet, zip/xlsx, binary)."""
    kind = _content_kind(head)
    renames = {
        "gzip": "it is gzip-compressed: name it .csv.gz",
        "parquet": "it is a Parquet file: name it .parquet",
        "zip": "it is a zip archive (an Excel workbook?): name an Excel file .xlsx, or unzip the CSV",
    }
    if kind:
        raise DataError(f"{path}: not a text {what}: {renames[kind]}")


def _sniff_encoding(path: Path, head: bytes, encoding: str, what: str) -> str:
    """The encoding to read a text file with: ``encoding`` unless ``auto``; a BOM; UTF-16
    recognised by its zero bytes; else UTF-8 (with a fallback decided later). Binary content
    (zero or control bytes in ASCII-compatible text) is refused here."""
    if encoding != "auto":
        wide = codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))
        if not wide:
            _refuse_binary(path, head, what)
        return encoding
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    if b"\x00" in head:
        sample = np.frombuffer(head[: len(head) // 2 * 2], dtype=np.uint8)
        even, odd = sample[0::2], sample[1::2]
        if len(odd) and (odd == 0).mean() > 0.3 and not (even == 0).any():
            return "utf-16-le"
        if len(even) and (even == 0).mean() > 0.3 and not (odd == 0).any():
            return "utf-16-be"
    _refuse_binary(path, head, what)
    return "utf-8"


def _refuse_binary(path: Path, head: bytes, what: str) -> None:
    arr = np.frombuffer(head, dtype=np.uint8)
    control = (arr < 0x20) & ~np.isin(arr, (0x09, 0x0A, 0x0C, 0x0D))
    if (arr == 0).any() or control.mean() > 0.01:
        where = int(np.flatnonzero(control)[0])
        raise DataError(
            f"{path}: not a text {what}: binary content (byte {head[where]:#04x} at offset {where}); "
            "give a CSV, .csv.gz, Parquet or .xlsx file, or set data.encoding if it is text in a "
            "16/32-bit encoding"
        )


def _all_bytes(path: Path, gz: bool) -> bytes:
    try:
        if gz:
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (EOFError, OSError, zlib.error) as err:
        raise DataError(f"{path}: damaged or truncated gzip data ({err}); compress the file again") from None


def _line_at(data: bytes, pos: int) -> int:
    return data.count(b"\n", 0, pos) + 1


def _snippet(data: bytes, pos: int) -> bytes:
    start = data.rfind(b"\n", 0, pos) + 1
    end = data.find(b"\n", pos)
    line = data[start : end if end >= 0 else len(data)].rstrip(b"\r")
    return line[:60]


def _fallback_encoding(path: Path, gz: bool) -> tuple[str, str]:
    """Auto mode, the file is not valid UTF-8: (the single-byte encoding to read it with, a
    note for the load report), or a DataError when the file mixes UTF-8 and other bytes."""
    data = _all_bytes(path, gz)
    try:
        data.decode("utf-8")
        return "utf-8", ""  # pragma: no cover - the reader failed on something else
    except UnicodeDecodeError as err:
        bad = err.start
    line = _line_at(data, bad)
    utf8 = _UTF8_MULTIBYTE.search(data)
    if utf8 is not None:
        good_line = _line_at(data, utf8.start())
        raise DataError(
            f"{path}: mixed text encodings: line {good_line} has UTF-8 characters "
            f"({_snippet(data, utf8.start()).decode('utf-8', 'replace')!r}) but line {line} is not "
            f"valid UTF-8 ({_snippet(data, bad)!r}); save the file in one encoding, or set "
            "data.encoding (e.g. cp1252) to read every byte in one"
        )
    try:
        data.decode("cp1252")
        name, label = "cp1252", "Windows-1252 (cp1252)"
    except UnicodeDecodeError:
        name, label = "latin-1", "Latin-1 (ISO-8859-1)"
    note = (
        f"{path.name}: not valid UTF-8 (first non-UTF-8 byte on line {line}: {_snippet(data, bad)!r}); "
        f"read as {label}; set data.encoding to choose another encoding"
    )
    return name, note


def _undecodable(path: Path, gz: bool, encoding: str, err: UnicodeDecodeError, *, detected: bool) -> DataError:
    data = _all_bytes(path, gz)
    try:
        data.decode(encoding)
        pos = err.start
    except UnicodeDecodeError as full:
        pos = full.start
    line = data[:pos].decode(encoding, "replace").count("\n") + 1
    why = "detected from its byte-order mark or zero bytes" if detected else "data.encoding"
    return DataError(
        f"{path}: cannot decode as {encoding} ({why}): line {line} has bytes {_snippet(data, pos)!r} "
        f"that are not {encoding}; set data.encoding to the file's encoding"
    )


def _first_line(text: str) -> str:
    for line in re.split(r"\r\n|\r|\n", text.lstrip("\ufeff")):
        if line.strip():
            return line
    return ""


def _sniff_sep(first: str) -> str:
    """The separator of a header line: the first of , tab ; | present (a consistent run of
    the same ``|`` or ``;``, e.g. ``||``, is a multi-character separator); else a repeated
    multi-character token (``::``) when the line has no spaces; else runs of whitespace."""
    for sep in (",", "\t", ";", "|"):
        if sep in first:
            if sep in "|;":
                runs = set(re.findall(re.escape(sep) + "+", first))
                if len(runs) == 1 and len(run := runs.pop()) > 1:
                    return run
            return sep
    if not re.search(r"\s", first):
        tokens = set(re.findall(r"[^\w\s\"']{2,}", first))
        if len(tokens) == 1 and not re.search(r"[^\w\s\"']", re.sub(re.escape(next(iter(tokens))), "", first)):
            return tokens.pop()
    return _WHITESPACE


def _split_line(line: str, sep: str) -> list[str]:
    """The fields of one line, as the CSV reader splits them (quotes honoured for one-character separators)."""
    if sep == _WHITESPACE:
        try:
            return shlex.split(line) if '"' in line else line.split()
        except ValueError:
            return line.split()
    if len(sep) > 1:
        return line.split(sep)
    return next(csv.reader([line], delimiter=sep, skipinitialspace=True), [])


def _duplicates(path: Path | str, header: list[str], wanted: list[str]) -> None:
    seen: dict[str, list[int]] = {}
    for i, name in enumerate(header):
        seen.setdefault(str(name).strip(), []).append(i + 1)
    dup = {c: seen[c] for c in wanted if len(seen.get(c, [])) > 1}
    if dup:
        desc = "; ".join(f"{c!r} is column {', '.join(map(str, pos))}" for c, pos in dup.items())
        raise DataError(f"{path}: ambiguous header: {desc}; rename the copies so each column name is unique")


class _RaggedRows:
    """Arrow's ``invalid_row_handler``: counts rows whose number of fields differs from the
    header's and keeps the first few; a line of spaces is skipped (as the pandas reader does),
    and a row Arrow splits differently than Python's csv module (a quoted field after a space)
    is not counted."""

    def __init__(self, sep: str) -> None:
        self.sep, self.count, self.want, self.examples = sep, 0, None, []

    def show(self, number, n_fields: int, text: str) -> None:
        if len(self.examples) < _EXAMPLES:
            shown = text if len(text) <= 80 else text[:77] + "..."
            self.examples.append(f"line {number}: {shown!r} ({n_fields} field(s))")

    def handler(self, row) -> str:
        text = row.text or ""
        if not text.strip():
            return "skip"
        try:
            n_fields = len(_split_line(text, self.sep))
        except csv.Error:
            n_fields = row.actual_columns
        if n_fields != row.expected_columns:
            self.want = row.expected_columns
            self.count += 1
            self.show(row.number, n_fields, text)
        return "skip"


class _QuoteCounter:
    """A binary file for ``pyarrow.PythonFile`` that counts the quote characters read through it."""

    def __init__(self, fh) -> None:
        self.fh, self.quotes = fh, 0

    @property
    def closed(self) -> bool:
        return self.fh.closed

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.quotes += data.count(b'"')
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    def tell(self) -> int:
        return self.fh.tell()

    def close(self) -> None:
        self.fh.close()


def _pandas_names(header: list[str]) -> list[str]:
    """Column names as pandas makes them from a header line: ``Unnamed: i`` for empty ones,
    ``a.1`` for a repeated ``a``."""
    return _dedupe([name if name.strip() else f"Unnamed: {i}" for i, name in enumerate(header)])


def _leading_space(sample: str, sep: str) -> bool:
    """Whether fields in the first lines start with a space or tab (``a, b``), which the
    pandas reader strips (``skipinitialspace``) and Arrow's would keep."""
    lines = sample.splitlines(keepends=True)[:-1][:1000]  # the last one may be cut off
    try:
        return any(f[:1] in (" ", "\t") for row in csv.reader(lines, delimiter=sep) for f in row)
    except csv.Error:
        return True


def _read_csv_arrow(
    path: Path, *, gz: bool, sep: str, names: list[str] | None, header: list[str], usecols: list[str] | None
) -> pd.DataFrame | None:
    """The fast reader of a UTF-8 file with a one-character separator: Arrow's CSV reader, all
    columns as strings, the ragged-row check in the same pass. Returns None when the pandas
    reader should decide (anything Arrow rejects other than ragged rows, e.g. invalid UTF-8)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    cols = list(names) if names else _pandas_names(header)
    wanted = list(usecols) if usecols else cols
    rows = _RaggedRows(sep)
    counted = _QuoteCounter(gzip.open(path, "rb") if gz else open(path, "rb"))
    try:
        with pa.PythonFile(counted, mode="r") as source:
            table = pacsv.read_csv(
                source,
                read_options=pacsv.ReadOptions(use_threads=False, block_size=1 << 24, column_names=cols, skip_rows=0 if names else 1),
                parse_options=pacsv.ParseOptions(delimiter=sep, newlines_in_values=True, invalid_row_handler=rows.handler),
                convert_options=pacsv.ConvertOptions(
                    include_columns=wanted, column_types={c: pa.string() for c in wanted}, strings_can_be_null=True,
                    quoted_strings_can_be_null=True, null_values=[""],
                ),
            )
    except pa.ArrowInvalid:
        return None
    except (OSError, EOFError, zlib.error) as err:
        if gz:
            raise DataError(f"{path}: damaged or truncated gzip data ({err}); compress the file again") from None
        raise DataError(f"{path}: cannot read the file: {err}") from None
    finally:
        counted.close()
    if counted.quotes % 2:
        # a quote never closed swallows the rest of the file into the last field, which Arrow
        # accepts; a literal quote inside an unquoted field (12" pizza) also makes the count odd:
        # the pandas reader tells the two apart
        return None
    if rows.count:
        raise _ragged_error(path, sep, not names, len(names) if names else None, rows.want, rows.count, rows.examples)
    return table.to_pandas()


def _ragged(
    path: Path, *, sep: str, encoding: str, gz: bool, header: bool, expected: int | None, sample: str = ""
) -> None:
    """Refuse rows whose number of fields differs from the header's (or ``csv_names``'s):
    the CSV reader would silently pad short rows and drop the extra fields of long ones.

    One-character separators are counted by Arrow's CSV reader (no Python per row) unless the
    file quotes fields after a space (``a, "b"``: the ``skipinitialspace`` style Arrow does not
    read), which, like whitespace and multi-character separators, takes a Python loop."""
    rows = _RaggedRows(sep)
    count, examples = 0, rows.examples
    want = expected
    spaced_quotes = len(sep) == 1 and re.search(re.escape(sep) + r"[ \t]+\"", sample) is not None

    def record(number, n_fields: int, text: str) -> None:
        nonlocal count
        count += 1
        rows.show(number, n_fields, text)

    if len(sep) == 1 and not spaced_quotes:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        handler = rows.handler
        transcode = codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig")
        read_opts = pacsv.ReadOptions(
            use_threads=False, block_size=1 << 24, autogenerate_column_names=not header,
            encoding=encoding if transcode else "utf8",
        )
        parse_opts = pacsv.ParseOptions(delimiter=sep, newlines_in_values=True, invalid_row_handler=handler)
        try:
            with pa.input_stream(str(path), compression="gzip" if gz else None) as source:
                reader = pacsv.open_csv(source, read_options=read_opts, parse_options=parse_opts,
                                        convert_options=pacsv.ConvertOptions(include_columns=[]))
                for _ in reader:
                    pass
        except (pa.ArrowInvalid, OSError, EOFError) as err:
            raise DataError(f"{path}: cannot parse as CSV (separator {sep!r}): {err}") from None
        count, want = rows.count, rows.want
    elif len(sep) == 1:
        opener = gzip.open if gz else open
        with opener(path, "rt", encoding=encoding, errors="replace", newline="") as fh:
            reader = csv.reader(fh, delimiter=sep, skipinitialspace=True)
            start = 1
            try:
                for fields in reader:
                    number, start = start, reader.line_num + 1
                    if not any(f.strip() for f in fields):
                        continue
                    if want is None:
                        want = len(fields)
                        if header:
                            continue
                    if len(fields) != want:
                        record(number, len(fields), sep.join(fields))
            except csv.Error as err:
                raise DataError(f"{path}: cannot parse as CSV (separator {sep!r}) near line {start}: {err}") from None
    else:
        opener = gzip.open if gz else open
        with opener(path, "rt", encoding=encoding, errors="replace") as fh:
            for number, line in enumerate(fh, 1):
                text = line.rstrip("\r\n")
                if not text.strip():
                    continue
                n_fields = len(_split_line(text.strip() if sep == _WHITESPACE else text, sep))
                if want is None:
                    want = n_fields
                    if header:
                        continue
                if n_fields != want:
                    record(number, n_fields, text)
    if count:
        raise _ragged_error(path, sep, header, expected, want, count, examples)


def _ragged_error(path, sep, header, expected, want, count, examples) -> DataError:
    of = f"data.csv_names lists {expected} columns" if not header else f"the header has {want} fields"
    return DataError(
        f"{path}: {count} row(s) have a different number of fields than expected ({of}, "
        f"separator {sep!r}; check data.sep), first {len(examples)}: " + "; ".join(examples)
    )


def _read_csv(
    path: Path, *, gz: bool, head: bytes, usecols: list[str] | None, sep: str | None,
    names: list[str] | None, encoding: str, what: str,
) -> _Table:
    text_head = head
    if gz:
        if not head.startswith(_GZIP_MAGIC):
            raise DataError(
                f"{path}: named .gz but not gzip-compressed (it starts with {head[:8]!r}); "
                "remove .gz from the name or compress it with gzip"
            )
        text_head = _gunzip_head(path, head)
    else:
        _check_text(path, head, what)
    if not text_head.strip(b" \t\r\n\x00\xef\xbb\xbf\xff\xfe"):
        raise DataError(f"{path}: the file is empty")
    enc = _sniff_encoding(path, text_head, encoding, what)
    first = _first_line(text_head.decode(enc, errors="replace"))
    if not first.strip():
        raise DataError(f"{path}: the file is empty")
    sep = sep or _sniff_sep(first)
    header: int | None = None if names else 0
    engine = "c" if sep == _WHITESPACE or len(sep) == 1 else "python"
    pd_sep = sep if engine == "c" else re.escape(sep)
    notes: list[str] = []
    compression = "gzip" if gz else None
    if names:
        n_first = len(_split_line(first, sep))
        if n_first != len(names):
            raise DataError(
                f"{path}: data.csv_names lists {len(names)} columns but line 1 has {n_first} field(s) "
                f"(separator {sep!r}): {first[:80]!r}"
            )
    else:
        _check_columns(path, _split_line(first, sep), usecols or [])
        _duplicates(path, _split_line(first, sep), usecols or [])

    sample = text_head.decode(enc, errors="replace")
    fast = (
        engine == "c" and sep != _WHITESPACE and codecs.lookup(enc).name in ("utf-8", "utf-8-sig")
        and not _leading_space(sample, sep)  # skipinitialspace matters: pandas
        and sample.lstrip("\ufeff").startswith(first)  # no blank lines before the header
        and first.count('"') % 2 == 0
    )
    if fast:
        df = _read_csv_arrow(path, gz=gz, sep=sep, names=names, header=_split_line(first, sep), usecols=usecols)
        if df is not None:
            return _Table(df, 1 if names else 2, "line", enc, notes)

    def read(enc: str) -> pd.DataFrame:
        return pd.read_csv(
            path, sep=pd_sep, header=header, names=names, usecols=usecols, dtype=str, keep_default_na=False,
            na_values=[""], skipinitialspace=True, index_col=False, encoding=enc, compression=compression,
            engine=engine,
        )

    try:
        try:
            df = read(enc)
        except UnicodeDecodeError as err:
            if encoding != "auto" or enc != "utf-8":
                raise _undecodable(path, gz, enc, err, detected=encoding == "auto") from None
            enc, note = _fallback_encoding(path, gz)
            notes.append(note)
            df = read(enc)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except pd.errors.ParserError as err:
        hint = f"; data.csv_names lists {len(names)} columns" if names else ""
        msg = str(err).strip().replace("\n", " ")
        raise DataError(f"{path}: cannot parse as CSV (separator {sep!r}, check data.sep){hint}: {msg}") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(f"{path}: damaged or truncated gzip data ({err}); compress the file again") from None
    except (ValueError, OSError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{path}: cannot read as CSV (separator {sep!r}, encoding {enc}): {err}") from None
    _check_columns(path, list(df.columns), usecols or [])
    _ragged(path, sep=sep, encoding=enc, gz=gz, header=names is None, expected=len(names) if names else None, sample=sample)
    return _Table(df, 1 if names else 2, "line", enc, notes)


def _dedupe(header: list[str]) -> list[str]:
    """Column names made unique the way pandas does for CSV (``a``, ``a.1``, ...)."""
    seen: dict[str, int] = {}
    out = []
    for name in header:
        k = seen.get(name, 0)
        out.append(name if k == 0 else f"{name}.{k}")
        seen[name] = k + 1
    return out


def _read_excel(path: Path, *, head: bytes, usecols: list[str] | None, sheet: str | int | None) -> _Table:
    """The first sheet (or ``sheet``) of an .xlsx workbook: the first non-empty row is the
    header; cells keep their Excel types (dates, numbers, text); empty rows are skipped."""
    if not head.startswith(_ZIP_MAGIC):
        raise DataError(f"{path}: not an Excel .xlsx workbook (it starts with {head[:8]!r}); save it as .xlsx or CSV")
    try:
        import openpyxl

        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # noqa: BLE001 - any reader failure is bad input
        raise DataError(f"{path}: cannot read as an Excel workbook: {err}") from None
    try:
        sheets = list(book.sheetnames)
        if sheet is None:
            ws = book.worksheets[0]
        elif isinstance(sheet, int) and not isinstance(sheet, bool):
            if not 0 <= sheet < len(sheets):
                raise DataError(f"{path}: data.sheet {sheet} does not exist; the workbook's sheets are {sheets}")
            ws = book.worksheets[sheet]
        elif sheet in sheets:
            ws = book[sheet]
        else:
            raise DataError(f"{path}: data.sheet {sheet!r} does not exist; the workbook's sheets are {sheets}")
        where = f"{path} (sheet {ws.title!r})"
        header_row, header_at = None, 0
        rows = ws.iter_rows(values_only=True)
        for header_at, values in enumerate(rows, 1):
            if any(v is not None and str(v).strip() for v in values):
                header_row = values
                break
        if header_row is None:
            raise DataError(f"{where}: the sheet is empty")
        header = [f"Unnamed: {i}" if v is None else str(v).strip() for i, v in enumerate(header_row)]
        _check_columns(where, header, usecols or [])
        _duplicates(where, header, usecols or [])
        width = len(header)
        data = [tuple(r[:width]) + (None,) * (width - len(r)) for r in rows]
    finally:
        book.close()
    arr = np.empty((len(data), width), dtype=object)
    if data:
        arr[:] = data
    df = pd.DataFrame(arr, columns=_dedupe(header), dtype=object)
    if usecols:
        df = df[usecols]
    empty = df.isna().all(axis=1).to_numpy()
    if empty.any():  # blank rows between or after the data are no rows
        df = df.loc[~empty]
    return _Table(df, header_at + 1, "row")


# errno values of an unreadable input that are the environment's fault (permission denied,
# I/O error, stale network mount): EnvironmentFault (exit 4) rather than DataError (exit 2)
_ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EIO, errno.ESTALE, errno.ETIMEDOUT}


def _read_parquet(path: Path, *, head: bytes, usecols: list[str] | None) -> _Table:
    try:
        import pyarrow.parquet as pq

        schema_names = pq.read_schema(path).names
    except Exception as err:  # noqa: BLE001 - any reader failure is bad input
        raise DataError(f"{path}: cannot read as Parquet: {err}") from None
    _check_columns(path, schema_names, usecols or [])
    _duplicates(path, schema_names, usecols or [])
    try:
        df = pd.read_parquet(path, columns=usecols)
    except Exception as err:  # noqa: BLE001
        raise DataError(f"{path}: cannot read as Parquet: {err}") from None
    return _Table(df.reset_index(drop=True), 0, "row")


def _read(
    path: str | Path,
    *,
    usecols: list[str] | None = None,
    sep: str | None = None,
    names: list[str] | None = None,
    encoding: str = "auto",
    sheet: str | int | None = None,
    setting: str | None = None,
) -> _Table:
    path = resolve_path(path)
    hint = _setting_hint(setting)
    if not path.exists():
        raise DataError(f"{path}: file not found{hint}")
    if path.is_dir():
        raise DataError(
            f"{path}: is a directory, not a file{hint}; name the CSV, .csv.gz, Parquet or .xlsx file itself"
        )
    try:
        mode = path.stat().st_mode
    except OSError:
        mode = None  # reported with its reason by the read below
    if mode is not None and not stat.S_ISREG(mode):
        raise DataError(
            f"{path}: is not a regular file (a named pipe, device or socket){hint}; "
            "name the CSV, .csv.gz, Parquet or .xlsx file itself"
        )
    try:
        size = path.stat().st_size
        head = _read_head(path)
    except OSError as err:
        if err.errno in _ENVIRONMENT_ERRNOS:  # the machine, not the data: exit 4, retry later
            from churnml.errors import EnvironmentFault

            raise EnvironmentFault(f"{path}: cannot read the file{hint}: {err.strerror or err}") from None
        raise DataError(f"{path}: cannot read the file{hint}: {err.strerror or err}") from None
    if size == 0 or not head:
        raise DataError(f"{path}: the file is empty")
    name = path.name.lower()
    if _is_parquet(path):
        return _read_parquet(path, head=head, usecols=usecols)
    if name.endswith(_EXCEL_SUFFIXES):
        return _read_excel(path, head=head, usecols=usecols, sheet=sheet)
    if name.endswith(".xls"):
        raise DataError(f"{path}: old Excel 97-2003 .xls files are not supported; save it as .xlsx or CSV")
    for suffix, kind in _OTHER_COMPRESSION.items():
        if name.endswith(suffix):
            raise DataError(f"{path}: {kind}-compressed files are not supported; decompress it, or gzip it (.csv.gz)")
    what = "CSV" if name.endswith((".csv", ".csv.gz")) else "table"
    return _read_csv(
        path, gz=name.endswith(".gz"), head=head, usecols=usecols, sep=sep, names=names, encoding=encoding, what=what
    )


def read_table(
    path: str | Path,
    *,
    usecols: list[str] | None = None,
    sep: str | None = None,
    names: list[str] | None = None,
    encoding: str = "auto",
    sheet: str | int | None = None,
) -> tuple[pd.DataFrame, int]:
    """Read a table as strings: CSV (any common separator, gzip allowed), Parquet or Excel .xlsx.

    Returns the frame and the line number of its first data row (for error messages; the
    sheet row for Excel; 0 for Parquet, where rows are 0-based positions). Bad input (see
    :class:`~churnml.config.DataConfig` for the encoding and separator rules) raises
    :class:`~churnml.errors.DataError`.
    """
    table = _read(path, usecols=usecols, sep=sep, names=names, encoding=encoding, sheet=sheet)
    return table.df, table.first_line


def _check_columns(path: Path | str, available: list[str], required: list[str]) -> None:
    missing = [c for c in required if c not in available]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}; "
            f"the file has: {', '.join(repr(c) for c in available)}. "
            "Map your column names under data.columns in the config."
        )


def _show(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value.isoformat() if hasattr(value, "isoformat") else value)
    return text if len(text) <= 60 else text[:57] + "..."


def _examples(
    df: pd.DataFrame, mask: np.ndarray | pd.Series, first_line: int, cols: list[str], label: str | None = None,
    limit: int = _EXAMPLES,
) -> str:
    """'<n> row(s), first <k>: line 3: col='value'; line 5: ...' on one line. Rows are named by
    their line in the file (``first_line`` = the line of the frame's first row, whose index is
    the row's position in the file) or, for a DataFrame (``first_line=0``), by index label."""
    mask = np.asarray(mask, dtype=bool)
    label = label or ("line" if first_line else "row")
    pos = np.flatnonzero(mask)[:limit]
    items = []
    for p in pos:
        idx = df.index[p]
        where = int(idx) + first_line if first_line and isinstance(idx, (int, np.integer)) else idx
        values = ", ".join(f"{c}={_show(df[c].iloc[p])}" for c in cols)
        items.append(f"{label} {where}: {values}")
    return f"{int(mask.sum())} row(s), first {len(items)}: " + "; ".join(items)


# --------------------------------------------------------------------------- customer ids

_INTEGRAL_TEXT = re.compile(r"^[+-]?\d+\.0*$")  # 17850.0, 17850.
_NUMBER_TEXT = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)$")


def _is_non_scalar(v: Any) -> bool:
    return isinstance(v, (list, tuple, dict, set, np.ndarray))


def normalise_ids(
    values: pd.Series,
    *,
    source: str = "<DataFrame>",
    column: str = CUSTOMER_ID,
    df: pd.DataFrame | None = None,
    first_line: int = 0,
    label: str | None = None,
) -> pd.Series:
    """Customer ids as stripped text (``string`` dtype; missing stays missing), one spelling per id.

    An id column read as numbers (Parquet float, Excel cells) whose values are integral gives the
    integer text: ``17850.0`` is customer ``17850``. In a text column whose every value is a plain
    decimal number (numeric-looking), ``"17850.0"`` becomes ``"17850"`` as well, so ``17850`` and
    ``17850.0`` in one log are one customer; other text (``"C17850.0"``, ``"007"``) is kept as is.
    Non-scalar ids (a Parquet list-typed column) raise :class:`~churnml.errors.DataError` naming
    the file, the column and the first rows."""
    where = df if df is not None else values.to_frame(column)
    if values.dtype == object or isinstance(values.dtype, pd.ArrowDtype):
        odd = values.map(_is_non_scalar).to_numpy(dtype=bool)
        if odd.any():
            raise DataError(
                f"{source}: column {column!r} holds lists or other non-scalar values, not one customer id per row: "
                + _examples(where, odd, first_line, [column], label)
            )
    if pd.api.types.is_bool_dtype(values):
        return values.astype("string")
    if pd.api.types.is_float_dtype(values):
        arr = values.to_numpy(dtype="float64", na_value=np.nan)
        finite = np.isfinite(arr)
        integral = finite & (np.floor(np.where(finite, arr, 0)) == np.where(finite, arr, 0))
        out = values.astype("string")
        if integral.any():
            out[integral] = [str(int(v)) for v in arr[integral]]
        out[np.isnan(arr)] = pd.NA
        return out
    if pd.api.types.is_integer_dtype(values):
        return values.astype("string")
    if values.dtype == object:  # Excel cells: numbers and text mixed
        values = values.map(lambda v: str(int(v)) if isinstance(v, (float, np.floating)) and np.isfinite(v)
                            and float(v).is_integer() else v)
    text = values.astype("string").str.strip()
    present = (text.notna() & (text != "")).to_numpy(dtype=bool)
    if present.any() and text[present].str.fullmatch(_NUMBER_TEXT.pattern).all():
        integral = present & text.str.fullmatch(_INTEGRAL_TEXT.pattern).fillna(False).to_numpy(dtype=bool)
        if integral.any():
            text = text.copy()
            text[integral] = text[integral].str.replace(r"\.0*$", "", regex=True)
    return text


# --------------------------------------------------------------------------- timestamps and numbers

# a UTC offset after a time of day: 10:00Z, 10:00:00+02:00, 101500+0200, 10:00 UTC, 10:00 GMT+2
_TZ_OFFSET = r"[zZ]|[+-]\d{2}(?::?\d{2})?|(?:UTC|GMT)(?:\s*[+-]\d{1,2}(?::?\d{2})?)?"
_TZ_TIME = r"\d{2}:?\d{2}(?::?\d{2}(?:[.,]\d+)?)?\s*"
_TZ_SUFFIX = re.compile(_TZ_TIME + f"(?:{_TZ_OFFSET})$")
_TZ_SUFFIX_GROUP = re.compile(_TZ_TIME + f"({_TZ_OFFSET})$")
_NS_MIN = pd.Timestamp.min.ceil("us")
_NS_MAX = pd.Timestamp.max.floor("us")


def _to_datetime(values: pd.Series, fmt: str | None, *, utc: bool) -> pd.Series:
    """Parse with ``fmt`` (or the format inferred from the first value), then row by row where
    that did not fit; unparseable values become NaT."""
    try:
        ts = pd.to_datetime(values, format=fmt, errors="coerce", utc=utc)
    except (ValueError, TypeError):
        ts = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us, UTC]" if utc else "datetime64[us]")
    if fmt is None and (ts.isna() & values.notna()).any():
        try:
            ts = pd.to_datetime(values, format="mixed", errors="coerce", utc=utc)
        except (ValueError, TypeError):
            pass
    return ts


MIN_DATE = pd.Timestamp("1970-01-01")
"""Default earliest plausible timestamp, ``data.min_date``."""
_SAMPLE = 5000
_ISO = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}(?:[ T].*)?$")
_DMY = re.compile(r"^(\d{1,2})([-/.])(\d{1,2})\2(\d{4}|\d{2})(?:[ T].*)?$")
_COMPACT = re.compile(r"^\d{8}$")
_TIME_ONLY = re.compile(r"^\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[AaPp]\.?[Mm]\.?)?$")
_KINDS = {
    "iso": "ISO (2024-01-31)",
    "dmy": "day/month or month/day (03/04/2024)",
    "compact": "YYYYMMDD (20240131)",
    "time": "a time without a date (10:00)",
    "text": "other (5 Jan 2024)",
}


def date_window(min_date=None, max_date=None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The plausible dates of a log: ``[min_date, max_date]`` as naive timestamps, the end day
    inclusive. Defaults (``None``): 1970-01-01 .. tomorrow (UTC, the run date + 1 day)."""
    lo = MIN_DATE if min_date is None else pd.Timestamp(min_date)
    hi = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize() + pd.Timedelta(days=1) if max_date is None else pd.Timestamp(max_date)
    return lo.normalize(), hi.normalize() + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)


def _kinds(text: pd.Series) -> pd.Series:
    """The shape of each (stripped, non-empty) date text: one of ``_KINDS``."""
    kind = pd.Series("text", index=text.index, dtype=object)
    for name, rx in (("time", _TIME_ONLY), ("compact", _COMPACT), ("dmy", _DMY), ("iso", _ISO)):
        kind[text.str.match(rx, na=False).to_numpy(dtype=bool)] = name
    return kind


def _readable(values: pd.Series) -> pd.Series:
    """Whether each text reads as a date on its own (either day/month order); slow, for few values."""
    ok = pd.Series(False, index=values.index)
    for dayfirst in (False, True):
        try:
            ok |= pd.to_datetime(values, format="mixed", dayfirst=dayfirst, errors="coerce").notna().to_numpy()
        except (ValueError, TypeError, OverflowError):  # pragma: no cover - offsets mixed with naive values
            ok |= values.map(lambda v: pd.notna(pd.to_datetime(v, errors="coerce", dayfirst=dayfirst))).to_numpy(dtype=bool)
    return ok


def _infer_format(values: pd.Series, fail) -> str | None:
    """One format for the whole text column ``values`` (``data.timestamp_format`` unset), checked on
    a sample of its distinct values (all distinct values for day/month order): ``None`` = pandas
    infers it (ISO, and text shapes it knows), or an explicit format. Refuses time-only values, a
    column mixing shapes, and numeric day/month dates that fit both day-first and month-first."""
    n = len(values)
    pos = np.arange(min(n, 4 * _SAMPLE))
    if n > 4 * _SAMPLE:  # a spread-out sample too, not only the head
        pos = np.concatenate([pos, np.random.default_rng(0).choice(np.arange(4 * _SAMPLE, n), _SAMPLE, replace=False)])
    sample = values.iloc[pos].astype("string").str.strip()
    sample = sample[(sample.notna() & (sample != "")).fillna(False).to_numpy(dtype=bool)]
    if sample.empty:
        return None
    distinct = pd.Series(sample.unique())
    text = values.astype("string").str.strip() if n <= 4 * _SAMPLE else None

    def full() -> pd.Series:
        return text if text is not None else values.astype("string").str.strip()

    kinds = _kinds(distinct.astype("string"))
    found = list(dict.fromkeys(kinds))
    if len(found) > 1 and "time" not in found:  # values no format reads are named by the parse below
        kinds = kinds[_readable(distinct).to_numpy()]
        distinct = distinct[kinds.index]
        found = list(dict.fromkeys(kinds))
        if not found:
            return None
    rows = lambda wanted: full().isin(set(distinct[kinds.isin(wanted).to_numpy()])).to_numpy(dtype=bool)  # noqa: E731
    if "time" in found:
        raise fail(rows(["time"]), "holds times without a date; write full dates (YYYY-MM-DD HH:MM)")
    if len(found) > 1:
        first = {k: distinct[(kinds == k).to_numpy()].iloc[0] for k in found}
        shown = ", ".join(f"{_KINDS[k]}: {first[k]!r}" for k in found)
        mask, t = np.zeros(n, dtype=bool), full()
        for k in found:  # one example row per shape
            mask[int(np.flatnonzero(t.eq(first[k]).fillna(False).to_numpy(dtype=bool))[0])] = True
        raise fail(
            mask,
            f"mixes date formats ({shown}); write one format for the whole column, or set data.timestamp_format",
        )
    kind = found[0]
    if kind == "compact":
        return "%Y%m%d"
    if kind != "dmy":
        return None
    # day/month order over every distinct value: one order for the whole column
    t = full()
    every = pd.Series(t[(t.notna() & (t != "")).fillna(False).to_numpy(dtype=bool)].unique()).astype("string")
    parts = every.str.extract(_DMY)
    a, b = parts[0].astype(int), parts[2].astype(int)
    valid = (a >= 1) & (b >= 1) & (a <= 31) & (b <= 31)  # others: named by the parse below
    day_first = bool((b[valid] <= 12).all())
    month_first = bool((a[valid] <= 12).all())
    if not (day_first or month_first):
        shown = [every[(valid & (b > 12)).to_numpy()].iloc[0], every[(valid & (a > 12)).to_numpy()].iloc[0]]
        raise fail(
            t.isin(set(shown)).to_numpy(dtype=bool),
            f"mixes day-first ({shown[1]!r}) and month-first ({shown[0]!r}) dates; write one order for the whole "
            "column, or set data.timestamp_format",
        )
    if day_first and month_first:
        sample = every.iloc[:3].tolist()
        raise fail(
            t.isin(set(sample)).to_numpy(dtype=bool),
            "has dates that read both day-first and month-first (no day above 12); set data.timestamp_format "
            "to '%d/%m/%Y' or '%m/%d/%Y' (with the column's separator)",
        )
    from pandas.tseries.api import guess_datetime_format

    first = str(every.iloc[int(np.flatnonzero(((a > 12) | (b > 12)).to_numpy())[0])] if ((a > 12) | (b > 12)).any() else every.iloc[0])
    fmt = guess_datetime_format(first, dayfirst=day_first)
    if fmt is None:  # pragma: no cover - a shape pandas cannot spell
        sep, year = parts.iloc[0, 1], parts.iloc[0, 3]
        fmt = ("%d{0}%m{0}" if day_first else "%m{0}%d{0}").format(sep) + ("%Y" if len(year) == 4 else "%y")
    return fmt


def _check_window(ts: pd.Series, window, fail) -> None:
    lo, hi = window
    out = ((ts < lo) | (ts > hi)).to_numpy(dtype=bool)
    if out.any():
        raise fail(
            out,
            f"has dates outside the plausible window {lo.date()} .. {hi.date()} (data.min_date, data.max_date; "
            "the default end is the run date + 1 day)",
        )


def _parse_timestamps(
    values: pd.Series,
    fmt: str | None,
    *,
    source: str,
    column: str,
    df: pd.DataFrame,
    first_line: int,
    timezone: str | None = None,
    label: str | None = None,
    notes: list[str] | None = None,
    window: tuple | None = None,
) -> pd.Series:
    """Timestamps as naive UTC ``datetime64[ns]``.

    Without ``fmt`` one format is inferred for the whole column (see :func:`_infer_format`):
    numeric day/month dates fitting both orders, time-only values and columns mixing formats
    are refused. Timestamps outside ``window`` (see :func:`date_window`; ``None`` = its
    defaults) are bad input naming the rows.

    Values with an offset (``+02:00``, ``Z``) are converted to UTC. Values without one are
    taken as they are, or, with ``timezone`` (IANA name), as local times there converted to
    UTC (an autumn wall time that occurs twice is read as the first, summer-time, one; a
    spring time that does not exist moves forward). A column mixing both kinds without
    ``timezone`` is bad input. Unparseable values and values outside 1677-09-22 .. 2262-04-11
    (the range of nanosecond timestamps) are bad input naming the rows.
    """
    notes = notes if notes is not None else []
    setting = f"column {column!r}"

    def fail(mask, what: str) -> DataError:
        return DataError(f"{source}: {setting} {what}: " + _examples(df, mask, first_line, [column], label, limit=3))

    mixed = False
    given = fmt
    values = _numbers_as_dates(values, fmt, fail)
    if pd.api.types.is_datetime64_any_dtype(values):
        ts = values
    else:
        if fmt is None:
            fmt = _infer_format(values, fail)
        try:
            ts = pd.to_datetime(values, format=fmt, errors="coerce")
        except (ValueError, TypeError):  # e.g. several UTC offsets: parsed below
            ts = None
        if ts is None or (ts.isna() & values.notna()).any():
            if given is None and fmt is None and ts is not None:
                # the rows the first value's format missed: the same shape as the column, or refused
                keep = (ts.isna() & values.notna()).to_numpy() | (np.cumsum(ts.notna().to_numpy()) <= 50)
                at = np.flatnonzero(keep)

                def fail_at(mask, what: str) -> DataError:
                    whole = np.zeros(len(values), dtype=bool)
                    whole[at[np.asarray(mask, dtype=bool)]] = True
                    return fail(whole, what)

                _infer_format(values.iloc[at], fail_at)
            ts = _parse_mixed(values, fmt, timezone=timezone, source=source, setting=setting, fail=fail, notes=notes)
            mixed = True
    bad = ts.isna().to_numpy()
    if bad.any():
        if given:
            hint = f" with format {fmt!r} (data.timestamp_format)"
        elif fmt:
            hint = f" with the column's format {fmt!r}; set data.timestamp_format"
        else:
            hint = "; set data.timestamp_format (e.g. '%Y%m%d')"
        raise fail(bad, f"has missing or unparseable timestamps{hint}")
    if not mixed:
        tz = getattr(ts.dt, "tz", None)
        if tz is not None and not pd.api.types.is_datetime64_any_dtype(values):
            _refuse_posix_offsets(values.astype("string"), fail)
        if tz is not None:
            notes.append(f"{_name(source)}: {setting}: timestamps with time zone {tz} converted to UTC")
            ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
        elif timezone is not None:
            ts = _localize(ts, timezone)
            notes.append(f"{_name(source)}: {setting}: timestamps without an offset read as {timezone} local time, converted to UTC")
    if ts.dtype != "datetime64[ns]":
        out = (ts < _NS_MIN).to_numpy() | (ts > _NS_MAX).to_numpy()
        if out.any():
            raise fail(out, "has dates outside the supported range 1677-09-22 .. 2262-04-11")
    ts = ts.astype("datetime64[ns]")
    _check_window(ts, window or date_window(), fail)
    return ts


def _numbers_as_dates(values: pd.Series, fmt: str | None, fail) -> pd.Series:
    """Numbers in a timestamp column (Parquet integers, Excel cells holding date serials) would
    silently become nanoseconds since 1970: read them as text with ``fmt`` (``%Y%m%d``), or refuse."""
    if pd.api.types.is_bool_dtype(values):
        raise fail(np.ones(len(values), dtype=bool), "holds true/false values, not dates")
    if pd.api.types.is_numeric_dtype(values):
        numeric = values.notna().to_numpy()
    elif values.dtype == object:  # Excel: cells of mixed types
        numeric = values.map(lambda v: isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and v == v)
        numeric = numeric.to_numpy(dtype=bool)
    else:
        return values
    if not numeric.any():
        return values
    if fmt is None:
        raise fail(
            numeric,
            "holds numbers, not dates (Excel date serials or epoch seconds?); store dates, or set "
            "data.timestamp_format (e.g. '%Y%m%d') to read numbers like 20240131",
        )
    def text(v):
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            v = int(v)
        return str(v)

    out = values.astype(object).copy()
    out[numeric] = [text(v) for v in values[numeric]]
    return out


def _name(source: str) -> str:
    return Path(source).name or source


_POSIX_OFFSET = r"(?:UTC|GMT)\s*[+-]\d"


def _refuse_posix_offsets(text: pd.Series, fail) -> None:
    """``GMT+2`` is read with the POSIX sign (= UTC-2), the opposite of what most people mean."""
    posix = text.str.contains(_POSIX_OFFSET, regex=True, na=False).to_numpy(dtype=bool)
    if posix.any():
        raise fail(posix, "writes offsets as 'GMT+2' / 'UTC+2', which parsers read with the POSIX sign (GMT+2 = UTC-2); write them as +02:00")


def _localize(ts: pd.Series, timezone: str) -> pd.Series:
    """Naive local times in ``timezone`` -> naive UTC."""
    ambiguous = np.ones(len(ts), dtype=bool)  # the first (summer-time) occurrence
    return ts.dt.tz_localize(timezone, ambiguous=ambiguous, nonexistent="shift_forward").dt.tz_convert("UTC").dt.tz_localize(None)


def _parse_mixed(values: pd.Series, fmt: str | None, *, timezone, source, setting, fail, notes) -> pd.Series:
    """The slow path (formats vary, or values carry UTC offsets, maybe different ones): naive
    UTC ``datetime64[us]``, NaT where unparseable."""
    text = values.astype("string").str.strip()
    present = (text.notna() & (text != "")).fillna(False).to_numpy(dtype=bool)
    aware = text.str.contains(_TZ_SUFFIX, regex=True, na=False).to_numpy(dtype=bool) & present
    naive = present & ~aware
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us]")
    if aware.any():
        if naive.any() and timezone is None:
            first_aware = int(np.flatnonzero(aware)[0])
            raise fail(
                naive,
                f"mixes timestamps with a UTC offset (e.g. {text.iloc[first_aware]!r}) and without one; set "
                "data.timezone to the zone of the ones without (e.g. Europe/Helsinki or UTC)",
            )
        _refuse_posix_offsets(text.where(aware), fail)
        got = _to_datetime(text[aware], fmt, utc=True)
        out.loc[aware] = got.dt.tz_localize(None).astype("datetime64[us]").to_numpy()
        offsets = text[aware].str.extract(_TZ_SUFFIX_GROUP, expand=False).str.strip().dropna().unique()
        shown = ", ".join(sorted(map(str, offsets))[:5]) + (", ..." if len(offsets) > 5 else "")
        notes.append(f"{_name(source)}: {setting}: timestamps with UTC offsets ({shown}) converted to UTC")
    if naive.any():
        got = _to_datetime(text[naive], fmt, utc=False)
        if getattr(got.dt, "tz", None) is not None:  # pragma: no cover - offsets the pattern missed
            got = got.dt.tz_convert("UTC").dt.tz_localize(None)
        if timezone is not None:
            got = _localize(got, timezone)
            notes.append(
                f"{_name(source)}: {setting}: timestamps without an offset read as {timezone} local time, converted to UTC"
            )
        out.loc[naive] = got.astype("datetime64[us]").to_numpy()
    return out


def _parse_numbers(
    values: pd.Series,
    *,
    source: str,
    column: str,
    df: pd.DataFrame,
    first_line: int,
    max_abs: float | None = None,
    label: str | None = None,
) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        num = values.astype("float64")
    else:
        num = pd.to_numeric(values.astype("string").str.strip(), errors="coerce").astype("float64")
    arr = num.to_numpy()
    bad = ~np.isfinite(arr)  # NaN (missing, non-numeric) and +-inf
    if bad.any():
        raise DataError(
            f"{source}: column {column!r} has missing, non-numeric or infinite values: "
            + _examples(df, bad, first_line, [column], label)
        )
    if max_abs is not None:
        huge = np.abs(arr) > max_abs
        if huge.any():
            raise DataError(
                f"{source}: column {column!r} has implausibly large values (|value| > {max_abs:g}, "
                "data.max_abs_amount): " + _examples(df, huge, first_line, [column], label)
            )
    return arr

# --------------------------------------------------------------------------- transactions

NAT = np.iinfo(np.int64).min
"""NaT as int64 nanoseconds (``datetime64[ns]`` viewed as int64): "not cancelled" in the matching arrays."""


def _run_starts(values: pd.Series) -> np.ndarray:
    """True where a value differs from the previous one (and at 0): run starts of sorted ids."""
    n = len(values)
    out = np.empty(n, dtype=bool)
    if n == 0:
        return out
    out[0] = True
    if isinstance(values.dtype, (pd.StringDtype, pd.ArrowDtype)):
        import pyarrow as pa
        import pyarrow.compute as pc

        try:  # compare Arrow strings in Arrow: no Python objects for 10M ids
            arr = pa.array(values.array)  # zero copy for Arrow-backed strings
            if isinstance(arr, pa.ChunkedArray):
                arr = arr.combine_chunks()
            if arr.null_count == 0:
                out[1:] = pc.not_equal(arr.slice(1), arr.slice(0, n - 1)).to_numpy(zero_copy_only=False)
                return out
        except (TypeError, ValueError, pa.ArrowException):
            pass
    v = values.to_numpy()
    np.not_equal(v[1:], v[:-1], out=out[1:])
    return out


def _match_cancellations(codes: np.ndarray, ts_ns: np.ndarray, amount: np.ndarray, is_return: np.ndarray) -> np.ndarray:
    """``cancelled_at`` (int64 ns, ``NAT`` for none) of every order, vectorised.

    ``codes`` are integer customer codes. A return order cancels the latest purchase order of the
    same customer placed at or before it (same timestamp included) that is not cancelled yet and
    whose amount is minus the return's to the cent (``round(|amount| * 100)`` equal: for amounts
    in whole cents, float noise included, that is ``|purchase + return| <= 0.005``); returns are
    taken in time order and each purchase is cancelled at most once. Both rows get the return's
    timestamp.

    Candidates are grouped by customer and amount in cents; inside a group, in time order
    (purchases before returns at the same timestamp), a purchase opens and a return closes, like
    parentheses: a return matches the latest unmatched purchase, i.e. the top of a stack. The
    stack depth is the running sum reflected at 0 (a return on an empty stack matches nothing),
    and a purchase that raises the depth to ``h`` is matched by the next return that lowers it
    from ``h``: sorted by (group, level, time), a matched pair is a purchase directly followed by
    a return.
    """
    n = len(amount)
    out = np.full(n, NAT, dtype=np.int64)
    if n == 0 or not is_return.any():
        return out
    cents = np.rint(np.abs(amount) * 100.0)
    n_codes = int(codes.max()) + 1
    c_max = float(cents.max())
    if c_max < 2**52 and n_codes * (c_max + 1) < 2**62:
        key = codes.astype(np.int64) * np.int64(c_max + 1) + cents.astype(np.int64)
    else:  # amounts too large to pack: group (customer, cents) by hashing
        key = pd.MultiIndex.from_arrays([codes, cents]).factorize()[0].astype(np.int64)
    # only orders whose (customer, cents) group holds a return can be matched
    ret_keys = np.sort(key[is_return])
    pos = np.searchsorted(ret_keys, key)
    pos[pos == len(ret_keys)] = 0
    idx = np.flatnonzero(ret_keys[pos] == key)
    k, t, r = key[idx], ts_ns[idx], is_return[idx]
    order = np.lexsort((idx, r, t, k))  # group, then time, purchases first, then row order
    idx, k, t, r = idx[order], k[order], t[order], r[order]
    m = len(idx)
    start = np.empty(m, dtype=bool)
    start[0] = True
    np.not_equal(k[1:], k[:-1], out=start[1:])
    gid = np.cumsum(start) - 1
    x = np.where(r, -1, 1).astype(np.int64)
    s = np.cumsum(x)
    s -= (s - x)[start][gid]  # running sum inside each group
    big = 2 * m + 2  # running minimum per group: shift each group below all earlier ones
    low = np.minimum.accumulate(s - gid * big) + gid * big
    depth = s - np.minimum(low, 0)  # stack depth after each event
    depth_before = np.empty(m, dtype=np.int64)
    depth_before[0] = 0
    depth_before[1:] = depth[:-1]
    depth_before[start] = 0
    level = np.where(r, depth_before, depth)
    sel = np.flatnonzero(~r | (depth_before > 0))  # purchases and the returns that pop one
    sel = sel[np.lexsort((sel, level[sel], gid[sel]))]
    a, b = sel[:-1], sel[1:]
    pair = ~r[a] & r[b] & (gid[a] == gid[b]) & (level[a] == level[b])
    a, b = a[pair], b[pair]
    out[idx[a]] = t[b]
    out[idx[b]] = t[b]
    return out


CANCEL_WINDOW_DAYS = 30.0
"""Default ``data.cancel_window_days``: how far back (days) a credit note looks for the several
orders it cancels together (one-order cancellations have no window)."""
CANCEL_MAX_ORDERS = 12
"""The most recent open orders a credit note is matched against as a group (2**12 subsets)."""

_SUBSETS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _subsets(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every subset of ``k`` items with at least two, as a (subsets, k) 0/1 matrix sorted in the
    preference order of :func:`match_multi_order` (fewest orders, then the most recent oldest
    order, then the most recent orders), and each subset's size."""
    if k not in _SUBSETS:
        masks = np.arange(1, 1 << k, dtype=np.int64)
        bits = ((masks[:, None] >> np.arange(k)) & 1).astype(np.int64)
        size = bits.sum(axis=1)
        oldest = np.where(bits.any(axis=1), k - 1 - np.argmax(bits[:, ::-1], axis=1), 0)
        keep = size >= 2
        bits, size, oldest, masks = bits[keep], size[keep], oldest[keep], masks[keep]
        order = np.lexsort((masks, oldest, size))
        _SUBSETS[k] = (bits[order], size[order])
    return _SUBSETS[k]


def match_multi_order(
    codes: np.ndarray, ts_ns: np.ndarray, cents: np.ndarray, is_return: np.ndarray, cancelled: np.ndarray,
    window_ns: int, max_orders: int = CANCEL_MAX_ORDERS,
) -> tuple[np.ndarray, int]:
    """Credit notes that cancel several orders at once, on top of the one-order matches.

    Rows sorted by customer code and time; ``cents`` are ``round(|amount| * 100)``; ``cancelled``
    (int64 ns, ``NAT`` for none) holds the one-order matches of :func:`_match_cancellations`.
    The rule, one credit note (return order) at a time in time order per customer (ties by
    amount): it cancels the latest open purchase of its amount placed at or before it (the
    one-order rule); failing that, two or more of the customer's open purchases placed at or
    before it, at most ``window_ns`` earlier and smaller than it (the ``max_orders`` most recent
    of them) whose amounts add up to its own to the cent (every row gets its timestamp). Among
    several such sets the one with the fewest orders wins, then the one whose oldest order is the
    most recent, then the most recent orders (orders at the same time rank by amount, larger
    first). Every decision uses only rows at or before the credit note and earlier decisions, so
    rows appended later change none (point in time).

    Where no set can ever match, this rule gives the one-order matches: only customers with a
    credit note left unmatched by them and at least two purchases in its window are redone
    (a Python loop over their rows); the others keep ``cancelled``. Returns the marks and how
    many credit notes cancelled a set."""
    out = cancelled.copy()
    n = len(codes)
    ret = np.flatnonzero(is_return & (out == NAT))
    if n == 0 or ret.size == 0:
        return out, 0
    # rule-out, vectorised: purchases (any state) of the customer in [t - window, t], found by a
    # search on (customer, whole second) keys, a superset of the candidates
    pur = ~is_return & (cents > 0)
    sec = ts_ns // 1_000_000_000
    lo_t, w_s = int(sec.min()), window_ns // 1_000_000_000 + 2
    span = int(sec.max()) - lo_t + w_s + 2
    start = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    run = np.cumsum(np.r_[True, codes[1:] != codes[:-1]]) - 1
    end = np.r_[start[1:], n]
    if (int(codes.max()) + 1) * span < 2**62:
        key = codes.astype(np.int64) * span + (sec - lo_t + w_s)
        rk = codes[ret].astype(np.int64) * span
        a_all = np.searchsorted(key, rk + ((ts_ns[ret] - window_ns) // 1_000_000_000 - lo_t + w_s), side="left")
        b_all = np.searchsorted(key, rk + (sec[ret] - lo_t + w_s), side="right")
    else:  # pragma: no cover - keys too large to pack: each customer's run
        a_all, b_all = start[run[ret]], end[run[ret]]
    cum = np.r_[0, np.cumsum(pur)]
    redo = np.unique(run[ret[cum[b_all] - cum[a_all] >= 2]])
    n_matched = 0
    for r in redo.tolist():
        lo, hi = int(start[r]), int(end[r])
        t_c, c_c, is_r = ts_ns[lo:hi], cents[lo:hi], is_return[lo:hi]
        marks = np.full(hi - lo, NAT, dtype=np.int64)
        rr = np.flatnonzero(is_r)
        for i in rr[np.lexsort((rr, c_c[rr], t_c[rr]))].tolist():
            t = t_c[i]
            open_before = ~is_r & (marks == NAT) & (t_c <= t)
            one = np.flatnonzero(open_before & (c_c == c_c[i]))
            if one.size:  # the one-order rule: the latest (the last row: rows are in time order)
                j = one[np.lexsort((one, t_c[one]))][-1]
                marks[j] = marks[i] = t
                continue
            cand = np.flatnonzero(open_before & (t_c >= t - window_ns) & (c_c > 0) & (c_c < c_c[i]))
            if cand.size < 2:
                continue
            cand = cand[np.lexsort((c_c[cand], t_c[cand]))][::-1][:max_orders]  # most recent first
            bits, _ = _subsets(cand.size)
            hit = np.flatnonzero(bits @ c_c[cand] == c_c[i])
            if hit.size == 0:
                continue
            marks[cand[bits[hit[0]].astype(bool)]] = t
            marks[i] = t
            n_matched += 1
        out[lo:hi] = marks
    return out, n_matched


def _amount_before_last(lines: pd.DataFrame, orders: pd.DataFrame, keys: list[str], last_ns: np.ndarray) -> np.ndarray:
    """Per row of ``orders`` (identified by ``keys``): the sum of its ``lines``' amounts (currency)
    strictly before ``last_ns`` (its latest line's time, int64 ns)."""
    want = orders[keys].assign(_last_ns=last_ns)
    sub = lines[keys + [TIMESTAMP, AMOUNT]].merge(want, on=keys, how="inner")
    t = sub[TIMESTAMP].to_numpy().astype("datetime64[ns]").view(np.int64)
    sub = sub.loc[t < sub["_last_ns"].to_numpy()]
    got = sub.groupby(keys, sort=False, observed=True)[AMOUNT].sum()
    return got.reindex(pd.MultiIndex.from_frame(orders[keys])).fillna(0.0).to_numpy(dtype=np.float64)


def prepare_transactions(
    raw: pd.DataFrame,
    *,
    columns: ColumnsConfig | None = None,
    timestamp_format: str | None = None,
    returns: str = "net",
    source: str = "<DataFrame>",
    first_line: int = 0,
    timezone: str | None = None,
    max_abs_amount: float | None = MAX_ABS_AMOUNT,
    line_label: str | None = None,
    cancel_window_days: float = CANCEL_WINDOW_DAYS,
    min_date=None,
    max_date=None,
) -> tuple[pd.DataFrame, LoadReport]:
    """Validate raw order lines and collapse them to one purchase event per order.

    Timestamps become naive UTC (see ``DataConfig``: offsets converted, values without one taken
    as they are or, with ``timezone``, as local times there); amounts must be finite and at most
    ``max_abs_amount`` (currency) in absolute value per line. Bad values raise
    :class:`~churnml.errors.DataError` naming the column and the first rows (``first_line`` is the
    file line, or with ``line_label="row"`` the sheet row, of the frame's first row; 0 = a DataFrame).

    Orders are identified by ``order_id`` or, without one, by customer and timestamp.
    ``returns="net"`` keeps negative lines inside an order (netting them) and keeps whole
    return orders as ``is_return`` rows whose negative amount is netted against the
    customer's spend from the return's own date on; ``returns="drop"`` removes every
    negative line. Rows without a customer id are dropped and counted in the report.

    Cancellations (``returns="net"``), matched on customer, amount (to the cent: ``round(|amount|
    * 100)``) and time only; order ids are not read for references (``C536365`` may be its own
    number or name the order it cancels: either way the amounts decide):

    1. An order whose own lines net to zero and that has a negative line (cancelled inside the
       order, or at the order's own timestamp without order ids) is cancelled at its latest
       line's timestamp, the moment it became zero (``report.orders_netting_to_zero``). With all
       lines at one time it is never a purchase. With ``order_id`` and lines at several times
       (``+50`` on day 0, ``-50`` under the same order id on day 3) a snapshot at a cutoff
       between its first and latest line sees one purchase at the first line's time, whose
       amount is the net of all its lines before the latest line's time (floored at 0; 50 here,
       including any such lines at or after the cutoff, as for every order: an order's lines are
       summed regardless of time); from the latest line on it never happened.
    2. One order: a return order whose amount is minus the amount of a purchase order of the same
       customer placed at or before it cancels the latest such purchase not cancelled yet
       (returns in time order, each purchase cancelled at most once; no time window).
    3. Several orders: a return order that step 2 leaves unmatched (as it is reached) cancels two
       or more of the customer's open purchase orders placed at or before it and at most
       ``cancel_window_days`` days earlier whose amounts add up to minus its amount (among the
       ``CANCEL_MAX_ORDERS`` most recent; fewest orders first, then the most recent ones; see
       ``match_multi_order``). Credit notes are taken in time order, each trying step 2 then
       step 3, so a credit note's match depends on nothing after it. A re-invoice at a new price
       is an ordinary new purchase: it counts once, at its own amount.
    4. Anything else (a partial return or cancellation, a credit note matching no set of orders)
       stays an ``is_return`` row that reduces the customer's spend from its own date on; the
       orders it reduces stay purchases at their net amount (``report.unmatched_returns``).

    Matched rows (the purchases and their credit note) get ``cancelled_at`` = the credit note's
    timestamp (NaT elsewhere); ``report.cancellations`` counts the purchases cancelled by steps 2
    and 3, ``report.multi_order_credit_notes`` the credit notes of step 3. Point in time: from
    ``cancelled_at`` on none of the rows exists (:func:`active_rows`); before it (a snapshot at a
    cutoff between an order and its later cancellation) the purchases count in full and the
    credit note is not yet there. Steps 1-2 are vectorised (a few seconds on 10M orders); step 3
    loops over the unmatched returns with at least two candidate orders.
    """
    columns = columns or ColumnsConfig()
    report = LoadReport(source=source, rows_read=len(raw), returns=returns)
    if len(raw) == 0:
        raise DataError(f"{source}: no rows (the file has a header but no data)")
    required = [columns.customer_id, columns.timestamp]
    if columns.order_id:
        required.append(columns.order_id)
    amount_cols: list[str] = []
    if columns.quantity and columns.unit_price:
        amount_cols = [columns.quantity, columns.unit_price]
    elif columns.amount:
        amount_cols = [columns.amount]
    _check_columns(source, list(raw.columns), required + amount_cols)

    cid = normalise_ids(raw[columns.customer_id], source=source, column=columns.customer_id, df=raw,
                        first_line=first_line, label=line_label)
    missing = cid.isna() | (cid == "")
    report.rows_missing_customer = int(missing.sum())
    if report.rows_missing_customer:
        keep = ~missing.to_numpy()
        raw = raw.loc[keep]
        cid = cid[keep]
    if len(raw) == 0:
        raise DataError(f"{source}: every row lacks a customer id in column {columns.customer_id!r}")

    where = {"source": source, "df": raw, "first_line": first_line, "label": line_label}
    ts = _parse_timestamps(
        raw[columns.timestamp], timestamp_format, column=columns.timestamp, timezone=timezone, notes=report.notes,
        window=date_window(min_date, max_date), **where
    )
    if len(amount_cols) == 2:
        qty = _parse_numbers(raw[amount_cols[0]], column=amount_cols[0], max_abs=max_abs_amount, **where)
        price = _parse_numbers(raw[amount_cols[1]], column=amount_cols[1], max_abs=max_abs_amount, **where)
        amount = qty * price
        if max_abs_amount is not None and (huge := np.abs(amount) > max_abs_amount).any():
            raise DataError(
                f"{source}: columns {amount_cols[0]!r} x {amount_cols[1]!r} give implausibly large line amounts "
                f"(|amount| > {max_abs_amount:g}, data.max_abs_amount): "
                + _examples(raw, huge, first_line, amount_cols, line_label)
            )
        negative = (qty < 0) | (amount < 0)
    elif amount_cols:
        amount = _parse_numbers(raw[amount_cols[0]], column=amount_cols[0], max_abs=max_abs_amount, **where)
        negative = amount < 0
    else:
        amount = np.zeros(len(raw))
        negative = np.zeros(len(raw), dtype=bool)

    lines = pd.DataFrame(
        {CUSTOMER_ID: cid.astype(str).to_numpy(), TIMESTAMP: ts.to_numpy(), AMOUNT: amount}, index=raw.index
    )
    if columns.order_id:
        lines["order_id"] = raw[columns.order_id].astype("string").str.strip().fillna("").to_numpy()
    if returns == "drop" and negative.any():
        report.rows_negative_dropped = int(negative.sum())
        lines = lines.loc[~negative]
        if lines.empty:
            raise DataError(f"{source}: every row is a return or cancellation (negative amount)")
    report.order_lines = len(lines)

    if columns.order_id:
        keys = [CUSTOMER_ID, "order_id"]
        orders = lines.groupby(keys, sort=False, observed=True).agg(
            timestamp=(TIMESTAMP, "min"), _last=(TIMESTAMP, "max"), amount=(AMOUNT, "sum"), n_lines=(AMOUNT, "size"),
            _min=(AMOUNT, "min"),
        )
    else:
        keys = [CUSTOMER_ID, TIMESTAMP]
        orders = lines.groupby(keys, sort=False, observed=True).agg(
            amount=(AMOUNT, "sum"), n_lines=(AMOUNT, "size"), _min=(AMOUNT, "min")
        )
    orders = orders.reset_index()
    orders = orders.sort_values([CUSTOMER_ID, TIMESTAMP], kind="stable").reset_index(drop=True)
    amt = orders[AMOUNT].to_numpy()
    cents = np.rint(np.abs(amt) * 100.0)
    # cancelled inside the order: a negative line and a net amount of zero to the cent
    zero_net = (orders.pop("_min").to_numpy() < 0) & (cents == 0) if returns == "net" else np.zeros(len(orders), dtype=bool)
    # it became zero at its latest line (the order's own time without order ids)
    last = orders.pop("_last") if "_last" in orders.columns else orders[TIMESTAMP]
    last_ns = last.to_numpy().astype("datetime64[ns]").view(np.int64)
    orders[IS_RETURN] = (amt < 0) & ~zero_net
    is_ret = orders[IS_RETURN].to_numpy()
    ts_ns = orders[TIMESTAMP].to_numpy().astype("datetime64[ns]").view(np.int64)
    cancelled = np.full(len(orders), NAT, dtype=np.int64)
    if returns == "net" and is_ret.any():
        codes = np.cumsum(_run_starts(orders[CUSTOMER_ID])) - 1  # sorted: one run per customer
        cancelled = _match_cancellations(codes, ts_ns, amt, is_ret)
        window_ns = int(round(float(cancel_window_days) * 86_400e9))
        cancelled, report.multi_order_credit_notes = match_multi_order(
            codes, ts_ns, cents.astype(np.int64), is_ret, cancelled, window_ns
        )
    report.cancellations = int(((cancelled != NAT) & ~is_ret).sum())
    cancelled[zero_net] = last_ns[zero_net]
    report.orders_netting_to_zero = int(zero_net.sum())
    spans = np.flatnonzero(zero_net & (last_ns > ts_ns))
    if spans.size:  # until it became zero, the order stands at what its earlier lines add up to
        before = _amount_before_last(lines, orders.iloc[spans], keys, last_ns[spans])
        orders.loc[orders.index[spans], AMOUNT] = np.maximum(before, 0.0)
    report.unmatched_returns = int((is_ret & (cancelled == NAT)).sum())
    orders[CANCELLED_AT] = cancelled.view("datetime64[ns]")
    cols = [CUSTOMER_ID, TIMESTAMP, AMOUNT, IS_RETURN, "n_lines", CANCELLED_AT] + (["order_id"] if columns.order_id else [])
    orders = orders[cols]

    report.orders = len(orders)
    report.return_events = int(orders[IS_RETURN].sum())
    report.purchase_events = report.orders - report.return_events
    report.customers = int(orders.loc[~orders[IS_RETURN], CUSTOMER_ID].nunique())
    if report.purchase_events == 0:
        raise DataError(f"{source}: no purchase events (every order has a negative net amount)")
    report.first_timestamp = str(orders[TIMESTAMP].min())
    report.last_timestamp = str(orders[TIMESTAMP].max())
    return orders, report


def read_transactions(
    path: str | Path,
    *,
    columns: ColumnsConfig | None = None,
    timestamp_format: str | None = None,
    returns: str = "net",
    sep: str | None = None,
    names: list[str] | None = None,
    encoding: str = "auto",
    timezone: str | None = None,
    sheet: str | int | None = None,
    max_abs_amount: float | None = MAX_ABS_AMOUNT,
    cancel_window_days: float = CANCEL_WINDOW_DAYS,
    min_date=None,
    max_date=None,
) -> tuple[pd.DataFrame, LoadReport]:
    """Read a transaction log (CSV, gzipped CSV, Parquet or Excel .xlsx) into the canonical contract.

    See :class:`~churnml.config.DataConfig` for ``encoding``, ``sep``, ``timezone``, ``sheet``
    and ``max_abs_amount``, and :func:`prepare_transactions` for the order and return handling.
    """
    columns = columns or ColumnsConfig()
    usecols = [c for c in (columns.customer_id, columns.timestamp, columns.order_id) if c]
    if columns.quantity and columns.unit_price:
        usecols += [columns.quantity, columns.unit_price]
    elif columns.amount:
        usecols.append(columns.amount)
    table = _read(path, usecols=usecols, sep=sep, names=names, encoding=encoding, sheet=sheet, setting="data.transactions")
    tx, report = prepare_transactions(
        table.df,
        columns=columns,
        timestamp_format=timestamp_format,
        returns=returns,
        source=str(resolve_path(path)),
        first_line=table.first_line,
        timezone=timezone,
        max_abs_amount=max_abs_amount,
        line_label=table.line_label,
        cancel_window_days=cancel_window_days,
        min_date=min_date,
        max_date=max_date,
    )
    report.encoding = table.encoding
    report.notes[:0] = table.notes
    return tx, report


def cancelled_before(transactions: pd.DataFrame, at) -> np.ndarray:
    """Boolean mask of the rows cancelled strictly before ``at`` (``cancelled_at < at``).

    All False without a ``cancelled_at`` column. Times compare as wall times (a tz-aware column
    or ``at`` loses its zone), as in :func:`churnml.features.snapshot_features`.
    """
    if CANCELLED_AT not in transactions.columns:
        return np.zeros(len(transactions), dtype=bool)
    col = transactions[CANCELLED_AT]
    if not pd.api.types.is_datetime64_any_dtype(col.dtype):
        col = pd.to_datetime(col)
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        col = col.dt.tz_localize(None)
    at = pd.Timestamp(at)
    if at.tzinfo is not None:
        at = at.tz_localize(None)
    return (col < at).to_numpy(dtype=bool)  # NaT compares False: never cancelled


def active_rows(transactions: pd.DataFrame, at) -> pd.DataFrame:
    """The rows that still exist as known at ``at``: every row except those cancelled before it.

    A purchase cancelled before ``at`` never happened, and neither did its cancellation; one
    cancelled at or after ``at`` still counts (nobody could know at ``at``). Use it for anything
    measured at a point in time: features at a cutoff (rows before the cutoff, ``at=cutoff``),
    outcomes in a window ``[start, end)`` (rows in the window, ``at=end``). Returns
    ``transactions`` itself when nothing is cancelled before ``at``.
    """
    drop = cancelled_before(transactions, at)
    if not drop.any():
        return transactions
    return transactions.loc[~drop]


def purchases(transactions: pd.DataFrame, at=None) -> pd.DataFrame:
    """The purchase events of a canonical transactions table (return orders removed).

    With ``at``, purchases cancelled before ``at`` are removed too (the purchase rows of
    :func:`active_rows`): ``purchases(tx, at=cutoff)`` restricted to ``timestamp < cutoff`` is
    the set :func:`churnml.features.snapshot_features` counts; ``purchases(tx, at=end)``
    restricted to ``[start, end)`` the purchases made in an outcome window (one cancelled
    inside the window is no purchase). Without ``at`` no cancellation is applied.
    """
    keep = None
    if IS_RETURN in transactions.columns:
        keep = ~transactions[IS_RETURN].to_numpy(dtype=bool)
    if at is not None:
        active = ~cancelled_before(transactions, at)
        keep = active if keep is None else keep & active
    if keep is None:
        return transactions
    return transactions.loc[keep]


# --------------------------------------------------------------------------- side tables


def read_customers(
    path: str | Path,
    *,
    id_column: str = CUSTOMER_ID,
    sep: str | None = None,
    encoding: str = "auto",
    sheet: str | int | None = None,
) -> pd.DataFrame:
    """Read the static customer-attributes table, indexed by ``customer_id`` (str)."""
    return _read_customers(path, id_column=id_column, sep=sep, encoding=encoding, sheet=sheet)[0]


def _read_customers(path, *, id_column, sep=None, encoding="auto", sheet=None) -> tuple[pd.DataFrame, list[str]]:
    table = _read(path, sep=sep, encoding=encoding, sheet=sheet, setting="data.customers")
    raw, first_line = table.df, table.first_line
    source = str(resolve_path(path))
    _check_columns(source, list(raw.columns), [id_column])
    ids = normalise_ids(raw[id_column], source=source, column=id_column, df=raw, first_line=first_line,
                        label=table.line_label)
    dup = ids.duplicated(keep=False).to_numpy() & ids.notna().to_numpy()
    if dup.any():
        raise DataError(
            f"{source}: column {id_column!r} has duplicate customer ids: "
            + _examples(raw, dup, first_line, [id_column], table.line_label)
        )
    out = raw.drop(columns=[id_column]).copy()
    for col in out.columns:
        converted = pd.to_numeric(out[col], errors="coerce")
        if converted.notna().sum() == out[col].notna().sum():
            out[col] = converted
    out.index = pd.Index(ids.astype(str).to_numpy(), name=CUSTOMER_ID)
    return out, table.notes


def read_events(
    path: str | Path,
    *,
    columns: EventColumnsConfig | None = None,
    timestamp_format: str | None = None,
    sep: str | None = None,
    encoding: str = "auto",
    timezone: str | None = None,
    sheet: str | int | None = None,
    min_date=None,
    max_date=None,
) -> pd.DataFrame:
    """Read customer service events: ``customer_id, timestamp, type, value``.

    ``type`` is lower-cased and stripped (``"NPS "`` -> ``"nps"``); ``value`` is numeric or NaN
    (a ticket has no value; an NPS answer is 0-10, a CSAT answer 1-5 or 1-10). Timestamps follow
    the transactions' rules (naive UTC; ``timezone`` for values without an offset).
    """
    return _read_events(
        path, columns=columns, timestamp_format=timestamp_format, sep=sep, encoding=encoding, timezone=timezone, sheet=sheet,
        min_date=min_date, max_date=max_date,
    )[0]


def _read_events(
    path, *, columns=None, timestamp_format=None, sep=None, encoding="auto", timezone=None, sheet=None, min_date=None,
    max_date=None,
) -> tuple[pd.DataFrame, list[str]]:
    columns = columns or EventColumnsConfig()
    usecols = [columns.customer_id, columns.timestamp, columns.type] + ([columns.value] if columns.value else [])
    table = _read(path, usecols=usecols, sep=sep, encoding=encoding, sheet=sheet, setting="data.events")
    notes = list(table.notes)
    source = str(resolve_path(path))
    if table.df.empty:
        raise DataError(f"{source}: no rows (the file has a header but no data)")
    events = prepare_events(table.df, columns=columns, timestamp_format=timestamp_format, timezone=timezone, source=source,
                            first_line=table.first_line, line_label=table.line_label, notes=notes,
                            min_date=min_date, max_date=max_date)
    return events, notes


def prepare_events(
    raw: pd.DataFrame,
    *,
    columns: EventColumnsConfig | None = None,
    timestamp_format: str | None = None,
    timezone: str | None = None,
    source: str = "<DataFrame>",
    first_line: int = 0,
    line_label: str | None = None,
    notes: list[str] | None = None,
    min_date=None,
    max_date=None,
) -> pd.DataFrame:
    """Validate raw service events into ``customer_id, timestamp, type, value`` (the rules of
    :func:`read_events`; rows without a customer id are dropped); ``notes`` collects the
    timestamp notes. What :func:`read_events` and the MLflow model's input both use."""
    columns = columns or EventColumnsConfig()
    label = line_label
    cid = normalise_ids(raw[columns.customer_id], source=source, column=columns.customer_id, df=raw,
                        first_line=first_line, label=label)
    keep = (cid.notna() & (cid != "")).to_numpy()
    raw, cid = raw.loc[keep], cid[keep]
    ts = _parse_timestamps(
        raw[columns.timestamp], timestamp_format, source=source, column=columns.timestamp, df=raw,
        first_line=first_line, timezone=timezone, label=label, notes=notes, window=date_window(min_date, max_date),
    )
    out = pd.DataFrame(
        {
            CUSTOMER_ID: cid.astype(str).to_numpy(),
            TIMESTAMP: ts.to_numpy(),
            "type": raw[columns.type].astype("string").str.strip().str.lower().fillna("").astype(str).to_numpy(),
        }
    )
    if columns.value:
        values = raw[columns.value]
        if not pd.api.types.is_numeric_dtype(values):  # blank = no value
            values = values.astype("string").str.strip().replace("", pd.NA)
        num = pd.to_numeric(values, errors="coerce").astype("float64")
        bad = (num.isna() & values.notna()).to_numpy() | np.isinf(num.to_numpy())
        if bad.any():
            raise DataError(
                f"{source}: column {columns.value!r} has non-numeric or infinite values: "
                + _examples(raw, bad, first_line, [columns.value], label)
            )
        out["value"] = num.to_numpy()
    else:
        out["value"] = np.nan
    return out.sort_values([CUSTOMER_ID, TIMESTAMP], kind="stable").reset_index(drop=True)


def load_dataset(config: Config | DataConfig) -> Dataset:
    """Load transactions (and the optional customers and events tables) named in a config.

    The reading rules of ``config.data`` (encoding, separator, time zone, sheet, amount limit)
    apply to all three files; the notes about the side tables join ``report.notes``.
    """
    data = config.data if isinstance(config, Config) else config
    if not data.transactions:
        raise DataError("no transaction file: set data.transactions in the config or pass --transactions")
    tx, report = read_transactions(
        data.transactions,
        columns=data.columns,
        timestamp_format=data.timestamp_format,
        returns=data.returns,
        sep=data.sep,
        names=data.csv_names,
        encoding=data.encoding,
        timezone=data.timezone,
        sheet=data.sheet,
        max_abs_amount=data.max_abs_amount,
        cancel_window_days=data.cancel_window_days,
        min_date=getattr(data, "min_date", None),
        max_date=getattr(data, "max_date", None),
    )
    customers = None
    if data.customers:
        customers, notes = _read_customers(
            data.customers, id_column=data.customers_id_column or data.columns.customer_id, encoding=data.encoding,
            sheet=data.sheet,
        )
        report.notes += notes
    events = None
    if data.events:
        events, notes = _read_events(
            data.events, columns=data.event_columns, timestamp_format=data.timestamp_format, encoding=data.encoding,
            timezone=data.timezone, sheet=data.sheet, min_date=getattr(data, "min_date", None),
            max_date=getattr(data, "max_date", None),
        )
        report.notes += notes
    return Dataset(transactions=tx, report=report, customers=customers, events=events)


def parse_date(value, *, setting: str, window: tuple[pd.Timestamp, pd.Timestamp] | None = None) -> pd.Timestamp:
    """A date given as a setting (``--as-of``, ``--cutoff``) on the data's clock: naive UTC.

    ``YYYY-MM-DD`` (or any date and time pandas reads) is taken as it is; one with an offset or
    zone (``2024-01-01T00:00+02:00``, ``...Z``) is converted to UTC, as timestamps in the data
    are. Unreadable, empty, or outside 1677-09-22 .. 2262-04-11: :class:`DataError` naming
    ``setting``. With ``window`` (:func:`date_window`, the data's plausible dates
    ``data.min_date`` .. ``data.max_date``, end day inclusive), a date outside it is a
    :class:`DataError` naming ``setting`` and the window, the same window the log is checked against
    (the midnight closing its last day is inside: cutoffs and ``--as-of`` are exclusive).
    """
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError, OverflowError):
        ts = pd.NaT
    if pd.isna(ts):
        raise DataError(f"{setting} {value!r} is not a date (use YYYY-MM-DD)")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    if not _NS_MIN <= ts <= _NS_MAX:
        raise DataError(f"{setting} {value!r} is outside the supported date range 1677-09-22 .. 2262-04-11")
    if window is not None and not window[0] <= ts <= window[1] + pd.Timedelta(microseconds=1):
        shown = ts.date() if ts == ts.normalize() else ts
        raise DataError(f"{setting} {shown} is outside the plausible window {window[0].date()} .. {window[1].date()} "
                        "(data.min_date / data.max_date)")
    return ts.as_unit("ns")


def date_setting(value, setting: str, data=None) -> pd.Timestamp:
    """:func:`parse_date` checked against the plausible window of ``data`` (a :class:`DataConfig`:
    ``min_date`` / ``max_date``; ``None`` = the defaults, 1970-01-01 .. the run date + 1 day)."""
    window = date_window(getattr(data, "min_date", None), getattr(data, "max_date", None))
    return parse_date(value, setting=setting, window=window)


def report_json(report: LoadReport) -> str:
    """The load report as indented JSON."""
    return json.dumps(report.to_dict(), indent=2)
