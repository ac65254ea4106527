"""One rule for series names (gridts.names), the same in the ingest, the generator and the API:
every name the ingest writes can be read through the API's path routes, and every name the
rule refuses is refused by all three (issue 11: `.` and `..` were written and unreachable)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from gridts.names import MAX_LENGTH, is_series_name
from ingest.generate import series_names
from tests.app.conftest import ROOT, AppClient, ingest, make_settings
from tests.conftest import InfluxServer

VALID = ["a", "7", "f_soll_aktiv", "site.load-1", "a..b", "a.", "x" * MAX_LENGTH, "9-a_b.c"]
INVALID = [
    "", ".", "..", "...", "_internal", "-x", ".hidden", "x" * (MAX_LENGTH + 1),
    "a b", "a/b", "a\\b", "a,b", "a=b", 'a"b', "zürich", "a\n", "a\t", "a;b", "a%2Fb",
]  # fmt: skip


@pytest.mark.parametrize("name", VALID)
def test_the_rule_accepts(name: str) -> None:
    assert is_series_name(name)
    assert series_names(1, names=[name]) == [name]


@pytest.mark.parametrize("name", INVALID, ids=repr)
def test_the_rule_refuses_in_the_generator_and_the_ingest_cli(name: str) -> None:
    assert not is_series_name(name)
    with pytest.raises(ValueError, match="invalid series name"):
        series_names(1, names=[name])
    done = subprocess.run(
        [sys.executable, "-m", "ingest", "load", "-", f"--series={name}"],
        input="",
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "invalid series name" in done.stderr


async def test_every_name_the_ingest_writes_is_served_and_no_other(
    influx: InfluxServer, bucket: str, tmp_path: Path
) -> None:
    """A long-format file with every valid and invalid name: the valid ones are written and
    read back through both path routes; the others are rejected with their line."""
    names = [n for n in VALID + INVALID if not any(c in n for c in "\n\t;")]  # one cell each
    rows = [f"{name};2021-05-01T00:00:00Z;{VALID.index(name) if name in VALID else -1}"
            for name in names]  # fmt: skip
    source = tmp_path / "names.csv"
    source.write_text("series;time;value\n" + "\n".join(rows) + "\n")
    errors = tmp_path / "errors.csv"
    ingest(influx, bucket, str(source), "--format", "long", "--max-errors", "100",
           "--errors-file", str(errors))  # fmt: skip
    rejected = errors.read_text()
    async with AppClient(make_settings(influx, bucket)) as api:
        catalog = {s["name"] for s in (await api.get("/v1/series")).json()["series"]}
        assert catalog == set(VALID)
        for name in VALID:
            path = quote(name, safe="")
            one = await api.get(f"/v1/series/{path}")
            assert one.status_code == 200, (name, one.text)
            data = await api.get(
                f"/v1/series/{path}/data",
                params={"start": "2021-05-01T00:00:00Z", "end": "2021-05-02T00:00:00Z",
                        "resolution": "raw"},
            )  # fmt: skip
            assert data.status_code == 200, (name, data.text)
            assert [p["value"] for p in data.json()["points"]] == [VALID.index(name)]
        for name in INVALID:
            if name and name not in (".", ".."):  # `..` is another route to any client
                r = await api.get(f"/v1/series/{quote(name, safe='')}")
                assert r.status_code == 404, (name, r.text)
    # each refused name is a rejected line (file line = row + 2), with the reason
    lines = {int(row.split(",")[1]): row for row in rejected.splitlines()[1:]}
    wanted = {i + 2 for i, row in enumerate(rows) if not is_series_name(row.split(";")[0])}
    assert set(lines) == wanted
    assert all("series name" in row for row in lines.values())
