"""Rollup tiers under faults, against the real influxd (issue 10, item 2: "same guarantees as the
raw path: nothing lost under kill -9 and 429/503 (a re-run repairs tiers too)").

A loopback proxy (tests/ingest/proxy.py) sits between the ingest and influxd. It refuses, with
429 or 503 and Retry-After, the requests of one step of the rollup: the writes to one tier bucket
`<bucket>_<tier>`, or one kind of Flux query the rollup makes of the raw bucket (points per day,
points per finest window, the raw points of the windows the file does not account for). Or it
holds the first request of a step and the test SIGKILLs the ingest while it waits: a kill at a
known point, with no sleeping. Every outcome is checked against an expectation computed
independently: the raw points the files hold (parsed here with pandas), and every field of every
tier row from those points (pandas group-bys, not gridts.tiers).

The throttled loads call the command line's entry point in this process (`python -m ingest` is
`sys.exit(main())`; its start is 2 s of imports); the killed loads are `python -m ingest` processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gridts.pending import MEASUREMENT
from ingest.cli import main as ingest_main
from ingest.generate import main as generate_main
from ingest.rollup import Influx, ensure_tier_buckets, refresh
from ingest.writer import Target
from tests.conftest import ROOT, InfluxServer
from tests.ingest.proxy import Request, Rule, running
from tests.ingest.test_load import flux
from tests.ingest.test_rollup import T0, TIERS, frequency, write_raw

SERIES = "f"
# Earlier data, 00:00:00Z-01:20:00Z (written by another tool, its tiers rolled up from raw), and
# the file under test, 01:07:30Z-02:30:00Z: they overlap for 12.5 minutes (the file's values
# win) and meet inside a minute, a quarter hour and an hour, so the rollup of the file reads
# the raw points of the windows it shares.
EARLIER = (T0, 4800)
FILE_START, FILE_END = "2021-05-01T03:07:30+02:00", "2021-05-01T04:30:00+02:00"
FIRST_FILE = ("2021-05-01T02:00:00+02:00", "2021-05-01T03:20:00+02:00")
STATUSES = (429, 503)
TIER_NAMES = tuple(t.text for t in TIERS)
# The fields of a tier point (ADR 0014), `count` first
FIELDS = ("count", "sum", "min", "max", "first", "last", "m2", "mean")


# --- expectations, computed here ---


def _seconds(instants: pd.Series) -> np.ndarray:
    return np.asarray(instants.dt.tz_convert("UTC").dt.as_unit("s").astype("int64"), np.int64)


def read_csv_points(path: Path) -> pd.Series:
    """The points of a generated operator file (`Sa. 01.05.21 03:07:31;49,977`, local time,
    labels at interval ends): values by start instant in seconds since the epoch (UTC)."""
    frame = pd.read_csv(path, sep=";", decimal=",", header=0, names=["when", "value"])
    local = pd.to_datetime(frame["when"].str.slice(4), format="%d.%m.%y %H:%M:%S")
    ends = local.dt.tz_localize("Europe/Zurich", ambiguous="infer")
    starts = _seconds(ends - pd.Timedelta(seconds=1))
    return pd.Series(frame["value"].to_numpy(np.float64), index=starts)


def combine(*layers: pd.Series) -> pd.Series:
    """Points of several writes in order: a later write's value replaces an earlier one's."""
    joined = pd.concat(layers)
    latest: pd.Series = joined[~joined.index.duplicated(keep="last")]
    return latest.sort_index()


def expected_tier(points: pd.Series, seconds: int) -> pd.DataFrame:
    """Every tier field of every window that holds points, by pandas group-bys."""
    values = pd.Series(points.to_numpy(), index=points.index.to_numpy())
    key = values.index - values.index % seconds
    groups = values.groupby(key)
    out = pd.DataFrame(
        {
            "count": groups.count(),
            "sum": groups.sum(),
            "min": groups.min(),
            "max": groups.max(),
            "first": groups.first(),
            "last": groups.last(),
            "mean": groups.mean(),
        }
    )
    deviation = values - groups.transform("mean")
    out["m2"] = (deviation**2).groupby(key).sum()
    out.index.name = "start"
    return out


# --- what InfluxDB holds ---


def stored_points(env: dict[str, str]) -> pd.Series:
    rows = flux(
        env,
        "from(bucket: bucket) |> range(start: 2021-01-01T00:00:00Z, stop: 2022-01-01T00:00:00Z)"
        ' |> filter(fn: (r) => r._measurement == m and r._field == "value")',
        m=SERIES,
    )
    assert {r.get("unit") for r in rows} <= {"Hz"}
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.Series([], dtype=np.float64)
    starts = _seconds(pd.to_datetime(frame["_time"], utc=True))
    return pd.Series(frame["_value"].astype(float).to_numpy(), index=starts).sort_index()


def stored_tier(env: dict[str, str], tier: str) -> pd.DataFrame:
    rows = flux(
        {**env, "INFLUX_BUCKET": f"{env['INFLUX_BUCKET']}_{tier}"},
        "from(bucket: bucket) |> range(start: 2021-01-01T00:00:00Z, stop: 2022-01-01T00:00:00Z)"
        " |> filter(fn: (r) => r._measurement == m)"
        ' |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")',
        m=SERIES,
    )
    if not rows:
        return pd.DataFrame(columns=list(FIELDS))
    frame = pd.DataFrame(rows)
    assert set(frame["unit"]) == {"Hz"}, tier
    fields = set(frame.columns) - {"", "result", "table", "_start", "_stop", "_time"}
    assert fields - {"_measurement", "unit"} == set(FIELDS), tier  # every field is checked
    frame.index = _seconds(pd.to_datetime(frame["_time"], utc=True))
    frame.index.name = "start"
    out = frame[["count"]].astype(np.int64)
    for name in FIELDS[1:]:
        out[name] = frame[name].astype(float)
    return out.sort_index()


def assert_exact(env: dict[str, str], want: pd.Series) -> None:
    """Raw: every point once, with its value. Tiers: every field of every row as computed here
    (count, min, max, first, last exactly; sum, mean and m2 to float rounding; the stored mean
    is the stored sum / count)."""
    got = stored_points(env)
    assert got.index.tolist() == want.index.tolist()
    assert got.tolist() == want.tolist()
    for tier in TIERS:
        expected = expected_tier(want, tier.seconds)
        rows = stored_tier(env, tier.text)
        assert rows.index.tolist() == expected.index.tolist(), tier.text
        for name in ("count", "min", "max", "first", "last"):
            assert rows[name].tolist() == expected[name].tolist(), (tier.text, name)
        for name in ("sum", "mean"):
            np.testing.assert_allclose(rows[name], expected[name], rtol=1e-12, err_msg=tier.text)
        assert (rows["mean"] == rows["sum"] / rows["count"]).all(), tier.text
        np.testing.assert_allclose(
            rows["m2"], expected["m2"], rtol=1e-9, atol=1e-12, err_msg=tier.text
        )


# --- fixtures and the command line ---


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("rollup-faults")
    out = {}
    for name, (start, end), seed in (
        ("file", (FILE_START, FILE_END), 2),
        ("first", FIRST_FILE, 1),
    ):
        out[name] = tmp / f"{name}.csv"
        argv = ["--start", start, "--end", end, "--step", "1s", "--kind", "measured",
                "--seed", str(seed), "--series", SERIES, "--out", str(out[name])]  # fmt: skip
        argv.append("--quiet")
        assert generate_main(argv) == 0
    return out


@pytest.fixture
def tiered(influx: InfluxServer, bucket: str) -> Iterator[Influx]:
    """The test's bucket with its tier buckets (dropped afterwards)."""
    api = Influx(Target(influx.url, influx.org, bucket, influx.token))
    ensure_tier_buckets(api, TIERS)
    yield api
    for tier in TIERS:
        found = api.api("GET", "/api/v2/buckets", "lookup", absent_ok=True,
                        params={"name": tier.bucket(bucket)})  # fmt: skip
        for b in (found or {}).get("buckets", []):
            api.api("DELETE", f"/api/v2/buckets/{b['id']}", "drop")
    api.close()


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def _flags(env: dict[str, str], url: str | None) -> list[str]:
    """The connection as options; the token joined to its option (`--token=-x`): a token may
    start with `-` (secrets.token_urlsafe does, once in 64)."""
    return [
        "--url", url or env["INFLUX_URL"], "--org", env["INFLUX_ORG"],
        "--bucket", env["INFLUX_BUCKET"], f"--token={env['INFLUX_TOKEN']}", "--tiers", "1m,15m,1h",
    ]  # fmt: skip


def load_argv(env: dict[str, str], *paths: Path, url: str | None = None) -> list[str]:
    return ["load", *map(str, paths), "--label", "end", "--quiet", *_flags(env, url)]


def load(
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    *paths: Path,
    url: str | None = None,
    extra: tuple[str, ...] = (),
) -> tuple[int, str]:
    """`python -m ingest load` in this process (the command line's own entry point; the process
    start is 2 s of imports): its exit status and stderr."""
    capsys.readouterr()
    status = ingest_main([*load_argv(env, *paths, url=url), *extra])
    return status, capsys.readouterr().err


def rollup_command(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], start: str, end: str
) -> tuple[int, str]:
    capsys.readouterr()
    status = ingest_main(["rollup", "--start", start, "--end", end, "--quiet", *_flags(env, None)])
    return status, capsys.readouterr().err


def earlier_data(api: Influx) -> pd.Series:
    """Points another tool wrote before the file, with their tiers rolled up from raw."""
    times, values = frequency(EARLIER[1], seed=7, start=EARLIER[0])
    write_raw(api, SERIES, times, values)
    refresh(api, TIERS, SERIES, int(times[0]), int(times[-1]))
    return pd.Series(values, index=times)


# --- which requests a rule refuses ---


def tier_write(bucket: str, tier: str) -> Callable[[Request], bool]:
    """Tier points written to one tier bucket (not the load's pending-rollup markers)."""
    return lambda r: r.kind == "write" and r.bucket == f"{bucket}_{tier}" and not is_marker_write(r)


def is_marker_write(r: Request) -> bool:
    return r.kind == "write" and r.body.startswith(MEASUREMENT.encode())


def rollup_query(bucket: str, what: str) -> Callable[[Request], bool]:
    """The rollup's Flux queries of the raw bucket (the existing-points check passes the bucket as
    a parameter, so it never matches): `days` counts points per day, `windows` per finest window,
    `points` reads the points of the windows the file does not account for."""
    window = {"days": ("86400s", "count"), "windows": ("60s", "count"), "points": None}[what]
    return lambda r: (
        r.kind == "query" and f'from(bucket: "{bucket}")' in r.flux and r.window == window
    )


def tier_lookup(bucket: str, tier: str) -> Callable[[Request], bool]:
    """The load lists the buckets (which tier buckets exist) before it writes anything."""
    return lambda r: r.path == "/api/v2/buckets" and r.method == "GET"


TARGETS = [
    *(("write", t) for t in TIER_NAMES),
    *(("query", q) for q in ("days", "windows", "points")),
    ("lookup", "15m"),
]


def target(bucket: str, kind: str, which: str) -> Callable[[Request], bool]:
    make = {"write": tier_write, "query": rollup_query, "lookup": tier_lookup}[kind]
    return make(bucket, which)


def _id(value: object) -> str:
    return "-".join(map(str, value)) if isinstance(value, tuple) else str(value)


# --- 1. 429 and 503 during the rollup ---


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("step", TARGETS, ids=_id)
def test_throttled_rollup_step_retries_and_the_tiers_are_exact(
    capsys: pytest.CaptureFixture[str],
    tiered: Influx,
    influx: InfluxServer,
    influx_env: dict[str, str],
    files: dict[str, Path],
    step: tuple[str, str],
    status: int,
) -> None:
    before = earlier_data(tiered)
    rule = Rule(target(tiered.target.bucket, *step), status=status, times=1)
    with running(influx.url, rule) as proxy:
        code, err = load(capsys, influx_env, files["file"], url=proxy.url)
    assert code == 0, err
    assert rule.refused == 1, (step, proxy.seen)  # the step did meet the throttle
    assert_exact(influx_env, combine(before, read_csv_points(files["file"])))
    # the operator sees why the run waited, as for the raw writes
    assert f"ingest: warning: InfluxDB answered {status} to the " in err, err
    assert "retrying in" in err


@pytest.mark.parametrize(
    ("step", "status"), [(("write", "15m"), 429), (("query", "windows"), 503)], ids=_id
)
def test_the_rollup_waits_as_long_as_retry_after_asks(
    capsys: pytest.CaptureFixture[str],
    tiered: Influx,
    influx: InfluxServer,
    influx_env: dict[str, str],
    files: dict[str, Path],
    step: tuple[str, str],
    status: int,
) -> None:
    """A rate limiter refuses everything for the Retry-After it names, and a client that comes
    back earlier is refused again. With one retry, the raw writes get through such a throttle
    (they wait at least Retry-After); so must the rollup."""
    before = earlier_data(tiered)
    rule = Rule(
        target(tiered.target.bucket, *step), status=status, times=1, retry_after=1.0, window=True
    )
    with running(influx.url, rule) as proxy:
        code, err = load(capsys, influx_env, files["file"], url=proxy.url, extra=("--retries", "1"))
    assert code == 0, err
    assert rule.refused == 1, proxy.seen
    assert_exact(influx_env, combine(before, read_csv_points(files["file"])))


EXHAUSTED = [
    (("write", "1m"), 429, "load"),
    (("write", "15m"), 503, "rollup"),
    (("write", "1h"), 429, "rollup"),
    (("query", "days"), 503, "load"),
    (("query", "windows"), 429, "rollup"),
    (("query", "points"), 503, "load"),
]


@pytest.mark.parametrize(("step", "status", "repair"), EXHAUSTED, ids=_id)
def test_throttling_that_never_ends_fails_the_load_naming_the_tier_step_and_a_rerun_repairs(
    capsys: pytest.CaptureFixture[str],
    tiered: Influx,
    influx: InfluxServer,
    influx_env: dict[str, str],
    files: dict[str, Path],
    step: tuple[str, str],
    status: int,
    repair: str,
) -> None:
    bucket = tiered.target.bucket
    before = earlier_data(tiered)
    want = combine(before, read_csv_points(files["file"]))
    rule = Rule(target(bucket, *step), status=status)  # every time
    with running(influx.url, rule) as proxy:
        code, err = load(capsys, influx_env, files["file"], url=proxy.url, extra=("--retries", "1"))
    assert code == 1, err
    assert rule.refused == 2, proxy.seen  # the request and its one retry
    what = (
        f"tier write to {bucket}_{step[1]}" if step[0] == "write" else f"rollup query of {bucket}"
    )
    head = "ingest: error: raw points written, rollup tiers not refreshed: "
    assert f"{head}InfluxDB answered {status} to the {what}" in err, err
    assert "(gave up after 2 attempts); run the same load again" in err
    # every raw point is stored; the tiers are not (yet) what they must be
    assert stored_points(influx_env).equals(want)
    with pytest.raises(AssertionError):
        assert_exact(influx_env, want)
    if repair == "load":
        code, err = load(capsys, influx_env, files["file"])
    else:
        code, err = rollup_command(
            capsys, influx_env, "2021-05-01T00:00:00Z", "2021-05-02T00:00:00Z"
        )
    assert code == 0, err
    assert_exact(influx_env, want)


# --- 2. kill -9 between the raw and the tier writes, and between tiers ---

# Where the held request stops the load: the rollup's first query (every raw write done, no tier
# written), the first write of each tier (the finer tiers written, this one and the coarser not).
KILL_POINTS = [("query", "days"), ("write", "1m"), ("write", "15m"), ("write", "1h")]


def killed_at(env: dict[str, str], path: Path, proxy_url: str, rule: Rule) -> None:
    """Start `python -m ingest load` through the proxy, wait until the rule holds its request,
    SIGKILL the process there."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest", *load_argv(env, path, url=proxy_url)],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        while not rule.held.wait(0.05):
            if proc.poll() is not None:
                _, err = proc.communicate()
                pytest.fail(f"the load ended ({proc.returncode}) before the held request: {err}")
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def tiers_written_before(point: tuple[str, str]) -> int:
    return TIER_NAMES.index(point[1]) if point[0] == "write" else 0


@pytest.mark.parametrize("point", KILL_POINTS, ids=_id)
def test_kill_9_before_or_between_tier_writes_then_the_same_load_repairs(
    capsys: pytest.CaptureFixture[str],
    tiered: Influx,
    influx: InfluxServer,
    influx_env: dict[str, str],
    files: dict[str, Path],
    point: tuple[str, str],
) -> None:
    want = read_csv_points(files["file"])
    rule = Rule(target(tiered.target.bucket, *point), hold=True)
    with running(influx.url, rule) as proxy:
        killed_at(influx_env, files["file"], proxy.url, rule)
    # where the kill landed: every raw point stored; the tiers before the held step, none after
    assert stored_points(influx_env).equals(want)
    done = tiers_written_before(point)
    for i, tier in enumerate(TIERS):
        rows = stored_tier(influx_env, tier.text)
        expected = expected_tier(want, tier.seconds)
        assert len(rows) == (len(expected) if i < done else 0), tier.text
    code, err = load(capsys, influx_env, files["file"])
    assert code == 0, err
    assert_exact(influx_env, want)


@pytest.fixture(scope="module")
def both_at_once(influx: InfluxServer, files: dict[str, Path]) -> Iterator[dict[str, pd.DataFrame]]:
    """The tiers of one load of the first file and the overlapping second, in a bucket of their
    own."""
    name = "test_rollup_faults_both"
    env = {**influx.env(), "INFLUX_BUCKET": name}
    api = Influx(Target(influx.url, influx.org, name, influx.token))
    orgs = api.api("GET", "/api/v2/orgs", "org lookup", params={"org": influx.org})
    body = {"orgID": orgs["orgs"][0]["id"], "name": name, "retentionRules": []}
    made = api.api("POST", "/api/v2/buckets", "bucket create", json=body)
    ensure_tier_buckets(api, TIERS)
    try:
        assert ingest_main(load_argv(env, files["first"], files["file"])) == 0
        yield {t.text: stored_tier(env, t.text) for t in TIERS}
    finally:
        for tier in TIERS:
            found = api.api("GET", "/api/v2/buckets", "lookup", absent_ok=True,
                            params={"name": tier.bucket(name)})  # fmt: skip
            for b in (found or {}).get("buckets", []):
                api.api("DELETE", f"/api/v2/buckets/{b['id']}", "drop")
        api.api("DELETE", f"/api/v2/buckets/{made['id']}", "drop")
        api.close()


@pytest.mark.parametrize("point", KILL_POINTS[2:], ids=_id)
def test_an_overlapping_file_killed_mid_tier_then_rerun_gives_the_tiers_of_one_load_of_both(
    capsys: pytest.CaptureFixture[str],
    tiered: Influx,
    influx: InfluxServer,
    influx_env: dict[str, str],
    files: dict[str, Path],
    both_at_once: dict[str, pd.DataFrame],
    point: tuple[str, str],
) -> None:
    code, err = load(capsys, influx_env, files["first"])
    assert code == 0, err
    rule = Rule(target(tiered.target.bucket, *point), hold=True)
    with running(influx.url, rule) as proxy:
        killed_at(influx_env, files["file"], proxy.url, rule)
    want = combine(read_csv_points(files["first"]), read_csv_points(files["file"]))
    assert stored_points(influx_env).equals(want)
    # the kill left the held tier stale: it still holds the first file's values
    stale = stored_tier(influx_env, point[1])
    assert not stale.equals(both_at_once[point[1]])
    code, err = load(capsys, influx_env, files["file"])
    assert code == 0, err
    assert_exact(influx_env, want)
    for tier in TIER_NAMES:
        rows, ref = stored_tier(influx_env, tier), both_at_once[tier]
        assert rows.index.tolist() == ref.index.tolist(), tier
        for name in ("count", "min", "max", "first", "last"):
            assert rows[name].tolist() == ref[name].tolist(), (tier, name)
        for name in ("sum", "mean", "m2"):
            np.testing.assert_allclose(rows[name], ref[name], rtol=1e-12, atol=1e-12)
