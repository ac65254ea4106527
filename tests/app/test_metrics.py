"""The API's Prometheus metrics (app.metrics): by route template and error kind."""

from __future__ import annotations

import httpx

from tests.app.conftest import DATA, DAY


async def test_metrics_by_route_template_and_error_kind(api: httpx.AsyncClient) -> None:
    await api.get(DATA, params={**DAY, "resolution": "1h"})
    await api.get("/v1/series/nope")
    text = (await api.get("/metrics")).text
    assert (
        'gridts_api_request_duration_seconds_count{method="GET",'
        'route="/v1/series/{name}/data",status="200"}'
    ) in text
    assert 'route="/v1/series/{name}",status="404"' in text
    assert 'gridts_api_errors_total{kind="unknown_series"}' in text
    assert (
        'gridts_api_flux_query_duration_seconds_count{language="flux",outcome="ok",query="data"}'
    ) in text
    assert "f_soll_aktiv" not in text  # no label per series name
