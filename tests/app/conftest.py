"""Fixtures of the API tests: one bucket of known series written once, the app in-process, and
the API as a real uvicorn process.

The bucket is filled by the ingest (`python -m ingest load`), from the real Swissgrid losses file
and from files this module writes in the operator's and Swissgrid's dialects (local time, labels
at interval ends). The tests compute what the API must answer with pandas from the same rows,
whose UTC interval starts are known here independently of the ingest. Three small series that
exercise schema corners the ingest does not produce (no unit, an extra tag, one name under two
tag sets) are written as line protocol.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS

import influxdb_local as il
from app.main import create_app
from app.settings import Settings
from tests.conftest import SHARED_DATA, InfluxServer

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Series:
    name: str
    unit: str | None
    values: pd.Series  # float, indexed by UTC timestamps
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def index(self) -> pd.DatetimeIndex:
        """The UTC timestamps of `values` (the stubs only know a Series' index as an Index)."""
        index = self.values.index
        assert isinstance(index, pd.DatetimeIndex)
        return index


def _frequency() -> Series:
    """Two days of a 30 s series with a gap of 90 minutes and 5 % of rows missing at random."""
    rng = np.random.default_rng(7)
    index = pd.date_range(
        "2021-05-01T00:00:00Z", "2021-05-03T00:00:00Z", freq="30s", inclusive="left"
    )
    values = 50.0 + np.round(rng.normal(0, 0.02, len(index)), 3)
    s = pd.Series(values, index=index)
    s = s[(s.index < "2021-05-01T06:00:00Z") | (s.index >= "2021-05-01T07:30:00Z")]
    return Series("f_soll_aktiv", "Hz", s[rng.random(len(s)) > 0.05])


LOSSES_FILE = SHARED_DATA / "swissgrid-active-losses-2019-2021-15min.csv"


def _losses() -> Series:
    """Swissgrid's real active losses, 2019 to 2021, through both DST changes of each year.

    The file has every 15-minute interval exactly once (105,216 rows for three years), so row i
    is the interval starting at 2019-01-01T00:00 CET plus i quarter hours, whatever its label.
    """
    raw = pd.read_csv(LOSSES_FILE, skiprows=2, header=None, names=["label", "kWh"])
    index = pd.date_range("2018-12-31T23:00:00Z", periods=len(raw), freq="15min")
    return Series("active_losses", "kWh", pd.Series(raw["kWh"].to_numpy(float), index=index))


def _enduse() -> Series:
    """15-minute energy on the frequency series' days, for multi-series alignment."""
    rng = np.random.default_rng(13)
    index = pd.date_range(
        "2021-05-01T00:00:00Z", "2021-05-03T00:00:00Z", freq="15min", inclusive="left"
    )
    s = pd.Series(np.round(rng.uniform(1.5e6, 2.1e6, len(index)), 1), index=index)
    return Series("enduse", "kWh", s[index.hour != 12])  # one empty hour a day


def _tagged() -> Series:
    index = pd.date_range("2021-05-01T00:00:00Z", periods=10, freq="1h")
    return Series("site.load-1", "MW", pd.Series(np.arange(10.0), index=index), {"site": "north"})


def _unitless() -> Series:
    index = pd.date_range("2021-05-01T00:00:00Z", periods=3, freq="1D")
    return Series("counter", None, pd.Series([1.0, 2.0, 4.0], index=index))


def _two_sites() -> list[Series]:
    """One name under two tag sets (site=a, site=b), partly at the same instants."""
    a = pd.date_range("2021-05-01T00:00:00Z", periods=48, freq="30min")
    b = pd.date_range("2021-05-01T00:10:00Z", periods=30, freq="50min")
    return [
        Series("two_sites", "MW", pd.Series(np.arange(48.0), index=a), {"site": "a"}),
        Series("two_sites", "MW", pd.Series(100 + np.arange(30.0), index=b), {"site": "b"}),
    ]


@pytest.fixture(scope="session")
def two_sites() -> list[Series]:
    return _two_sites()


@pytest.fixture(scope="session")
def dataset() -> dict[str, Series]:
    return {s.name: s for s in (_frequency(), _losses(), _enduse(), _tagged(), _unitless())}


_WEEKDAYS = ["Mo.", "Di.", "Mi.", "Do.", "Fr.", "Sa.", "So."]


def _local_ends(series: Series, step: str) -> pd.DatetimeIndex:
    return (series.index + pd.Timedelta(step)).tz_convert("Europe/Zurich")


def operator_file(series: Series, path: Path, step: str) -> Path:
    """The operator's dialect: `Sa. 01.05.21 00:00:30;49,99`, local end labels."""
    lines = [f"Datum Zeit;A:{series.name} [{series.unit}]"]
    for end, value in zip(_local_ends(series, step), series.values.tolist(), strict=True):
        text = f"{value:.3f}".rstrip("0").rstrip(".").replace(".", ",")
        lines.append(f"{_WEEKDAYS[end.weekday()]} {end:%d.%m.%y %H:%M:%S};{text}")
    path.write_text("\n".join(lines) + "\n")
    return path


def swissgrid_file(series: Series, path: Path, step: str) -> Path:
    """Swissgrid's end-use dialect: `Zeitstempel<TAB>kWh`, `01.05.2021 00:15<TAB>1843210.5`."""
    lines = [f"Zeitstempel\t{series.unit}"]
    for end, value in zip(_local_ends(series, step), series.values.tolist(), strict=True):
        lines.append(f"{end:%d.%m.%Y %H:%M}\t{value!r}")
    path.write_text("\n".join(lines) + "\n")
    return path


def ingest(influx: InfluxServer, bucket: str, *args: str) -> None:
    """`python -m ingest load ...` into the bucket, as an operator would run it."""
    env = {**os.environ, **influx.env(), "INFLUX_BUCKET": bucket, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "ingest", "load", *args, "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"ingest failed ({done.returncode}): {done.stderr[-2000:]}"


def line_protocol(series: Series) -> str:
    tags = dict(series.tags)
    if series.unit is not None:
        tags["unit"] = series.unit
    key = series.name + "".join(f",{k}={v}" for k, v in sorted(tags.items()))
    seconds = series.index.as_unit("s").asi8.tolist()
    return "\n".join(
        f"{key} value={v!r} {t}" for t, v in zip(seconds, series.values.tolist(), strict=True)
    )


@pytest.fixture(scope="session")
def api_bucket(
    influx: InfluxServer, dataset: dict[str, Series], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A bucket with the dataset, written once for every read test."""
    name = f"api_{secrets.token_hex(4)}"
    files = tmp_path_factory.mktemp("ingest")
    with InfluxDBClient(url=influx.url, token=influx.token, org=influx.org, timeout=60_000) as c:
        created = c.buckets_api().create_bucket(bucket_name=name, org=influx.org)
        ingest(influx, name, str(LOSSES_FILE), "--series", "active_losses", "--label", "end",
               "--step", "15m")  # fmt: skip
        frequency = operator_file(dataset["f_soll_aktiv"], files / "Sollfrequenz.csv", "30s")
        ingest(influx, name, str(frequency), "--label", "end", "--step", "30s")
        enduse = swissgrid_file(dataset["enduse"], files / "enduse.tsv", "15min")
        ingest(influx, name, str(enduse), "--series", "enduse", "--label", "end", "--step", "15m")
        writer = c.write_api(write_options=SYNCHRONOUS)
        corners = [dataset["site.load-1"], dataset["counter"], *_two_sites()]
        for series in corners:
            writer.write(name, influx.org, line_protocol(series), write_precision="s")
        yield name
        if influx.proc is not None:
            c.buckets_api().delete_bucket(created)


# The error tests' range, series and check of a JSON error answer.
DAY = {"start": "2021-05-01T00:00:00Z", "end": "2021-05-02T00:00:00Z"}
DATA = "/v1/series/f_soll_aktiv/data"


def counts_by(metrics: str, histogram: str, label: str, where: str = "") -> dict[str, float]:
    """A histogram's counts so far, summed by one label's value, of its series whose labels
    hold ``where`` (e.g. `route="/v1/series/{name}/data"`)."""
    counts: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith(f"{histogram}_count{{") and where in line:
            value = line.split(f'{label}="', 1)[1].split('"', 1)[0]
            counts[value] = counts.get(value, 0) + float(line.rsplit(" ", 1)[1])
    return counts


def flux_queries(metrics: str) -> dict[str, float]:
    """Flux queries sent so far, by the API's query kind (its histogram's counts)."""
    return counts_by(metrics, "gridts_api_flux_query_duration_seconds", "query")


async def sent_queries(
    api: httpx.AsyncClient, request: Awaitable[httpx.Response]
) -> tuple[httpx.Response, dict[str, float]]:
    """``request``'s response and the Flux queries the API sent for it, by kind. The queries of
    the API's background work that may fall in between (the pending markers read every few
    seconds, a catalog reload behind the requests) are not the request's, and left out."""
    before = flux_queries((await api.get("/metrics")).text)
    r = await request
    after = flux_queries((await api.get("/metrics")).text)
    return r, {
        k: n - before.get(k, 0)
        for k, n in after.items()
        if n != before.get(k, 0) and k not in _BACKGROUND_QUERIES
    }


_BACKGROUND_QUERIES = frozenset({"pending", "catalog"})


async def error_of(r: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body: dict[str, Any] = r.json()
    assert body["error"] == kind
    assert "Traceback" not in r.text
    return body


@pytest.fixture
def prerendered(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each piece whose JSON ``formats.prerender`` makes while an answer arrives
    (``points.CsvReader``), in order, for as long as the test runs."""
    from app import formats

    made: list[int] = []
    prerender = formats.prerender

    def counted(piece: Any) -> None:
        made.append(len(piece))
        prerender(piece)

    monkeypatch.setattr(formats, "prerender", counted)
    return made


def make_settings(influx: InfluxServer, bucket: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "influx_url": influx.url,
        "influx_org": influx.org,
        "influx_bucket": bucket,
        "influx_token": influx.token,
        "api_catalog_ttl_seconds": 60,
        "api_query_timeout_seconds": 20,
        **overrides,
    }
    return Settings(**values)


class AppClient:
    """An app with its lifespan entered, and an httpx client talking to it in-process."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        self._lifespan = self.app.router.lifespan_context(self.app)
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://api", timeout=60
        )

    async def __aenter__(self) -> httpx.AsyncClient:
        await self._lifespan.__aenter__()
        return self.http

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        await self._lifespan.__aexit__(None, None, None)


@pytest.fixture(scope="session")
async def api(influx: InfluxServer, api_bucket: str) -> AsyncIterator[httpx.AsyncClient]:
    """The API over the dataset, auth off."""
    async with AppClient(make_settings(influx, api_bucket)) as client:
        yield client


@dataclass
class LiveApi:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_live_api(env: dict[str, str], log_path: Path) -> LiveApi:
    """`python -m app` on a free loopback port, waited for on /healthz."""
    port = il.free_port()
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("INFLUX_", "API_"))},
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "PYTHONPATH": str(ROOT / "src"),
        **env,
    }
    with open(log_path, "ab") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "app"], env=full_env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited with {proc.returncode}: {log_path.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return LiveApi(url, proc, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the API did not answer /healthz within 60 s")


def stop_live_api(live: LiveApi) -> None:
    il.stop_process(live.proc.pid)
    live.proc.wait()


@pytest.fixture(scope="session")
def live_api(
    influx: InfluxServer, api_bucket: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveApi]:
    """The API as a real uvicorn process over the dataset, auth off."""
    log = tmp_path_factory.mktemp("api") / "api.log"
    live = start_live_api({**influx.env(), "INFLUX_BUCKET": api_bucket}, log)
    yield live
    stop_live_api(live)
