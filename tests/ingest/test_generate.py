"""The frequency-file generator: the operator's dialect, DST, determinism, time-correction days."""

from __future__ import annotations

import gzip
import itertools
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingest import generate

ZURICH = ZoneInfo("Europe/Zurich")
ROW = re.compile(r"^(Mo|Di|Mi|Do|Fr|Sa|So)\. (\d\d)\.(\d\d)\.(\d\d) (\d\d):(\d\d):(\d\d)$")
VALUE = re.compile(r"^\d{2}(,\d{0,2}[1-9])?$")  # decimal comma, at most 3 decimals, no trailing 0


def lines(path: Path) -> list[str]:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return raw.decode().split("\n")[:-1]


def rows(path: Path) -> list[tuple[str, list[str]]]:
    """(label, values) per data row."""
    out = []
    for line in lines(path)[1:]:
        label, *values = line.split(";")
        out.append((label, values))
    return out


def wall(label: str) -> datetime:
    m = ROW.match(label)
    assert m, label
    d, mo, y, h, mi, s = (int(g) for g in m.groups()[1:])
    return datetime(2000 + y, mo, d, h, mi, s)


def instants(labels: list[str]) -> list[datetime]:
    """UTC instants of wall-clock labels, a repeated wall time taken as the winter pass."""
    seen: set[datetime] = set()
    out = []
    for label in labels:
        w = wall(label)
        fold = 1 if w in seen else 0
        seen.add(w)
        out.append(w.replace(tzinfo=ZURICH, fold=fold).astimezone(UTC))
    return out


def test_header_and_first_rows_match_the_operator_file(tmp_path: Path) -> None:
    path = tmp_path / "Sollfrequenz.csv"
    n = generate.write_frequency_file(path, "2021-05-01", "2021-07-01", "30s")
    assert n == 61 * 2880
    text = lines(path)
    assert text[0] == "Datum Zeit;A:f_soll_aktiv [Hz]"
    assert text[1].startswith("Sa. 01.05.21 00:00:30;")
    assert text[2].startswith("Sa. 01.05.21 00:01:00;")
    assert text[-1].startswith("Do. 01.07.21 00:00:00;")
    assert len(text) == n + 1
    assert b"\r" not in path.read_bytes()


def test_crlf_and_wide_header(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    names = ["f_a", "f_b", "f_c"]
    n = generate.write_frequency_file(
        path, "2021-05-01", "2021-05-02", "15m", series=names, crlf=True
    )
    raw = path.read_bytes()
    assert n == 96
    assert raw.count(b"\r\n") == raw.count(b"\n") == 97
    assert raw.split(b"\r\n")[0] == b"Datum Zeit;A:f_a [Hz];A:f_b [Hz];A:f_c [Hz]"
    assert all(len(v) == 3 for _, v in rows_crlf(path))


def rows_crlf(path: Path) -> list[tuple[str, list[str]]]:
    out = []
    for line in path.read_bytes().decode().split("\r\n")[1:-1]:
        label, *values = line.split(";")
        out.append((label, values))
    return out


def test_spring_change_skips_the_missing_hour(tmp_path: Path) -> None:
    path = tmp_path / "spring.csv"
    n = generate.write_frequency_file(path, "2021-03-27", "2021-03-29", "30s")
    assert n == 47 * 120  # two local days, one of them 23 h long
    labels = [label for label, _ in rows(path)]
    assert len(labels) == n
    assert len(set(labels)) == n
    day = [lb[4:] for lb in labels if lb[4:12] == "28.03.21"]
    assert not [lb for lb in day if lb[9:11] == "02"]
    i = labels.index("So. 28.03.21 01:59:30")
    assert labels[i + 1] == "So. 28.03.21 03:00:00"
    assert labels[-1] == "Mo. 29.03.21 00:00:00"
    _assert_evenly_spaced(labels, 30)


def test_autumn_change_repeats_the_hour_in_order(tmp_path: Path) -> None:
    path = tmp_path / "autumn.csv"
    n = generate.write_frequency_file(path, "2021-10-30", "2021-11-01", "30s")
    assert n == 49 * 120  # two local days, one of them 25 h long
    labels = [label for label, _ in rows(path)]
    counts = Counter(labels)
    repeated = sorted(lb for lb, c in counts.items() if c > 1)
    assert all(c <= 2 for c in counts.values())
    expected = [f"So. 31.10.21 02:{m:02d}:{s:02d}" for m in range(60) for s in (0, 30)]
    assert repeated == expected
    assert counts["So. 31.10.21 03:00:00"] == 1
    assert counts["So. 31.10.21 01:59:30"] == 1
    # summer pass first, then winter pass: 02:59:30 (CEST) is followed by 02:00:00 (CET)
    first = labels.index("So. 31.10.21 02:00:00")
    assert labels[first + 119] == "So. 31.10.21 02:59:30"
    assert labels[first + 120] == "So. 31.10.21 02:00:00"
    assert labels[first + 240] == "So. 31.10.21 03:00:00"
    _assert_evenly_spaced(labels, 30)


def test_whole_year_row_count_and_spacing(tmp_path: Path) -> None:
    path = tmp_path / "year.csv"
    n = generate.write_frequency_file(path, "2021-01-01", "2022-01-01", "15m")
    assert n == 365 * 96
    labels = [label for label, _ in rows(path)]
    assert labels[0] == "Fr. 01.01.21 00:15:00"
    assert labels[-1] == "Sa. 01.01.22 00:00:00"
    _assert_evenly_spaced(labels, 900)


def _assert_evenly_spaced(labels: list[str], step: int) -> None:
    times = instants(labels)
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(times)}
    assert gaps == {step}


def test_weekday_abbreviations_match_the_date(tmp_path: Path) -> None:
    path = tmp_path / "weeks.csv"
    generate.write_frequency_file(path, "2021-12-20", "2022-01-10", "15m")
    names = ["Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"]
    seen = set()
    for label, _ in rows(path):
        w = wall(label)
        assert label[:2] == names[w.weekday()], label
        seen.add(label[:2])
    assert seen == set(names)
    assert any(lb.startswith("Fr. 31.12.21 ") for lb, _ in rows(path))
    assert any(lb.startswith("Sa. 01.01.22 ") for lb, _ in rows(path))


def test_label_start_marks_the_interval_start(tmp_path: Path) -> None:
    path = tmp_path / "start.csv"
    n = generate.write_frequency_file(path, "2021-05-01", "2021-05-02", "1m", label="start")
    labels = [label for label, _ in rows(path)]
    assert n == 1440
    assert labels[0] == "Sa. 01.05.21 00:00:00"
    assert labels[-1] == "Sa. 01.05.21 23:59:00"


def test_deterministic_by_seed_and_independent_of_chunking(tmp_path: Path) -> None:
    def make(name: str, seed: int, chunk_rows: int | None = None) -> bytes:
        path = tmp_path / name
        generate.write_frequency_file(
            path,
            "2021-10-30",
            "2021-11-02",
            "1m",
            kind="measured",
            seed=seed,
            chunk_rows=chunk_rows,
        )
        return path.read_bytes()

    a = make("a.csv", 7)
    assert make("b.csv", 7) == a
    assert make("c.csv", 7, chunk_rows=1000) == a
    assert make("d.csv", 8) != a


def test_time_correction_days_are_whole_local_days(tmp_path: Path) -> None:
    path = tmp_path / "target.csv"
    generate.write_frequency_file(path, "2021-03-01", "2021-11-01", "15m", seed=3)
    data = rows(path)
    by_day: dict[str, set[str]] = {}
    for (_, values), t in zip(data, instants([lb for lb, _ in data]), strict=True):
        # a row belongs to the local day in which its interval starts
        day = (t - timedelta(minutes=15)).astimezone(ZURICH).date().isoformat()
        by_day.setdefault(day, set()).add(values[0])
    assert len(by_day) == 245
    assert all(len(v) == 1 for v in by_day.values()), {
        d: v for d, v in by_day.items() if len(v) > 1
    }
    per_value = Counter(next(iter(v)) for v in by_day.values())
    assert set(per_value) == {"50", "49,99", "50,01"}
    assert per_value["50"] > per_value["49,99"] > 0
    assert per_value["50"] > per_value["50,01"] > 0
    # the 00:00:00 row closes the previous day and carries its value
    assert data[95][0] == "Di. 02.03.21 00:00:00"
    assert data[95][1] == data[0][1]


def test_measured_values_follow_the_target_with_small_noise(tmp_path: Path) -> None:
    target, measured = tmp_path / "t.csv", tmp_path / "m.csv"
    kinds: list[tuple[Path, generate.Kind]] = [(target, "target"), (measured, "measured")]
    for path, kind in kinds:
        generate.write_frequency_file(path, "2021-05-01", "2021-05-08", "1m", kind=kind)
    diffs = []
    for (lt, vt), (lm, vm) in zip(rows(target), rows(measured), strict=True):
        assert lt == lm
        assert VALUE.match(vm[0]), vm[0]
        diffs.append(float(vm[0].replace(",", ".")) - float(vt[0].replace(",", ".")))
    assert max(abs(d) for d in diffs) < 0.2
    assert len({round(d, 3) for d in diffs}) > 20
    assert any("," in v[0] and len(v[0].split(",")[1]) == 3 for _, v in rows(measured))


def test_a_series_has_the_same_values_alone_and_in_a_wide_file(tmp_path: Path) -> None:
    rc = generate.main(
        ["--start", "2021-05-01", "--end", "2021-06-01", "--step", "15m", "--series-count", "3",
         "--kind", "measured", "--out", str(tmp_path / "split"), "--quiet"]
    )  # fmt: skip
    assert rc == 0
    rc = generate.main(
        ["--start", "2021-05-01", "--end", "2021-06-01", "--step", "15m", "--series-count", "3",
         "--kind", "measured", "--wide", "--out", str(tmp_path / "wide.csv"), "--quiet"]
    )  # fmt: skip
    assert rc == 0
    names = sorted(p.name for p in (tmp_path / "split").iterdir())
    assert names == ["f_ist_1.csv", "f_ist_2.csv", "f_ist_3.csv"]
    wide = rows(tmp_path / "wide.csv")
    for j, name in enumerate(names):
        alone = rows(tmp_path / "split" / name)
        assert lines(tmp_path / "split" / name)[0] == f"Datum Zeit;A:{name[:-4]} [Hz]"
        assert [(lb, v[0]) for lb, v in alone] == [(lb, v[j]) for lb, v in wide]
    assert [v[0] for _, v in wide] != [v[1] for _, v in wide]


def test_cli_gzip_and_names(tmp_path: Path) -> None:
    out = tmp_path / "f.csv.gz"
    rc = generate.main(
        ["--start", "2021-05-01T00:00:00+02:00", "--end", "2021-05-01T01:00:00+02:00",
         "--step", "1s", "--series", "grid_f", "--crlf", "--out", str(out), "--quiet"]
    )  # fmt: skip
    assert rc == 0
    raw = gzip.decompress(out.read_bytes())
    assert raw.startswith(b"Datum Zeit;A:grid_f [Hz]\r\nSa. 01.05.21 00:00:01;")
    assert raw.count(b"\r\n") == 3601


@pytest.mark.parametrize(
    "args",
    [
        ["--step", "0s"],
        ["--step", "16m"],
        ["--step", "1x"],
        ["--start", "2021-05-02"],  # end before start
        ["--start", "2021-10-31T02:30:00"],  # ambiguous local time
        ["--start", "2021-03-28T02:30:00"],  # nonexistent local time
        ["--tz", "Mars/Olympus"],
        ["--series", "a,b", "--series-count", "3"],
    ],
)
def test_bad_arguments_exit_2(tmp_path: Path, args: list[str]) -> None:
    base = {"--start": "2021-05-01", "--end": "2021-05-02", "--step": "30s"}
    for k, v in zip(args[::2], args[1::2], strict=True):
        base[k] = v
    argv = [x for kv in base.items() for x in kv] + ["--out", str(tmp_path / "x.csv"), "--quiet"]
    assert generate.main(argv) == 2


def test_help_exits_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        generate.main(["--help"])
    assert exc.value.code == 0
    assert "--series-count" in capsys.readouterr().out


def test_parse_step_grammar() -> None:
    assert [generate.parse_step(s) for s in ("1s", "30s", "1m", "15m")] == [1, 30, 60, 900]
    with pytest.raises(ValueError, match="invalid duration"):
        generate.parse_step("15min")
    with pytest.raises(ValueError, match="between 1s and 15m"):
        generate.parse_step("1h")
    assert generate.parse_step(timedelta(minutes=5)) == 300
