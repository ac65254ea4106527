"""Recognise an export's dialect from its first lines: separator, header rows, series names and
units, timestamp layout and decimal mark.

Formats: ``swissgrid`` (a time column and one value column, names and units in one or more
header rows), ``wide`` (a time column and several value columns), ``long`` (rows of series name,
time, value; the rows of each series are grouped and then parsed like a swissgrid file).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gridts.names import MAX_LENGTH, RULE
from gridts.names import SERIES_NAME as SERIES_NAME  # the CLI checks --series with it
from ingest.timelayout import Layout, sniff_layout


class DialectError(ValueError):
    """The file is not in a dialect this ingest reads; the message names the problem."""


@dataclass(frozen=True)
class Column:
    series: str
    unit: str | None


@dataclass(frozen=True)
class Dialect:
    separator: str
    decimal: str
    header_rows: int
    layout: Layout
    columns: tuple[Column, ...]
    format: str

    @property
    def value_columns(self) -> int:
        return len(self.columns)


# "A:f_soll_aktiv [Hz]", "f_soll_aktiv [Hz]", "Power (MW)"
_NAME_UNIT = re.compile(
    r"^(?:[A-Z]{1,3}:)?\s*(?P<name>[^\[\]()]*?)\s*[\[(](?P<unit>[^\])]+)[\])]\s*$"
)
KNOWN_UNITS = {
    "hz", "mhz", "w", "kw", "mw", "gw", "wh", "kwh", "mwh", "gwh", "var", "kvar", "mvar",
    "v", "kv", "a", "ka", "%", "°c", "eur", "chf", "eur/mwh", "chf/mwh",
}  # fmt: skip


def slug(text: str) -> str:
    """A measurement-safe name: lower case, runs of other characters as one underscore."""
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")[:MAX_LENGTH]


def _split(line: str, sep: str) -> list[str]:
    return [cell.strip().strip('"').strip() for cell in line.split(sep)]


# what bytes.strip() removes: the parser's notion of a blank line, kept identical here
BLANK = " \t\n\r\x0b\x0c"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffd]")


def _header_like(line: str, sep: str) -> bool:
    first = line.split(sep, 1)[0]
    return not _CONTROL.search(line.rstrip("\r")) and sum(c.isdigit() for c in first) < 4


def _column_meta(cells: list[str]) -> tuple[str | None, str | None]:
    """Series name and unit from one value column's header cells (top row first)."""
    name: str | None = None
    unit: str | None = None
    for cell in cells:
        if not cell:
            continue
        m = _NAME_UNIT.match(cell)
        if m:
            unit = m.group("unit").strip() or unit
            if m.group("name"):
                name = m.group("name")
        elif cell.lower() in KNOWN_UNITS:
            unit = cell
        elif name is None:
            name = cell
    if name is not None:
        name = name if SERIES_NAME.match(name) else slug(name)
    return name or None, unit


def sniff(
    head: str,
    *,
    series: str | None = None,
    fmt: str = "auto",
) -> Dialect:
    """The dialect of a file whose first lines (decoded) are ``head``."""
    # split on LF only: str.splitlines() would also split on \v, \f, \x1c.. and miscount rows
    lines = [ln.rstrip("\r") for ln in head.split("\n")][:200]
    if not any(ln.strip(BLANK) for ln in lines):
        raise DialectError("the file is empty")
    sep, data_start, long = _first_data_row(lines)
    if long or fmt == "long":
        return _long_dialect(lines, sep, data_start, series, fmt)
    if sep is None or data_start is None:
        raise DialectError(
            "no data row found: expected a timestamp (e.g. 'Sa. 01.05.21 00:00:30', "
            "'01.01.2019 00:15' or ISO 8601) then ';', tab or ',' and a value"
        )
    first_cells = _split(lines[data_start], sep)
    layout = sniff_layout(first_cells[0])
    assert layout is not None
    n_values = len(first_cells) - 1
    if n_values < 1:
        raise DialectError("data rows have a timestamp but no value column")
    data_start = _header_end(lines, data_start, sep)
    headers = [_split(ln, sep) for ln in lines[:data_start] if ln.strip(BLANK)]
    columns = _columns(headers, n_values, series)
    detected = "swissgrid" if n_values == 1 else "wide"
    if fmt not in ("auto", detected):
        raise DialectError(f"--format {fmt} given, but the file looks {detected}")
    # With ';' or tab between fields a comma in a value can only be a decimal comma (thousands
    # separators are not read), and a point stays a decimal point: both are accepted. The first
    # lines may not show it (a frequency file can open with hours of plain "50").
    return Dialect(
        separator=sep,
        decimal="," if sep != "," else ".",
        header_rows=data_start,
        layout=layout,
        columns=tuple(columns),
        format=detected,
    )


def _first_data_row(lines: list[str]) -> tuple[str | None, int | None, bool]:
    """The separator and index of the first line that reads as a data row, and whether it is a
    long file's row (series, time, value); None, None, False when there is none."""
    for i, line in enumerate(lines):
        if not line.strip(BLANK):
            continue
        for cand in (";", "\t", ","):
            cells = [c.strip().strip('"') for c in line.split(cand)]
            if len(cells) < 2:
                continue
            if sniff_layout(cells[0]) is not None:
                return cand, i, False
            if len(cells) == 3 and SERIES_NAME.match(cells[0]) and sniff_layout(cells[1]):
                return cand, i, True
    return None, None, False


def _header_end(lines: list[str], data_start: int, sep: str) -> int:
    """Lines above the first good row are header rows only if they read like headers: a line of
    garbage or a row with a date-like first cell is data, so that the parser rejects it with
    its line number instead of it vanishing as a "header"."""
    for i, line in enumerate(lines[:data_start]):
        if line.strip(BLANK) and not _header_like(line, sep):
            return i
    return data_start


def _columns(headers: list[list[str]], n_values: int, series: str | None) -> list[Column]:
    """The value columns' series and units from the header rows (or ``--series``), checked."""
    columns: list[Column] = []
    for j in range(1, n_values + 1):
        name, unit = _column_meta([row[j] if j < len(row) else "" for row in headers])
        if unit is not None and unit.endswith("\\"):
            raise DialectError(
                f"the unit {unit!r} of column {j + 1} ends with a backslash, which InfluxDB's "
                "line protocol cannot store"
            )
        columns.append(Column(series=name or "", unit=unit))
    if series is not None:
        if n_values != 1:
            raise DialectError(f"--series names one series but the file has {n_values} columns")
        if not SERIES_NAME.match(series):
            raise DialectError(f"invalid series name {series!r}: {RULE}")
        columns = [Column(series=series, unit=columns[0].unit)]
    missing = [j for j, c in enumerate(columns, start=2) if not c.series]
    if missing:
        raise DialectError(
            f"no series name in the header for column {missing[0]}: pass --series NAME"
        )
    names = [c.series for c in columns]
    if len(set(names)) != len(names):
        raise DialectError(f"the header names a series twice: {names}")
    return columns


def _long_dialect(
    lines: list[str], sep: str | None, data_start: int | None, series: str | None, fmt: str
) -> Dialect:
    """Rows of ``series, time, value``: the series is named in each row, no unit."""
    if sep is None or data_start is None:
        raise DialectError(
            "no data row found: a long file has rows of series name, timestamp, value"
        )
    if fmt not in ("auto", "long"):
        raise DialectError(f"--format {fmt} given, but the file looks long (series, time, value)")
    if series is not None:
        raise DialectError("--series does not go with a long file: its rows name their series")
    layout = sniff_layout(lines[data_start].split(sep)[1].strip().strip('"'))
    if layout is None:
        raise DialectError("a long file's second column must be a timestamp")
    for i, line in enumerate(lines[:data_start]):
        if line.strip(BLANK) and sum(c.isdigit() for c in line) >= 4:
            data_start = i  # a date-like line above the first good row is a (bad) row
            break
    return Dialect(
        separator=sep,
        decimal="," if sep != "," else ".",
        header_rows=data_start,
        layout=layout,
        columns=(Column(series="", unit=None),),
        format="long",
    )
