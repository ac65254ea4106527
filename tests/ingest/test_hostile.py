"""Hostile files: each gives a clear error or clearly rejected rows, never a crash or a hang."""

from __future__ import annotations

import gzip
import random
import subprocess
import sys
from pathlib import Path

import pytest

HEADER = b"Datum Zeit;A:f_soll_aktiv [Hz]\r\n"
GOOD = b"Sa. 01.05.21 00:00:30;50\r\nSa. 01.05.21 00:01:00;49,99\r\n"


def dry_run(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ingest",
            "load",
            str(path),
            "--dry-run",
            "--output",
            "/dev/null",
            "--quiet",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def junk() -> bytes:
    rng = random.Random(42)
    return bytes(rng.randrange(256) for _ in range(65536))


CASES: dict[str, tuple[bytes, str]] = {
    "binary junk": (junk(), "no data row found"),
    "binary junk after a header": (HEADER + GOOD + junk(), "rows rejected"),
    "100 MB single line": (b"A" * (100 << 20), "longer than 1 MiB"),
    "100 MB data row": (
        HEADER + GOOD + b"Sa. 01.05.21 00:01:30;" + b"5" * (100 << 20),
        "longer than 1 MiB",
    ),
    "long row": (
        HEADER + GOOD + b"Sa. 01.05.21 00:01:30;" + b"5" * 5000 + b"\n",
        "longer than 4096",
    ),
    "mixed delimiters": (HEADER + GOOD + b"Sa. 01.05.21 00:01:30,50\r\n", "expected 2 columns"),
    "latin-1 bytes in a row": (HEADER + GOOD + b"Sa. 01.05.21 00:01:30;50\xb0\r\n", "undecodable"),
    "31 February": (HEADER + GOOD + b"So. 31.02.21 00:00:00;50\r\n", "impossible date"),
    "25 o'clock": (HEADER + GOOD + b"Sa. 01.05.21 25:00:00;50\r\n", "impossible date or time"),
    "far future": (
        b"t;A:x [Hz]\n2021-05-01 00:00:00;1\n2501-05-01 00:00:00;1\n",
        "outside 1970-2200",
    ),
    "only blank lines": (b"\r\n\r\n   \r\n", "empty"),
    "header only": (HEADER, "no data row found"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_file_fails_clearly(name: str, tmp_path: Path) -> None:
    content, message = CASES[name]
    path = tmp_path / "hostile.csv"
    path.write_bytes(content)
    errors = tmp_path / "errors.csv"
    proc = dry_run(path, "--errors-file", str(errors))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    shown = proc.stderr + (errors.read_text(errors="replace") if errors.exists() else "")
    assert message in shown, shown[-2000:]


def test_bom_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + HEADER + GOOD)
    proc = subprocess.run(
        [sys.executable, "-m", "ingest", "load", str(path), "--dry-run", "--quiet"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("f_soll_aktiv,unit=Hz value=50 ")


def test_corrupt_gzip_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "f.csv.gz"
    path.write_bytes(gzip.compress(HEADER + GOOD * 1000)[:200])
    proc = dry_run(path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "f.csv.gz" in proc.stderr


def test_gzip_and_stdin_read_like_files(tmp_path: Path) -> None:
    path = tmp_path / "f.csv.gz"
    path.write_bytes(gzip.compress(HEADER + GOOD))
    from_gz = subprocess.run(
        [sys.executable, "-m", "ingest", "load", str(path), "--dry-run", "--quiet"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    from_stdin = subprocess.run(
        [sys.executable, "-m", "ingest", "load", "-", "--dry-run", "--quiet"],
        input=(HEADER + GOOD).decode(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert from_gz.returncode == 0, from_gz.stderr
    assert from_gz.stdout == from_stdin.stdout
    assert len(from_gz.stdout.splitlines()) == 2


def test_unknown_zone_and_bad_flags_are_usage_errors(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(HEADER + GOOD)
    for args, message in [
        (["--tz", "Mars/Olympus"], "unknown time zone"),
        (["--series", "a b"], "invalid series name"),
        (["--batch-size", "0"], "must be at least 1"),
        (["--tag", "novalue"], "KEY=VALUE"),
    ]:
        proc = dry_run(path, *args)
        assert proc.returncode == 2
        assert message in proc.stderr
