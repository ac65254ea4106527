"""`helm test` check of a gridts release: the API is ready and answers one query.

Run by the chart's `helm test` Pod as `python -m ops.smoke` in the gridts image.
Environment: API_URL (e.g. http://rel-gridts-api.ns.svc:80), API_TOKEN (optional bearer token).
Exit code 0 when /readyz is 200 and GET /v1/series returns JSON, 1 otherwise.
"""

from __future__ import annotations

import os
import sys
import time

import httpx


def main() -> int:
    base = os.environ["API_URL"].rstrip("/")
    token = os.environ.get("API_TOKEN", "").split(",")[0].strip()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=base, headers=headers, timeout=10.0) as http:
        for attempt in range(10):
            try:
                ready = http.get("/readyz")
                if ready.status_code == 200:
                    break
                reason = f"/readyz answered {ready.status_code}: {ready.text[:200]}"
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            print(f"attempt {attempt + 1}: {reason}", file=sys.stderr, flush=True)
            time.sleep(3)
        else:
            print("FAIL: the API never became ready", file=sys.stderr)
            return 1
        series = http.get("/v1/series")
        if series.status_code != 200:
            print(f"FAIL: /v1/series answered {series.status_code}: {series.text[:200]}")
            return 1
        body = series.json()
        print(f"ok: /readyz 200, /v1/series returned {type(body).__name__} {str(body)[:200]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
