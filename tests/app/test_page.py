"""The chart page in headless Chromium against the live API: it draws the points it received."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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

# Pixels of the series' stroke colour (#1f6feb) on the chart's canvas.
COUNT_STROKE_PIXELS = """
const canvas = document.querySelector('#chart canvas');
const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
let n = 0;
for (let i = 0; i < data.length; i += 4) {
  if (Math.abs(data[i] - 31) < 40 && Math.abs(data[i + 1] - 111) < 40
      && Math.abs(data[i + 2] - 235) < 40 && data[i + 3] > 0) n++;
}
return n;
"""


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
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def wait_for_chart(driver: webdriver.Chrome) -> str:
    chart = driver.find_element(By.ID, "chart")
    WebDriverWait(driver, 30).until(lambda _: chart.get_attribute("data-status") in ("ok", "error"))
    return str(chart.get_attribute("data-status"))


@pytest.mark.parametrize(("series", "resolution"), [("enduse", "1h"), ("f_soll_aktiv", "15m")])
def test_page_draws_the_points_it_received(
    live_api: LiveApi, browser: webdriver.Chrome, series: str, resolution: str
) -> None:
    params = {
        **RANGE,
        "resolution": resolution,
        "agg": "mean",
        "fill": "null",
        "max_points": "5000",
    }
    expected = httpx.get(f"{live_api.url}/v1/series/{series}/data", params=params).json()
    assert len(expected["points"]) > 20

    query = httpx.QueryParams({"series": series, **RANGE, "resolution": resolution})
    browser.get(f"{live_api.url}/?{query}")
    assert wait_for_chart(browser) == "ok", browser.find_element(By.ID, "status").text
    chart = browser.find_element(By.ID, "chart")
    assert chart.get_attribute("data-points") == str(len(expected["points"]))
    assert chart.get_attribute("data-drawn") == str(len(expected["points"]))
    assert chart.get_attribute("data-resolution") == resolution

    drawn = browser.execute_script("return Array.from(window.gridtsChart.data[1]);")
    assert drawn == [p["value"] for p in expected["points"]]
    if series == "f_soll_aktiv":  # the 06:00-07:30 gap is drawn as a gap, not bridged
        assert None in drawn
    times = browser.execute_script("return Array.from(window.gridtsChart.data[0]);")
    assert times[0] == 1619827200  # 2021-05-01T00:00:00Z, the first window start
    assert browser.execute_script(COUNT_STROKE_PIXELS) > 200  # the line is on the canvas
    status = browser.find_element(By.ID, "status").text
    assert status.startswith(f"{len(expected['points'])} points of {series} at {resolution}")
    options = browser.find_elements(By.CSS_SELECTOR, "#series option")
    assert {o.get_attribute("value") for o in options} >= {"enduse", "f_soll_aktiv"}


def test_page_shows_the_api_error(live_api: LiveApi, browser: webdriver.Chrome) -> None:
    query = httpx.QueryParams({"series": "f_soll_aktiv", **RANGE, "resolution": "30s"})
    browser.get(f"{live_api.url}/?{query}")
    assert wait_for_chart(browser) == "error"
    status = browser.find_element(By.ID, "status").text
    assert status == ("resolution: 5760 points would exceed max_points=5000; resolution=1m fits")
