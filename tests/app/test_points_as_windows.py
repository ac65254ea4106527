"""Windows of a series' own spacing read as its raw points (``Store._points_as_windows``): the
answer equals Flux's windows whenever the path is taken, and the path is left to Flux whenever
the points are not the windows (off the window starts, several tag sets, denser than their
spacing said)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS

from app import store as store_module
from tests.app.conftest import AppClient, make_settings, sent_queries
from tests.conftest import InfluxServer

T0 = 1619827200  # 2021-05-01T00:00:00Z
HOURS = 6
DAY = 86400
T2 = T0 - T0 % (2 * DAY)  # a multiple of two days past the epoch: 2021-04-30


def _lines(name: str, instants: list[int], tags: str = "") -> list[str]:
    return [f"{name}{tags},unit=Hz value={50 + (t % 997) / 1000!r} {t}" for t in instants]


def _integers() -> list[str]:
    """An integer field a minute apart, one value past 2**53 (not a float's)."""
    values = [7, -3, 2**53 + 1, -(2**53) - 1, 12, 0]
    return [f"integers,unit=n value={v}i {T0 + 60 * k}" for k, v in enumerate(values)]


# Values whose texts InfluxDB (Go's shortest `f` form) and Python (``repr``) write differently,
# by the series that holds them: whole numbers and small magnitudes (every aggregate reads them
# as windows), and a few both write alike; whole numbers of more than 15 digits, whose texts
# could be an integer field's (a mean or median of them is not read as windows); negative zero
# (Flux's sum and mean of `-0` are `0`: neither is read as windows).
FORMS = {
    "forms": [50.0, 1e-07, -2.5e-05, 0.0, 123456789012345.0, 0.1, 3e-300, -7.0, 2.5],
    "big_forms": [1.5e16, 1e21, -1e300, 50.0],
    "negative_zero": [1.0, -0.0, 2.5],
}
NOT_AS_WINDOWS = {"big_forms": ("mean", "median"), "negative_zero": ("sum", "mean")}


def _forms() -> list[str]:
    """``FORMS``, each series' values 30 s apart on the window starts."""
    return [
        f"{name},unit=Hz value={v!r} {T0 + 30 * k}"
        for name, values in FORMS.items()
        for k, v in enumerate(values)
    ]


def _dataset() -> list[str]:
    """Six hours of each: 30 s points on the window starts with a gap and rows missing; 30 s
    points at :15 and :45; points a minute apart with one off the minute; a minute's points
    under two tag sets, at the same instants and one after the other; hourly points; points a
    minute apart with a run of seconds inside; five points two days apart, on the 2-day
    windows and a day off them."""
    span = range(T0, T0 + HOURS * 3600, 30)
    grid = [t for t in span if not (3600 <= t - T0 < 5400) and t % 210]
    shifted = [t + 15 for t in span]
    minutes = range(T0, T0 + HOURS * 3600, 60)
    drift = [t if t != T0 + 7200 else t + 7 for t in minutes]
    burst = sorted({*minutes, *range(T0 + 9000, T0 + 9120)})
    hourly = range(T0, T0 + HOURS * 3600, 3600)
    return [
        *_lines("grid", grid),
        *_lines("shifted", shifted),
        *_lines("drift", drift),
        *_lines("twin", list(minutes), ",site=a"),
        *_lines("twin", list(minutes), ",site=b"),
        *_lines("relay", list(minutes[:150]), ",site=a"),
        *_lines("relay", list(minutes[200:]), ",site=b"),
        *_lines("hourly", list(hourly)),
        *_lines("burst", burst),
        *_lines("two_days", [T2 + k * 2 * DAY for k in range(5)]),
        *_lines("two_days_late", [T2 + DAY + k * 2 * DAY for k in range(5)]),
        *_integers(),
        *_forms(),
    ]


@pytest.fixture(scope="module")
async def window_app(influx: InfluxServer) -> AsyncIterator[AppClient]:
    """The API over ``_dataset`` in a bucket of its own."""
    name = f"as_windows_{T0}"
    with InfluxDBClient(url=influx.url, token=influx.token, org=influx.org) as client:
        created = client.buckets_api().create_bucket(bucket_name=name, org=influx.org)
        client.write_api(write_options=SYNCHRONOUS).write(
            name, influx.org, "\n".join(_dataset()), write_precision="s"
        )
        app = AppClient(make_settings(influx, name))
        async with app:
            yield app
        if influx.proc is not None:
            client.buckets_api().delete_bucket(created)


@pytest.fixture
def window_api(window_app: AppClient) -> httpx.AsyncClient:
    return window_app.http


def _params(start: datetime, end: datetime, resolution: str, agg: str, fill: str) -> dict[str, str]:
    form = "%Y-%m-%dT%H:%M:%SZ"
    return {"start": start.strftime(form), "end": end.strftime(form), "resolution": resolution,
            "agg": agg, "fill": fill}  # fmt: skip


BEGIN = datetime.fromtimestamp(T0, UTC)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(["grid", "shifted", "drift", "twin", "relay", "hourly", "burst"]),
    start_s=st.integers(0, HOURS * 3600 - 1),
    length_s=st.integers(1, HOURS * 3600),
    resolution=st.sampled_from(["30s", "1m", "15m", "1h"]),
    agg=st.sampled_from(["mean", "min", "max", "sum", "first", "last", "median", "count"]),
    fill=st.sampled_from(["none", "none", "null"]),
    tz=st.sampled_from([None, "Asia/Kathmandu"]),
    aligned=st.booleans(),
)
async def test_points_read_as_windows_equal_fluxs_windows(
    window_api: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    start_s: int,
    length_s: int,
    resolution: str,
    agg: str,
    fill: str,
    tz: str | None,
    aligned: bool,
) -> None:
    """Any range (on window starts or not), window, aggregate and fill: the answer, whichever
    way it was read, equals the one Flux makes every window of (``READ_POINTS_AS_WINDOWS``
    off), labels, `partial` and value texts exactly."""
    if aligned:
        start_s -= start_s % 3600
    start = BEGIN + timedelta(seconds=start_s)
    end = min(start + timedelta(seconds=length_s), BEGIN + timedelta(hours=HOURS + 1))
    params = {**_params(start, end, resolution, agg, fill), **({"tz": tz} if tz else {})}
    url = f"/v1/series/{name}/data"
    ours = await window_api.get(url, params=params)
    with monkeypatch.context() as m:
        m.setattr(store_module, "READ_POINTS_AS_WINDOWS", False)
        fluxs = await window_api.get(url, params=params)
    assert ours.status_code == fluxs.status_code == 200, (params, ours.text, fluxs.text)
    assert ours.content == fluxs.content, params


SIX_HOURS = _params(BEGIN, BEGIN + timedelta(hours=HOURS), "30s", "mean", "none")


async def _sent(api: httpx.AsyncClient, name: str, **changed: str) -> dict[str, float]:
    request = api.get(f"/v1/series/{name}/data", params={**SIX_HOURS, **changed})
    r, sent = await sent_queries(api, request)
    assert r.status_code == 200, r.text
    return sent


async def test_points_on_the_window_starts_are_read_as_windows(
    window_api: httpx.AsyncClient,
) -> None:
    """Windows that divide the spacing of points on their starts: one read of the points, no
    windows made by Flux; also for windows finer than the spacing (three of four 15 m windows
    of an hourly series are empty, and left out with fill `none`), and in a zone whose offsets
    the windows divide."""
    await _sent(window_api, "grid")  # the series' spacing, once
    assert await _sent(window_api, "grid") == {"as_windows": 1}
    await _sent(window_api, "hourly")
    for resolution in ("15m", "1h"):
        assert await _sent(window_api, "hourly", resolution=resolution) == {"as_windows": 1}
    assert await _sent(window_api, "grid", tz="Asia/Kathmandu") == {"as_windows": 1}
    await _sent(window_api, "relay", resolution="1m")  # two tag sets, one after the other
    assert await _sent(window_api, "relay", resolution="1m") == {"as_windows": 1}


@pytest.mark.parametrize(
    ("changed", "why"),
    [
        ({"resolution": "1m"}, "a window of two points"),
        ({"agg": "count"}, "a count is not the point's value"),
        ({"agg": "stddev"}, "nor is a standard deviation"),
        ({"fill": "null"}, "a fill needs the empty windows"),
        ({"resolution": "1d", "tz": "Europe/Zurich"}, "local days"),
    ],
)
async def test_windows_the_points_cannot_be_are_fluxs(
    window_api: httpx.AsyncClient, changed: dict[str, str], why: str
) -> None:
    """Not tried where the spacing or the request says the points are not the windows."""
    await _sent(window_api, "grid", **changed)
    assert "as_windows" not in await _sent(window_api, "grid", **changed), why


@pytest.mark.parametrize(
    ("name", "resolution", "merged", "why"),
    [
        ("shifted", "30s", 0, "30 s points at :15 and :45"),
        ("drift", "1m", 0, "one point seven seconds past its minute"),
        ("burst", "1m", 0, "two minutes of 1 s points: more points than windows"),
        ("twin", "1m", 1, "two tag sets, each on the minutes (Flux merges them)"),
    ],
)
async def test_points_that_are_not_the_windows_are_left_to_flux_from_then_on(
    window_app: AppClient, name: str, resolution: str, merged: int, why: str
) -> None:
    """A spacing that says one point a window, points that are not: read once, Flux's
    windows answer, and from then on that series at that window goes to Flux at once."""
    api, store = window_app.http, window_app.app.state.store
    await _sent(api, name, resolution=resolution)  # its spacing (perhaps the read too)
    store._not_windows.clear()
    tried = await _sent(api, name, resolution=resolution)
    assert tried == {"as_windows": 1, "data": 1 + merged}, why
    assert await _sent(api, name, resolution=resolution) == {"data": 1 + merged}, why


@pytest.mark.parametrize(("name", "read"), [("two_days", True), ("two_days_late", False)])
async def test_windows_that_do_not_divide_a_day_are_checked_on_the_instants(
    window_app: AppClient, monkeypatch: pytest.MonkeyPatch, name: str, read: bool
) -> None:
    """2-day windows: the points' clock says nothing, their instants do (midnight every day,
    on the windows every other day). Equal to Flux's windows either way."""
    api = window_app.http
    begin = datetime.fromtimestamp(T2 - 2 * DAY, UTC)
    span = {**_params(begin, begin + timedelta(days=14), "2d", "max", "none")}
    await _sent(api, name, **span)  # its spacing
    window_app.app.state.store._not_windows.clear()
    sent = await _sent(api, name, **span)
    assert sent == ({"as_windows": 1} if read else {"as_windows": 1, "data": 1})
    ours = await api.get(f"/v1/series/{name}/data", params=span)
    with monkeypatch.context() as m:
        m.setattr(store_module, "READ_POINTS_AS_WINDOWS", False)
        fluxs = await api.get(f"/v1/series/{name}/data", params=span)
    assert len(fluxs.json()["points"]) == 5
    assert ours.content == fluxs.content


@pytest.mark.parametrize("agg", ["mean", "median", "min", "max", "sum", "first", "last"])
async def test_an_integer_field_is_read_as_windows_only_where_flux_keeps_its_text(
    window_app: AppClient, monkeypatch: pytest.MonkeyPatch, agg: str
) -> None:
    """Flux's mean and median of an integer are floats: past 2**53 another number than the
    integer. Those windows are Flux's; the others read as the points, to the same bytes."""
    api = window_app.http
    span = {**_params(BEGIN, BEGIN + timedelta(hours=1), "1m", agg, "none")}
    await _sent(api, "integers", **span)  # its spacing
    window_app.app.state.store._not_windows.clear()
    sent = await _sent(api, "integers", **span)
    read = agg not in ("mean", "median")
    assert sent == ({"as_windows": 1} if read else {"as_windows": 1, "data": 1})
    ours = await api.get("/v1/series/integers/data", params=span)
    with monkeypatch.context() as m:
        m.setattr(store_module, "READ_POINTS_AS_WINDOWS", False)
        fluxs = await api.get("/v1/series/integers/data", params=span)
    assert ours.content == fluxs.content


@pytest.mark.parametrize("series", list(FORMS))
@pytest.mark.parametrize("format_", ["json", "csv", "ndjson"])
@pytest.mark.parametrize("agg", ["mean", "min", "max", "sum", "first", "last", "median"])
async def test_every_form_of_number_is_written_as_the_path_it_replaces_writes_it(
    window_app: AppClient, monkeypatch: pytest.MonkeyPatch, agg: str, format_: str, series: str
) -> None:
    """Whole numbers, tiny and huge magnitudes, negative zero (``FORMS``), read as windows
    where they can be: the same bytes as the windows made otherwise (by Flux, whose texts are
    InfluxDB's; for a median by the API, whose floats are Python's), in every format. Found by
    the property test above: a median of one point `50` was written `50` read as windows and
    `50.0` computed; then, by this test, a sum of `-0` written `-0` (Flux's: `0`)."""
    window_app.app.state.store._not_windows.clear()
    api, values = window_app.http, FORMS[series]
    params = {**_params(BEGIN, BEGIN + timedelta(seconds=30 * len(values)), "30s", agg, "none"),
              "format": format_}  # fmt: skip
    url = f"/v1/series/{series}/data"
    await api.get(url, params=params)  # its spacing, once
    ours, sent = await sent_queries(api, api.get(url, params=params))
    assert ("as_windows" in sent) is (agg not in NOT_AS_WINDOWS.get(series, ())), sent
    with monkeypatch.context() as m:
        m.setattr(store_module, "READ_POINTS_AS_WINDOWS", False)
        theirs = await api.get(url, params=params)
    assert ours.status_code == theirs.status_code == 200, ours.text
    assert ours.content == theirs.content
    assert ours.content.count(b'"partial"' if format_ != "csv" else b"\n") >= len(values)
