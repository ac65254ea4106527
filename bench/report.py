"""docs/results.md and its plots from the benchmarks' JSON in bench/out/.

make results        # runs the benchmarks, then this
.venv/bin/python bench/report.py   # only re-renders from the last runs
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from load import little_bound  # bench/load.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DOCS = ROOT / "docs"
IMG = DOCS / "img"

LABELS = {
    "parse": "parse + serialise only (--dry-run)",
    "cli": "gridts CLI (python -m ingest load)",
    "cli-tiers": "gridts CLI + rollup tiers 1m,15m,1h",
    "ceiling": "ceiling: pre-gzipped line protocol POSTed",
    "dataframe": "influxdb-client DataFrame write",
    "influx-write": "influx write (Go CLI), annotated CSV",
    "postgres-copy": "PostgreSQL COPY (timestamptz, double)",
}


def load(name: str) -> Any:
    path = OUT / name
    return json.loads(path.read_text()) if path.exists() else None


def ingest_section(lines: list[str]) -> None:
    rows = load("ingest-results.json")
    header = OUT / "ingest-results.txt"
    lines += ["## Ingest", "", "Produced by `make bench` (`.venv/bin/python bench/ingest.py`).", ""]
    if not rows:
        lines += ["_No ingest results yet: run `make bench`._", ""]
        return
    if header.exists():
        text = header.read_text()
        lines += ["```", text.split("\n\n")[0].strip(), "```", ""]
    ceiling = next((r for r in rows if r["method"] == "ceiling"), None)
    lines += [
        "| method | rows | seconds | rows/s | x ceiling | client CPU s | client peak RSS | check |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        rate = r["rows"] / r["seconds"] if r["seconds"] else 0.0
        ratio = (
            f"{rate / (ceiling['rows'] / ceiling['seconds']):.2f}"
            if ceiling and r["method"] not in ("parse",)
            else "n/a"
        )
        lines.append(
            f"| {LABELS.get(r['method'], r['method'])} | {r['rows']:,} | {r['seconds']:.1f} | "
            f"{rate:,.0f} | {ratio} | {r.get('cpu_seconds', 0):.1f} | "
            f"{r.get('client_rss', 0) / 2**20:,.0f} MiB | {r['status']} |"
        )
    parse = next((r for r in rows if r["method"] == "parse"), None)
    if parse and parse.get("cpu_seconds"):
        lines += [
            "",
            f"Parse and serialise alone: **{parse['rows'] / parse['cpu_seconds']:,.0f} rows per "
            "CPU-second** (one process, `--dry-run --output /dev/null`).",
        ]
    rerun = load("ingest-rerun.json")
    if rerun:  # a later run of some methods, e.g. on a quieter machine: shown as it was measured
        base = next((r for r in rerun if r["method"] == "ceiling"), None)
        lines += [
            "",
            "A later run of " + ", ".join(f"`{r['method']}`" for r in rerun) + " alone "
            "(`bench/ingest.py --methods ...`; `bench/out/ingest-rerun.txt`), its ratios within "
            "that run:",
            "",
            "| method | rows | seconds | rows/s | x ceiling | client CPU s | check |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for r in rerun:
            rate = r["rows"] / r["seconds"] if r["seconds"] else 0.0
            ratio = f"{rate / (base['rows'] / base['seconds']):.2f}" if base else "n/a"
            lines.append(
                f"| {LABELS.get(r['method'], r['method'])} | {r['rows']:,} | {r['seconds']:.1f} "
                f"| {rate:,.0f} | {ratio} | {r.get('cpu_seconds', 0):.1f} | {r['status']} |"
            )
    lines += ["", "![ingest rate against the ceiling and the peers](img/ingest-rates.png)", ""]
    writes = [r for r in rows if r["method"] != "parse" and r["seconds"]]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    names = [LABELS.get(r["method"], r["method"]) for r in writes]
    rates = [r["rows"] / r["seconds"] / 1e3 for r in writes]
    colors = ["#1f77b4" if r["method"] == "cli" else "#999999" for r in writes]
    ax.barh(names, rates, color=colors)
    ax.set_xlabel("thousand rows per second (higher is better)")
    ax.set_title(f"Ingest of {writes[0]['rows']:,} rows at 1 s" if writes else "Ingest")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(IMG / "ingest-rates.png", dpi=110)
    plt.close(fig)


def api_section(lines: list[str]) -> None:
    api = load("api.json")
    lines += [
        "## Query API",
        "",
        "Produced by `.venv/bin/python bench/api.py` (in `make bench`).",
        "",
    ]
    if not api:
        lines += ["_No API results yet: run `make bench`._", ""]
        return
    lines += [
        f"Machine: {api.get('machine', '?')}; {api.get('influxd', '')}; Go's profiling off in "
        "influxd (`--pprof-disabled`, as the chart runs it: ADR 0016 addendum). With it on, "
        "influxd's default, the direct queries took 7.5 ms (a day at 30 s) and 26.4 ms (the "
        "year from the tier) in the run before, the API 10.5 and 34.2 ms: ratios 1.40 and "
        "1.29. The API's own time is about the same; InfluxDB's is less.",
        "",
    ]
    rest = api.get("at_rest")
    if rest:
        lines += [
            f"Data at rest (`--at-rest`): influxd with `{' '.join(rest['flags'])}`, every bucket "
            f"compacted (WAL empty, one TSM file per shard, after {rest['waited_seconds']} s) "
            "before the timings, as a node holds data loaded hours before.",
            "",
        ]
    else:
        lines += [
            "Data right after the writes: the points still in influxd's write cache, the "
            "costlier case (docs/capacity.md); `--at-rest` times them compacted.",
            "",
        ]
    lines += [
        "| request | points | API p50 ms | direct Flux p50 ms | ratio | ratio, 95 % interval |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in api.get("latency", {}).items():
        low, high = r.get("ratio_interval") or (None, None)
        interval = "n/a" if low is None else f"{low:.2f} to {high:.2f}"
        lines.append(
            f"| {name} | {r['points']:,} | {r['api_p50_ms']:.1f} | {r['flux_p50_ms']:.1f} | "
            f"{r['ratio']:.2f} | {interval} |"
        )
    lines += [
        "",
        "The interval: the interleaved rounds resampled 2,000 times (bootstrap), the 2.5th and "
        "97.5th percentiles of the ratio of the medians. A target is met when the whole "
        "interval is.",
    ]
    day = api.get("latency", {}).get("one day at 30 s", {})
    if "floor_ratio" in day:
        lines += [
            "",
            f"The floor, one day at 30 s: a bare Python forwarder of the same query "
            f"(`bench/forwarder.py`: uvicorn and the API's aiohttp client, InfluxDB's CSV "
            f"returned as it is, nothing parsed) takes {day['floor_p50_ms']:.1f} ms, "
            f"**{day['floor_ratio']:.2f} x** the direct query, measured in the same interleaved "
            f"run; the API {day['ratio']:.2f} x. What the API adds beyond the hop (FastAPI, the "
            "plan, reading the CSV, the JSON with its `partial` flags) is the difference"
            + (
                ", less what InfluxQL spares: the forwarder sends the Flux query, the API asks "
                "InfluxQL for the same points (below)."
                if "influxql_ratio" in day
                else "."
            ),
        ]
    if "influxql_ratio" in day:
        lines += [
            "",
            f"The API reads the day's points in InfluxQL (ADR 0018). The same points read "
            f"directly in InfluxQL, in the same run: {day['influxql_p50_ms']:.1f} ms; the API "
            f"takes {day['influxql_ratio']:.2f} x that.",
        ]
    for label, v in day.get("variants", {}).items():
        lines += [
            "",
            f"The same API with {label} (`API_INFLUXQL_READS=false`: the day's points read "
            f"in Flux, not in InfluxQL; ADR 0018), in the same interleaved run: "
            f"{v['p50_ms']:.1f} ms, {v['ratio']:.2f} x the direct query; the API "
            f"{day['ratio']:.2f} x.",
        ]
    if "load" in api:
        ld = api["load"]
        lines += [
            "",
            f"{ld['clients']} concurrent clients for {ld['seconds']:.0f} s: {ld['requests']:,} "
            f"requests, {ld['errors']} errors, {ld['req_per_s']:.1f} req/s, p50 "
            f"{ld['p50_ms']:.0f} ms, p99 {ld['p99_ms']:.0f} ms.",
        ]
    if "tier_speedup_15m" in api:
        low, high = api.get("tier_speedup_15m_interval") or (None, None)
        interval = "" if low is None else f" (95 % interval {low:.1f} to {high:.1f} x)"
        lines += [
            "",
            f"Rollup tiers: the 15 m case from the 15 m tier is **{api['tier_speedup_15m']:.1f} x "
            f"faster**{interval} than the same API with the tiers off (the `tiers` row against "
            "the row above it, each side's timings resampled on their own; its direct Flux "
            "reads the tier's stored means).",
        ]
    many = api.get("tier_equals_raw_random")
    if many:
        lines += [
            "",
            f"Exactness: {many['requests']} random requests over the 1 s series (ranges of an "
            "hour to 40 days at unaligned starts, resolutions from 30 s to 1 w, 90 s and 7 m "
            "among them, every aggregate "
            "the tiers answer, four zones, fills) asked of the tiered API and of the one with "
            f"the tiers off: **{many['mismatched']} differed** ({many['windows']:,} windows "
            f"compared; answered from {many['sources']}; {many['refused_raw_only']} refused as "
            "too costly by the tiers-off API only, answered by a tier).",
        ]
    lines += [
        "",
        "The one-year case of the issue (a 1 s series, 365 days at 15 m, 35,040 points) needs "
        "31.5 M points written and rolled up first: `.venv/bin/python bench/api.py --days-1s 365` "
        "(about 10 minutes).",
        "",
    ]
    if "serialise" in api:
        se = api["serialise"]
        lines += [f"Serialising {se['points']:,} points to JSON: p50 {se['p50_ms']:.1f} ms.", ""]


def over_time_section(lines: list[str], res: dict[str, Any], raw: dict[str, Any] | None) -> None:
    """The mix's requests by when they were asked (``bench/load.py``'s slices), the runs side
    by side, and what the requests asked after the ingest ended got."""
    runs = [(label, run) for label, run in (("tiers on", res), ("tiers off", raw or {}))
            if run.get("over_time")]  # fmt: skip
    if not runs:
        return
    lines += [
        "The requests by when they were asked (seconds from the start of the mix):",
        "",
        "| from s | " + " | ".join(f"{label}: req/s, p50 ms, p99 ms" for label, _ in runs) + " |",
        "| ---: |" + " ---: |" * len(runs),
    ]
    slices = {k["from_s"]: k for k in runs[0][1]["over_time"]}
    others = [{k["from_s"]: k for k in run["over_time"]} for _, run in runs[1:]]
    for start, piece in slices.items():
        cells = [piece, *(other.get(start) for other in others)]
        lines.append(
            f"| {start:.0f} | "
            + " | ".join(
                "" if c is None else f"{c['per_second']:.1f}, {c['p50_ms']:.0f}, {c['p99_ms']:.0f}"
                for c in cells
            )
            + " |"
        )
    lines.append("")
    for label, run in runs:
        done = run.get("after_ingest")
        if done:
            lines += [
                f"{label}: the ingest ended {run['ingest_seconds']:.0f} s into the mix; the "
                f"{done['requests']:,} requests asked after it: p50 {done['p50_ms']:.0f} ms, "
                f"p99 {done['p99_ms']:.0f} ms.",
                "",
            ]


def turns(res: dict[str, Any]) -> str:
    """How many data requests each replica worked on at once (ADR 0017)."""
    n = res.get("concurrent_requests")
    if n is None:
        return "every request at work at once (before ADR 0017)"
    if n == 0:
        return "every request at work at once (`API_CONCURRENT_REQUESTS=0`)"
    return (
        f"each replica working on {n} data requests at once, the rest waiting their turn "
        "(`API_CONCURRENT_REQUESTS`, ADR 0017)"
    )


def load_section(lines: list[str]) -> None:
    res = load("load.json")
    lines += ["## Load test", "", "Produced by `make load` (`.venv/bin/python bench/load.py`).", ""]
    if not res:
        lines += ["_No load results yet: run `make load`._", ""]
        return
    gateways = res.get("gateways", 0)
    front = (
        f"behind {gateways} gateways (HAProxy with the chart's configuration, each holding one "
        "queue for every replica, ADR 0020; the clients call them in turn)"
        if gateways
        else "called round-robin"
    )
    lines += [
        f"{res['replicas']} API replicas {front}, {res['clients']} clients mixing "
        f"series, ranges, resolutions and aggregates for {res['seconds']:.0f} s "
        + (
            f"while an ingest wrote (ingest exit status {res['ingest_exit']}; influxd restarted on "
            "its compacted data before each phase)"
            if res.get("ingest", True)
            else "with no ingest writing (`--no-ingest`)"
        )
        + ", rollup tiers "
        f"`{res.get('tiers') or 'off'}`, {turns(res)}: **{res['requests']:,} requests, "
        f"{res['requests_per_second']:.1f} req/s, p50 {res['p50_ms']:.0f} ms, p99 "
        f"{res['p99_ms']:.0f} ms**; statuses {res['statuses']}; answered from "
        f"{res.get('sources', {})}.",
        "",
    ]
    if res.get("influxd_cache_snapshot_size"):
        lines += [
            f"influxd wrote its write cache to TSM files at "
            f"{res['influxd_cache_snapshot_size']} (the chart's `influxdb.cacheSnapshotSize`, "
            "ADR 0019). With InfluxDB's own 25 MB, the same mix served 50 to 53 req/s at p99 "
            "3.0 to 3.2 s on this machine: every read of a series the ingest was writing copied "
            "and sorted all of its cached points.",
            "",
        ]
    raw = res.get("raw")
    if raw:
        lines += [
            "The same mix in the same run with the tiers off (every answer from the raw "
            f"points): {raw['requests']:,} requests, {raw['requests_per_second']:.1f} req/s, "
            f"p50 {raw['p50_ms']:.0f} ms, p99 {raw['p99_ms']:.0f} ms; statuses "
            f"{raw['statuses']}. p99 with the tiers is {res['p99_ms'] / raw['p99_ms']:.2f} x p99 "
            f"without (target: p99 <= 1,000 ms, zero 5xx, fewer 429s).",
            "",
        ]
    cpu_rows = [(label, run["cpu"]) for label, run in (("tiers on", res), ("tiers off", raw or {}))
                if run.get("cpu")]  # fmt: skip
    if cpu_rows:
        parts = list(cpu_rows[0][1]["share"])
        lines += [
            f"Where the machine's {cpu_rows[0][1]['cores']} cores went during the mix (CPU "
            "seconds of each part, and its share of all the cores' time; the rest idle or "
            "other work):",
            "",
            "| run | " + " | ".join(parts) + " |",
            "| --- |" + " ---: |" * len(parts),
        ]
        lines += [
            f"| {label} | "
            + " | ".join(f"{c['cpu_seconds'][k]:.1f} s ({c['share'][k]:.0%})" for k in parts)
            + " |"
            for label, c in cpu_rows
        ]
        lines.append("")
    for label, run in (("tiers on", res), ("tiers off", raw or {})):
        rows = run.get("by_source") or {}
        if rows:
            lines += [
                f"Latency by what answered ({label}):",
                "",
                "| answered by | requests | p50 ms | p99 ms |",
                "| --- | ---: | ---: | ---: |",
            ]
            lines += [
                f"| {k} | {q['requests']:,} | {q['p50_ms']:.0f} | {q['p99_ms']:.0f} |"
                for k, q in rows.items()
            ]
            lines.append("")
    over_time_section(lines, res, raw)
    sweep = res.get("sweep") or []
    if sweep:
        lines += [
            "| clients | req/s | p50 ms | p99 ms |",
            "| ---: | ---: | ---: | ---: |",
        ]
        for s in sweep:
            lines.append(
                f"| {s['clients']} | {s['requests_per_second']:.1f} | {s['p50_ms']:.0f} | "
                f"{s['p99_ms']:.0f} |"
            )
        think = res.get("think") or 0.0
        little = little_bound(res["clients"], think, sweep)
        assert little is not None  # a sweep has a best step
        peak, bound = little
        loop = f"thinking {think:g} s between requests" if think else "in a closed loop"
        lines += [
            "",
            f"The most this mix got here: {peak['requests_per_second']:.1f} req/s (at "
            f"{peak['clients']} clients). {res['clients']} clients {loop} then wait, by "
            f"Little's law, at least {res['clients']} / {peak['requests_per_second']:.1f}"
            + (f" - {think:g}" if think else "")
            + f" = **{bound:.2f} s** per request on average, in whatever order they are served "
            f"(measured at {res['clients']} clients: p50 {res['p50_ms'] / 1000:.2f} s, p99 "
            f"{res['p99_ms'] / 1000:.2f} s).",
            "",
            "![API latency against concurrency](img/api-latency.png)",
            "",
        ]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        xs = [s["clients"] for s in sweep]
        ax.plot(xs, [s["p50_ms"] for s in sweep], marker="o", label="p50")
        ax.plot(xs, [s["p99_ms"] for s in sweep], marker="o", label="p99")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel("latency, ms")
        ax.set_title(f"API latency, {res['replicas']} replicas")
        ax.legend()
        fig.tight_layout()
        fig.savefig(IMG / "api-latency.png", dpi=110)
        plt.close(fig)


def text_section(lines: list[str], title: str, command: str, name: str, note: str = "") -> None:
    """A benchmark's own text output, as it printed it (after ``note``, when given)."""
    path = OUT / name
    lines += [f"## {title}", "", f"Produced by `{command}`.", ""]
    if note:
        lines += [note, ""]
    if not path.exists():
        lines += [f"_No results yet: run `{command}`._", ""]
        return
    lines += ["```", path.read_text().rstrip(), "```", ""]


def main() -> int:
    IMG.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Results",
        "",
        "Measured on this project's own machines (2 cores, shared with other work: compare "
        "ratios measured side by side in one run, not absolute times). Regenerate everything "
        "with `make results`; each section names the command behind its numbers.",
        "",
    ]
    ingest_section(lines)
    api_section(lines)
    load_section(lines)
    text_section(
        lines,
        "Hundreds of series: one wide file, parallel loads, catalog and several series",
        ".venv/bin/python bench/wide.py",
        "wide-results.txt",
    )
    text_section(
        lines,
        "Bytes on disk per point, raw and tiers (docs/capacity.md)",
        ".venv/bin/python bench/capacity.py --days 14 --series 2",
        "capacity-results.txt",
    )
    text_section(
        lines,
        "Before and after the reshape (issue 12): two source trees in one run",
        "git worktree add --detach ../wt-base bbb82f6 && "
        ".venv/bin/python bench/reshape.py --trees base=../wt-base/src,head=src",
        "reshape-results.txt",
        note="The same ingest and API workloads against the tree before issue 12 (`base`, "
        "bbb82f6) and main's HEAD (`head`), one influxd, the trees alternating round by round "
        "and request by request. Compare the ratios, not the times: a ratio whose per-round "
        "spread lies on both sides of 1 is within this machine's noise. What each row measures "
        "and the reading of the latest run: [bench/README.md](../bench/README.md).",
    )
    influxql_section(lines)
    target = DOCS / "results.md"
    text = "\n".join(lines).rstrip() + "\n"
    if target.exists():
        text = keep_earlier(text, target.read_text())
    target.write_text(text)
    print(f"wrote {target}")
    return 0


def sections(text: str) -> list[tuple[str, str]]:
    """A results page as (heading, text) per `## ` section, the text before the first under
    the heading ""."""
    out: list[tuple[str, str]] = [("", "")]
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            out.append((line.strip(), ""))
        out[-1] = (out[-1][0], out[-1][1] + line)
    return out


def keep_earlier(new: str, old: str) -> str:
    """``new``, each section without results of its own (its benchmark's output is not in
    bench/out: not run on this machine) replaced by the same section of ``old``, the page as
    it was: re-rendering after one benchmark keeps the others' last results."""
    earlier = dict(sections(old))
    kept = []
    for heading, body in sections(new):
        missing = any(line.startswith("_No ") for line in body.splitlines())
        kept.append((earlier.get(heading, body) if missing else body).rstrip("\n") + "\n\n")
    return "".join(kept).rstrip("\n") + "\n"


def influxql_section(lines: list[str]) -> None:
    """Plain reads in Flux against InfluxQL by size (bench/influxql.py)."""
    got = load("influxql.json")
    lines += [
        "## Plain reads: Flux against InfluxQL, by size (ADR 0018)",
        "",
        "Produced by `.venv/bin/python bench/influxql.py`.",
        "",
    ]
    if not got:
        lines += ["_No results yet: run `.venv/bin/python bench/influxql.py`._", ""]
        return
    lines += [
        f"The first N points of a 1 s series (compacted), read both ways in the API's own code, "
        f"alternating read by read, {got['repeats']} reads each; {got['influxd']}. p50 per "
        "read, and CPU per read: InfluxDB's and the reading process's. The API asks InfluxQL "
        f"for plain reads of at most {got['most_rows']:,} points (`INFLUXQL_MOST_ROWS`).",
        "",
        "| points | Flux ms | InfluxQL ms | ratio | InfluxDB CPU ms, Flux | InfluxDB CPU ms, "
        "InfluxQL | reader CPU ms, Flux | reader CPU ms, InfluxQL |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in got["sizes"]:
        db, own = r["influxd_cpu_ms"], r["client_cpu_ms"]
        lines.append(
            f"| {r['points']:,} | {r['flux_ms']:.2f} | {r['influxql_ms']:.2f} | "
            f"{r['ratio']:.2f} | {db['flux']:.2f} | {db['influxql']:.2f} | {own['flux']:.2f} | "
            f"{own['influxql']:.2f} |"
        )
    lines.append("")
    if got.get("aggregates"):
        lines += [
            "Windowed aggregates of the same raw points, Flux's `aggregateWindow` against "
            "InfluxQL's `GROUP BY time()`, the answers read whole (InfluxDB's side alone; ADR "
            "0018, addendum: the API's aggregates stay Flux):",
            "",
            "| request | windows | Flux ms | InfluxQL ms | ratio | InfluxDB CPU ms, Flux | "
            "InfluxDB CPU ms, InfluxQL |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in got["aggregates"]:
            db = r["influxd_cpu_ms"]
            lines.append(
                f"| {r['what']}, {r['fn']} ({r['points']:,} points) | {r['windows']:,} | "
                f"{r['flux_ms']:.2f} | {r['influxql_ms']:.2f} | {r['ratio']:.2f} | "
                f"{db['flux']:.2f} | {db['influxql']:.2f} |"
            )
        lines.append("")


if __name__ == "__main__":
    sys.exit(main())
