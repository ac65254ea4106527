"""The chart page in headless Chromium against the live API: what a person sees on the canvas.

The line is measured on the canvas's pixels: the stroke must run across most of the plot in
pieces that are lines, not dots (`LINE_PIXELS`), and two controls drawn the way the page drew
before show that the measure fails on an empty chart and on isolated dots.

`GRIDTS_SCREENSHOTS=docs/img pytest tests/app/test_page.py` saves the first views of the docs.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.app.conftest import LiveApi

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
RANGE = {"start": "2021-05-01T00:00:00Z", "end": "2021-05-03T00:00:00Z"}
STROKE = (0x1F, 0x6F, 0xEB)  # the series' line, #1f6feb
PARTIAL = (0xE8, 0x59, 0x0C)  # partial windows, #e8590c
SCREENSHOTS = os.environ.get("GRIDTS_SCREENSHOTS")

# The ink of one colour in the plot area, as a person sees it: pixels of that colour at least
# ~40 % opaque, grouped into 8-connected pieces. `line` is the share of the plot's columns under
# pieces at least 2 % of the plot wide (a line, or long stretches of it); `ink` the share of
# columns with any such pixel (dots count here, not in `line`).
LINE_PIXELS = """
const [r0, g0, b0] = arguments[0];
const u = window.gridtsChart;
const img = u.ctx.getImageData(Math.round(u.bbox.left), Math.round(u.bbox.top),
                               Math.round(u.bbox.width), Math.round(u.bbox.height));
const W = img.width, H = img.height, px = img.data;
const on = new Uint8Array(W * H);
const inkCols = new Uint8Array(W);
for (let i = 0; i < W * H; i++) {
  const k = 4 * i;
  if (px[k + 3] >= 100 && Math.abs(px[k] - r0) < 48 && Math.abs(px[k + 1] - g0) < 48
      && Math.abs(px[k + 2] - b0) < 48) { on[i] = 1; inkCols[i % W] = 1; }
}
const seen = new Uint8Array(W * H);
const pieces = [];
for (let i = 0; i < W * H; i++) {
  if (!on[i] || seen[i]) continue;
  let lo = W, hi = -1;
  const stack = [i];
  seen[i] = 1;
  while (stack.length) {
    const j = stack.pop(), x = j % W, y = (j - x) / W;
    if (x < lo) lo = x;
    if (x > hi) hi = x;
    for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
      const nx = x + dx, ny = y + dy, n = ny * W + nx;
      if (nx < 0 || ny < 0 || nx >= W || ny >= H || !on[n] || seen[n]) continue;
      seen[n] = 1;
      stack.push(n);
    }
  }
  pieces.push([lo, hi]);
}
const lineCols = new Uint8Array(W);
for (const [lo, hi] of pieces) if (hi - lo + 1 >= 0.02 * W) lineCols.fill(1, lo, hi + 1);
const share = (cols) => cols.reduce((a, b) => a + b, 0) / W;
return {width: W, pieces: pieces.length, line: share(lineCols), ink: share(inkCols),
        longest: Math.max(0, ...pieces.map(([lo, hi]) => hi - lo + 1)) / W};
"""

# Columns (CSS px, left of the plot) with dark text pixels, as runs [first, last] (blanks of up to
# 4 px, between glyphs, joined): the y axis's title and its tick labels, each a run of its own
# when neither is cut nor overlaps the other.
Y_AXIS_INK = """
const u = window.gridtsChart, r = uPlot.pxRatio;
const left = Math.round(u.bbox.left), top = Math.round(u.bbox.top);
const img = u.ctx.getImageData(0, top, left, Math.round(u.bbox.height));
const cols = new Uint8Array(img.width);
for (let i = 0; i < img.width * img.height; i++) {
  const k = 4 * i;
  const dark = img.data[k] + img.data[k + 1] + img.data[k + 2] < 300;
  if (img.data[k + 3] >= 100 && dark) cols[i % img.width] = 1;
}
const runs = [];
for (let x = 0; x < cols.length; x++) {
  if (!cols[x]) continue;
  if (runs.length && x - runs[runs.length - 1][1] <= 1 + 4 * r) runs[runs.length - 1][1] = x;
  else runs.push([x, x]);
}
return runs.map(([a, b]) => [a / r, b / r]);
"""

# Replaces the chart by one drawn as the page drew before: every window of a fill=null answer
# handed to uPlot with its nulls, which breaks the line around each null; `dots` shows points.
OLD_CHART = """
const [xs, ys, dots, defaultAxes] = arguments;
const el = document.getElementById('chart');
window.gridtsChart.destroy();
const series = {stroke: '#1f6feb', width: 1.5, spanGaps: false};
if (dots) series.points = {show: true, size: 4};
window.gridtsChart = new uPlot({width: Math.max(400, el.clientWidth || 900), height: 440,
  tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'),
  series: [{}, series], axes: [{}, {label: 'kWh'}]}, [xs, ys], el);
"""

TICK = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d(?:\n\d{4}-\d{2}-\d{2})?$")
DAY_TICK = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("headless Chromium is missing: run scripts/install-browser (make tools)")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1200,900",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def open_page(driver: webdriver.Chrome, live_api: LiveApi, **params: str) -> str:
    """Loads the page with `params` in its URL and waits for the chart; returns data-status."""
    driver.get(f"{live_api.url}/?{httpx.QueryParams(params)}")
    chart = driver.find_element(By.ID, "chart")
    WebDriverWait(driver, 30).until(lambda _: chart.get_attribute("data-status") in ("ok", "error"))
    return str(chart.get_attribute("data-status"))


def chart_attr(driver: webdriver.Chrome, name: str) -> str:
    return str(driver.find_element(By.ID, "chart").get_attribute(f"data-{name}"))


def status_text(driver: webdriver.Chrome) -> str:
    return str(driver.find_element(By.ID, "status").text)


def page_request(driver: webdriver.Chrome) -> dict[str, str]:
    """The data request the page made, from the URL it shows (it keeps its query there)."""
    params = dict(parse_qsl(urlsplit(driver.current_url).query))
    del params["series"]
    return params


def api_points(live_api: LiveApi, name: str, /, **params: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{live_api.url}/v1/series/{name}/data", params={"max_points": "5000", **params}
    )
    assert response.status_code == 200, response.text
    points: list[dict[str, Any]] = response.json()["points"]
    return points


def line_pixels(driver: webdriver.Chrome, colour: tuple[int, int, int] = STROKE) -> dict[str, Any]:
    result: dict[str, Any] = driver.execute_script(LINE_PIXELS, list(colour))
    return result


def window_seconds(resolution: str) -> int:
    return int(resolution[:-1]) * SECONDS[resolution[-1]]


@pytest.mark.parametrize(
    ("series", "spacing", "screenshot"),
    [
        ("f_soll_aktiv", 30, "page-first-view-30s.png"),
        ("active_losses", 900, "page-first-view-15min.png"),
        ("enduse", 900, None),
    ],
)
def test_first_view_draws_a_line(
    live_api: LiveApi, browser: webdriver.Chrome, series: str, spacing: int, screenshot: str | None
) -> None:
    """The page opened on a series, nothing else asked: its curve is on the canvas."""
    assert open_page(browser, live_api, series=series) == "ok", status_text(browser)
    if SCREENSHOTS and screenshot:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        browser.find_element(By.TAG_NAME, "body").screenshot(str(Path(SCREENSHOTS) / screenshot))

    ink = line_pixels(browser)
    assert ink["line"] >= 0.85, f"no line across the plot: {ink}"

    request = page_request(browser)
    assert request["resolution"] == "auto"
    assert "tz" not in request
    values = [
        p
        for p in api_points(live_api, series, **{**request, "fill": "none"})
        if p["value"] is not None
    ]
    assert len(values) > 150
    assert chart_attr(browser, "drawn") == str(len(values))
    drawn = browser.execute_script(
        "return Array.from(window.gridtsChart.data[1]).filter((v) => v !== null);"
    )
    assert drawn == [p["value"] for p in values]
    assert chart_attr(browser, "partial") == ""  # the default range cuts no window
    resolution = chart_attr(browser, "resolution")
    assert status_text(browser).startswith(f"{len(values)} values of {series} at {resolution}")
    # `auto` never picks windows finer than the series' spacing (issue 11, item 11)
    assert window_seconds(resolution) >= spacing, f"{series} shown in {resolution} windows"


def test_the_line_measure_fails_on_an_empty_chart(
    live_api: LiveApi, browser: webdriver.Chrome
) -> None:
    """The page before issue 11: 15-minute values in 1-minute windows with fill=null. uPlot breaks
    the line at every null, so nothing is drawn; with points shown, dots that are no line."""
    params = {**RANGE, "resolution": "1m"}
    assert open_page(browser, live_api, series="enduse", **params) == "ok"
    assert line_pixels(browser)["line"] >= 0.85  # the page joins values a window apart

    points = api_points(live_api, "enduse", **params, fill="null")
    assert len(points) == 2880
    assert sum(p["value"] is not None for p in points) == 184
    xs = browser.execute_script(
        "return arguments[0].map((t) => Date.parse(t) / 1000);", [p["time"] for p in points]
    )
    ys = [p["value"] for p in points]
    browser.execute_script(OLD_CHART, xs, ys, False)
    empty = line_pixels(browser)
    assert empty["ink"] < 0.02, empty  # nothing on the canvas
    assert empty["line"] < 0.02, empty
    browser.execute_script(OLD_CHART, xs, ys, True)
    dots = line_pixels(browser)
    assert dots["ink"] > 0.3, dots  # ink across the plot,
    assert dots["line"] < 0.05, dots  # but no line


@pytest.mark.parametrize(("series", "resolution"), [("enduse", "1h"), ("f_soll_aktiv", "15m")])
def test_a_real_gap_stays_a_gap(
    live_api: LiveApi, browser: webdriver.Chrome, series: str, resolution: str
) -> None:
    """Empty windows the series has no data for (enduse: 12:00-13:00, f_soll_aktiv: 06:00-07:30)
    are a gap in the line, not a segment bridging them."""
    assert open_page(browser, live_api, series=series, **RANGE, resolution=resolution) == "ok"
    values = api_points(live_api, series, **RANGE, resolution=resolution, agg="mean")
    assert chart_attr(browser, "resolution") == resolution
    assert chart_attr(browser, "drawn") == str(len(values))
    drawn = browser.execute_script(
        "return Array.from(window.gridtsChart.data[1]).filter((v) => v !== null);"
    )
    assert drawn == [p["value"] for p in values]
    assert line_pixels(browser)["line"] >= 0.85

    times = browser.execute_script(
        "return arguments[0].map((t) => Date.parse(t) / 1000);", [p["time"] for p in values]
    )
    step = window_seconds(resolution)
    gaps = [(a, b) for a, b in itertools.pairwise(times) if b - a > step]
    assert gaps, "the fixture's series have an empty stretch"
    for a, b in gaps:
        blank = browser.execute_script(
            """
            const [a, b, rgb] = arguments, u = window.gridtsChart, r = uPlot.pxRatio;
            const x0 = Math.ceil(u.valToPos(a, 'x', true) + 6 * r);
            const x1 = Math.floor(u.valToPos(b, 'x', true) - 6 * r);
            if (x1 <= x0) return null;
            const img = u.ctx.getImageData(x0, Math.round(u.bbox.top), x1 - x0,
                                           Math.round(u.bbox.height)).data;
            let n = 0;
            for (let k = 0; k < img.length; k += 4) {
              if (img[k + 3] >= 100 && Math.abs(img[k] - rgb[0]) < 48
                  && Math.abs(img[k + 2] - rgb[2]) < 48) n++;
            }
            return n;
            """,
            a,
            b,
            list(STROKE),
        )
        if blank is not None:  # wide enough to see
            assert blank == 0, f"a line bridges the empty stretch {a}..{b}"


def test_times_are_a_24_hour_iso_clock_in_utc(live_api: LiveApi, browser: webdriver.Chrome) -> None:
    assert open_page(browser, live_api, series="enduse") == "ok"
    ticks: list[str] = browser.execute_script("return window.gridtsChart.axes[0]._values;")
    assert ticks
    assert all(TICK.match(t) for t in ticks), ticks
    assert ticks[0].endswith("\n2021-05-01"), ticks  # the date under the first tick of a day
    assert any(int(t[:2]) >= 13 for t in ticks), ticks  # afternoon hours, 24-hour clock
    assert not any(re.search("am|pm", t, re.I) for t in ticks)
    assert_ticks_are_readable(browser)

    assert browser.execute_script("return window.gridtsChart.axes[0].label;") == "time (UTC)"
    assert browser.find_element(By.ID, "start").get_attribute("value") == "2021-05-01 00:00"
    assert browser.find_element(By.ID, "end").get_attribute("value") == "2021-05-03 00:00"
    assert "in UTC" in browser.find_element(By.CSS_SELECTOR, "label:has(#start)").text
    assert ", times in UTC" in status_text(browser)
    # the legend under the cursor at 2021-05-01T18:00:00Z
    assert hover(browser, 1619892000) == ["time (UTC)", "2021-05-01 18:00 UTC"]


def hover(driver: webdriver.Chrome, ts: int) -> list[str]:
    """Puts the cursor on the instant `ts` and returns the legend's time label and value."""
    result: list[str] = driver.execute_script(
        """
        const u = window.gridtsChart;
        u.setCursor({left: u.valToPos(arguments[0], 'x'), top: 20});
        const row = document.querySelector('#chart .u-legend .u-series');
        return [row.querySelector('.u-label').textContent,
                row.querySelector('.u-value').textContent];
        """,
        ts,
    )
    return result


def assert_ticks_are_readable(driver: webdriver.Chrome) -> None:
    boxes: list[list[float]] = driver.execute_script(
        """
        const u = window.gridtsChart, axis = u.axes[0];
        u.ctx.font = axis.font[0];
        return axis._splits.map((s, i) => {
          const w = Math.max(...String(axis._values[i]).split('\\n')
                                .map((l) => u.ctx.measureText(l).width)) / uPlot.pxRatio;
          const x = u.bbox.left / uPlot.pxRatio + u.valToPos(s, 'x');
          return [x - w / 2, x + w / 2];
        }).concat([[0, u.ctx.canvas.width / uPlot.pxRatio]]);
        """
    )
    *boxes, (canvas_left, canvas_right) = boxes
    assert canvas_left <= boxes[0][0], f"first label cut: {boxes}"
    assert boxes[-1][1] <= canvas_right, f"last label cut: {boxes}"
    for (_, right), (left, _) in itertools.pairwise(boxes):
        assert right + 4 <= left, f"time labels overlap: {boxes}"


def test_a_zone_shows_local_days_and_local_times(
    live_api: LiveApi, browser: webdriver.Chrome
) -> None:
    """tz=Europe/Zurich: the fields, the ticks and the legend in Swiss time; the API gets tz, so
    its days are Swiss days (starting 22:00 UTC in summer)."""
    params = {"start": "2021-04-30T22:00:00Z", "end": "2021-05-02T22:00:00Z"}
    assert (
        open_page(browser, live_api, series="enduse", **params, resolution="1d", tz="Europe/Zurich")
        == "ok"
    )
    assert browser.find_element(By.ID, "start").get_attribute("value") == "2021-05-01 00:00"
    assert browser.find_element(By.ID, "end").get_attribute("value") == "2021-05-03 00:00"
    assert page_request(browser)["tz"] == "Europe/Zurich"
    times = browser.execute_script(
        "return Array.from(window.gridtsChart.data[0]).filter((_, i) =>"
        " window.gridtsChart.data[1][i] !== null);"
    )
    assert times == [1619820000, 1619906400]  # 2021-04-30T22:00Z, 2021-05-01T22:00Z
    assert browser.execute_script("return window.gridtsChart.axes[0].label;") == (
        "time (Europe/Zurich)"
    )
    assert hover(browser, 1619820000) == ["time (Europe/Zurich)", "2021-05-01 00:00 +02:00"]
    assert "in Europe/Zurich" in browser.find_element(By.CSS_SELECTOR, "label:has(#end)").text

    assert open_page(browser, live_api, series="enduse", **RANGE, tz="Europe/Zurich") == "ok"
    ticks: list[str] = browser.execute_script("return window.gridtsChart.axes[0]._values;")
    assert all(TICK.match(t) for t in ticks), ticks
    assert ticks[0].endswith("\n2021-05-01"), ticks
    assert browser.find_element(By.ID, "start").get_attribute("value") == "2021-05-01 02:00"


def test_nine_digit_values_fit_the_y_axis(live_api: LiveApi, browser: webdriver.Chrome) -> None:
    """Daily sums of enduse are ~1.7e8 kWh: every y label is inside the axis, clear of its title."""
    assert (
        open_page(browser, live_api, series="enduse", **RANGE, resolution="1d", agg="sum") == "ok"
    )
    labels: list[str] = browser.execute_script("return window.gridtsChart.axes[1]._values;")
    assert max(len(re.sub(r"\D", "", v)) for v in labels) >= 9, labels
    fit = browser.execute_script(
        """
        const u = window.gridtsChart, axis = u.axes[1];
        u.ctx.font = axis.font[0];
        const widths = axis._values.map((v) => u.ctx.measureText(v).width);
        const text = Math.max(...widths) / uPlot.pxRatio;
        return {text, room: axis._size - axis.ticks.size - axis.gap};
        """
    )
    assert fit["text"] <= fit["room"], fit
    assert_y_axis_clear(browser)

    # the control: uPlot's default axis cuts the same labels and runs them into the title
    points = api_points(live_api, "enduse", **RANGE, resolution="1d", agg="sum")
    xs = [1619827200, 1619913600]
    browser.execute_script(OLD_CHART, xs, [p["value"] for p in points], False)
    with pytest.raises(AssertionError):
        assert_y_axis_clear(browser)


def assert_y_axis_clear(driver: webdriver.Chrome) -> None:
    runs: list[list[float]] = driver.execute_script(Y_AXIS_INK)
    assert len(runs) == 2, f"the y axis's title and labels are not apart: {runs}"
    assert runs[0][0] > 0, f"cut at the left edge: {runs}"


def test_no_field_looks_preset(live_api: LiveApi, browser: webdriver.Chrome) -> None:
    """The zone and token fields are empty, with a hint beside them rather than a placeholder
    that reads like a value."""
    assert open_page(browser, live_api, series="enduse") == "ok"
    for field in ("tz", "token", "start", "end"):
        element = browser.find_element(By.ID, field)
        assert not element.get_attribute("placeholder"), field
    tz = browser.find_element(By.ID, "tz")
    assert tz.get_attribute("value") == ""
    hint = browser.find_element(By.ID, str(tz.get_attribute("aria-describedby"))).text
    assert "empty: UTC" in hint
    assert browser.find_element(By.CSS_SELECTOR, "label:has(#tz)").text.startswith("Time zone")


def test_partial_windows_are_hollow_and_dashed(
    live_api: LiveApi, browser: webdriver.Chrome
) -> None:
    """A range from 00:30 to 10:30 cuts its first and last hour: the API marks them partial and
    the page draws them as hollow points on a dashed line and says so."""
    params = {"start": "2021-05-01T00:30:00Z", "end": "2021-05-02T10:30:00Z", "resolution": "1h"}
    points = api_points(live_api, "enduse", **params)
    flags = [p.get("partial") for p in points]
    assert flags[0] is True, "the API marks windows the range cuts (issue 11, item 4)"
    assert flags[-1] is True
    assert not any(flags[1:-1])
    assert open_page(browser, live_api, series="enduse", **params) == "ok"
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        browser.find_element(By.TAG_NAME, "body").screenshot(
            str(Path(SCREENSHOTS) / "page-partial-windows.png")
        )
    assert chart_attr(browser, "partial") == "first last"
    assert "first and last windows partial" in status_text(browser)
    legend = browser.find_elements(By.CSS_SELECTOR, "#chart .u-legend .u-series .u-label")
    assert [e.text for e in legend][-1] == "partial window"

    for point, neighbour in ((points[0], points[1]), (points[-1], points[-2])):
        seen = browser.execute_script(
            """
            const [t, v, tn, vn, orange] = arguments, u = window.gridtsChart, r = uPlot.pxRatio;
            const t0 = Date.parse(t) / 1000, t1 = Date.parse(tn) / 1000;
            const x = Math.round(u.valToPos(t0, 'x', true));
            const y = Math.round(u.valToPos(v, 'y', true));
            const px = (i, j) => Array.from(u.ctx.getImageData(i, j, 1, 1).data);
            const isOrange = (p) => p[3] >= 100 && Math.abs(p[0] - orange[0]) < 48
              && Math.abs(p[1] - orange[1]) < 48 && Math.abs(p[2] - orange[2]) < 48;
            let ring = 0;
            for (let a = 0; a < 16; a++) {
              const i = Math.round(x + 4.5 * r * Math.cos(a * Math.PI / 8));
              const j = Math.round(y + 4.5 * r * Math.sin(a * Math.PI / 8));
              if (isOrange(px(i, j))) ring++;
            }
            // the segment to the whole neighbour, sampled along its length: dashes and spaces
            const xn = u.valToPos(t1, 'x', true), yn = u.valToPos(vn, 'y', true);
            const along = [];
            for (let s = 0.3; s <= 0.85; s += 0.01) {
              const i = Math.round(x + (xn - x) * s), j = Math.round(y + (yn - y) * s);
              let hit = false;
              for (let d = -1; d <= 1; d++) hit = hit || isOrange(px(i, j + d));
              along.push(hit);
            }
            return {ring, centre: px(x, y), dash: along.filter(Boolean).length, n: along.length};
            """,
            point["time"],
            point["value"],
            neighbour["time"],
            neighbour["value"],
            list(PARTIAL),
        )
        assert seen["ring"] >= 12, seen  # an orange circle around the point
        assert seen["centre"][3] >= 200, seen  # hollow: white inside
        assert min(seen["centre"][:3]) >= 230, seen
        assert 0.3 * seen["n"] <= seen["dash"] <= 0.85 * seen["n"], seen  # dashed, not solid


def test_page_shows_the_api_error(live_api: LiveApi, browser: webdriver.Chrome) -> None:
    query = {"series": "f_soll_aktiv", **RANGE, "resolution": "30s"}
    assert open_page(browser, live_api, **query) == "error"
    status = status_text(browser)
    assert status == ("resolution: 5760 points would exceed max_points=5000; resolution=1m fits")
