// The series page: pick a series, a range and a time zone, fetch /v1/series/{name}/data, plot it
// with uPlot. The chart element reports what happened in data-* attributes (status, points
// received, values drawn, resolution, partial windows, zone), which the browser test reads.
"use strict";

const $ = (id) => document.getElementById(id);
const chartEl = $("chart");
const STROKE = "#1f6feb";
const PARTIAL = "#e8590c";
const HOUR = 3600e3;
let chart = null;
let inputZone = "UTC"; // the zone the start and end fields are written in

function headers() {
  const token = $("token").value.trim();
  if (token) localStorage.setItem("gridts-token", token);
  return token ? { Authorization: "Bearer " + token } : {};
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

// ---- Time zones: every time the page shows or reads is a 24-hour ISO wall clock in one zone.

const pad = (n, width = 2) => String(n).padStart(width, "0");
const formats = new Map();

// The zone named in the field ("" is UTC); an Error naming tz when the browser does not know it.
function zoneOf(text) {
  const zone = text.trim() || "UTC";
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
  } catch {
    throw new Error("tz: " + JSON.stringify(zone) + " is not a time zone (IANA name such as Europe/Zurich)");
  }
  return zone;
}

// The wall clock of an instant (ms) in a zone: {y, mo, d, h, mi, s}.
function wall(ms, zone) {
  let format = formats.get(zone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone: zone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric",
      hour: "numeric", minute: "numeric", second: "numeric",
    });
    formats.set(zone, format);
  }
  const p = {};
  for (const { type, value } of format.formatToParts(new Date(ms))) p[type] = Number(value);
  return { y: p.year, mo: p.month, d: p.day, h: p.hour % 24, mi: p.minute, s: p.second };
}

// How far the zone's wall clock is ahead of UTC at an instant, in ms.
function offsetAt(ms, zone) {
  const w = wall(ms, zone);
  return Date.UTC(w.y, w.mo - 1, w.d, w.h, w.mi, w.s) - Math.floor(ms / 1000) * 1000;
}

const isoDay = (w) => pad(w.y, 4) + "-" + pad(w.mo) + "-" + pad(w.d);
const isoTime = (w, seconds) => pad(w.h) + ":" + pad(w.mi) + (seconds ? ":" + pad(w.s) : "");

// "2021-05-01 14:15" (seconds only when not zero), the form the start and end fields use.
function formatWall(ms, zone) {
  const w = wall(ms, zone);
  return isoDay(w) + " " + isoTime(w, w.s !== 0);
}

// "+02:00"
function formatOffset(ms, zone) {
  const minutes = Math.round(offsetAt(ms, zone) / 60e3);
  const abs = Math.abs(minutes);
  return (minutes < 0 ? "-" : "+") + pad(Math.floor(abs / 60)) + ":" + pad(abs % 60);
}

// What the legend shows for an instant: "2021-05-01 14:15 UTC", "2021-10-31 02:30 +01:00".
function formatInstant(ms, zone) {
  const w = wall(ms, zone);
  return isoDay(w) + " " + isoTime(w, w.s !== 0) + " " + (zone === "UTC" ? "UTC" : formatOffset(ms, zone));
}

// A field's "YYYY-MM-DD HH:mm[:ss]" (or "T" between, or a day alone) read in a zone, as ms UTC.
// A wall time that a DST change skips moves forward by the change; one it repeats is the later.
function parseWall(name, text, zone) {
  const m = /^\s*(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?\s*$/.exec(text);
  if (!m) throw new Error(name + ": " + JSON.stringify(text) + " is not YYYY-MM-DD HH:mm");
  const [y, mo, d, h, mi, s] = m.slice(1).map((v) => Number(v || 0));
  const asUtc = Date.UTC(y, mo - 1, d, h, mi, s);
  const check = new Date(asUtc);
  if (h > 23 || mi > 59 || s > 59 || check.getUTCDate() !== d || check.getUTCMonth() !== mo - 1) {
    throw new Error(name + ": " + JSON.stringify(text) + " is not a date and time");
  }
  const guess = asUtc - offsetAt(asUtc, zone);
  return asUtc - offsetAt(guess, zone);
}

function setZone(zone) {
  inputZone = zone;
  for (const el of document.querySelectorAll(".zone-name")) el.textContent = zone;
}

// ---- The catalog and the default range.

async function api(path) {
  const response = await fetch(path, { headers: headers() });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || response.status + " " + response.statusText);
  return body;
}

// Default range: the last two days the series has, in whole UTC hours, so that the windows the
// page asks for are not cut by the range (a cut window is drawn as partial).
function defaultRange(option) {
  const first = Date.parse(option.dataset.first);
  const last = Date.parse(option.dataset.last);
  const end = Math.ceil((last + 1000) / HOUR) * HOUR;
  const start = Math.max(Math.floor(first / HOUR) * HOUR, end - 48 * HOUR);
  $("start").value = formatWall(start, inputZone);
  $("end").value = formatWall(end, inputZone);
}

async function loadCatalog(params) {
  const { series } = await api("/v1/series");
  const select = $("series");
  select.replaceChildren(...series.map((s) => {
    const option = new Option(s.name + (s.unit ? " [" + s.unit + "]" : ""), s.name);
    option.dataset.first = s.first;
    option.dataset.last = s.last;
    return option;
  }));
  if (params.get("series")) select.value = params.get("series");
  const chosen = select.selectedOptions[0];
  if (chosen && !$("start").value) defaultRange(chosen);
}

// ---- Drawing.

// Points -> uPlot's columns. The page asks fill=none (no empty windows), then breaks the line
// where two values are further apart than 1.5 times their usual (median) spacing: a real gap
// stays a gap, while windows finer than the series' own spacing (15-minute values in 1-minute
// windows) still draw a line. Partial windows go to a series of their own, joined to their whole
// neighbours by a dashed segment. Null rows at the requested start and end keep the range in view.
function columns(points, lo, hi) {
  const values = points.filter((p) => p.value !== null && p.value !== undefined);
  const times = values.map((p) => Date.parse(p.time) / 1000);
  const steps = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
  const gap = steps.length ? 1.5 * steps[Math.floor(steps.length / 2)] : Infinity;
  const xs = [], whole = [], part = [], marks = [], partial = [];
  const push = (x, w, p) => { xs.push(x); whole.push(w); part.push(p); };
  if (!times.length || lo < times[0]) push(lo, null, null);
  values.forEach((p, i) => {
    if (i > 0 && times[i] - times[i - 1] > gap) push((times[i] + times[i - 1]) / 2, null, null);
    if (p.partial === true) {
      marks.push(xs.length);
      partial.push(i === 0 ? "first" : i === values.length - 1 ? "last" : p.time);
      push(times[i], null, p.value);
    } else {
      push(times[i], p.value, null);
    }
  });
  if (!times.length || hi > times[times.length - 1]) push(hi, null, null);
  for (const i of marks) {
    for (const j of [i - 1, i + 1]) if (whole[j] !== null && whole[j] !== undefined) part[j] = whole[j];
  }
  return { xs, whole, part, marks, partial, drawn: values.length };
}

// The y axis as wide as its widest label (uPlot's default, 50 px, cuts 9-digit labels and lets
// the axis title run into them).
function fitLabels(u, values, axisIdx, cycleNum) {
  const axis = u.axes[axisIdx];
  if (cycleNum > 1) return axis._size;
  u.ctx.font = axis.font[0];
  let widest = 0;
  for (const v of values || []) {
    for (const line of String(v ?? "").split("\n")) widest = Math.max(widest, u.ctx.measureText(line).width);
  }
  return Math.ceil(axis.ticks.size + axis.gap + widest / uPlot.pxRatio + 6);
}

// Time ticks: "HH:mm" (":ss" under a minute), the ISO date under the first tick of each day;
// the date alone for ticks a day or more apart.
function timeTicks(zone) {
  return (u, splits, axisIdx, space, incr) => {
    let day = null;
    return splits.map((ts) => {
      if (ts === null || ts === undefined) return null;
      const w = wall(ts * 1e3, zone);
      const date = isoDay(w);
      if (incr >= 86400) return date;
      const label = isoTime(w, incr < 60) + (date !== day ? "\n" + date : "");
      day = date;
      return label;
    });
  };
}

function partialNote(partial) {
  if (!partial.length) return "";
  const named = partial.filter((p) => p === "first" || p === "last");
  const text = named.length === 2 ? "first and last windows partial"
    : named.length === 1 ? named[0] + " window partial"
    : partial.length + " windows partial";
  return "; " + text + " (hollow points: the range cuts them)";
}

function draw(body, zone, lo, hi) {
  const c = columns(body.points, lo, hi);
  const label = body.series + (body.unit ? " [" + body.unit + "]" : "");
  const series = [
    {
      label: "time (" + zone + ")",
      value: (u, ts) => (ts === null || ts === undefined ? "--" : formatInstant(ts * 1e3, zone)),
    },
    { label, stroke: STROKE, width: 1.5, spanGaps: false },
  ];
  const data = [c.xs, c.whole];
  if (c.marks.length) {
    const marks = new Set(c.marks);
    series.push({
      label: "partial window",
      stroke: PARTIAL,
      width: 1.5,
      dash: [6, 4],
      spanGaps: false,
      value: (u, v, si, idx) => (marks.has(idx) && v !== null ? uPlot.fmtNum(v) : "--"),
      points: { show: true, size: 10, width: 2, stroke: PARTIAL, fill: "#fff", filter: () => c.marks },
    });
    data.push(c.part);
  }
  if (chart) chart.destroy();
  chart = new uPlot(
    {
      width: Math.max(400, chartEl.clientWidth || 900),
      height: 440,
      padding: [null, 44, null, null], // room for half the last time label ("2021-05-03")
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), zone),
      series,
      axes: [
        { label: "time (" + zone + ")", values: timeTicks(zone), space: 80, size: 56 },
        { label: body.unit || "", size: fitLabels },
      ],
    },
    data,
    chartEl,
  );
  window.gridtsChart = chart;
  chartEl.dataset.points = String(body.points.length);
  chartEl.dataset.drawn = String(c.drawn);
  chartEl.dataset.resolution = body.resolution;
  chartEl.dataset.partial = c.partial.join(" ");
  chartEl.dataset.zone = zone;
  chartEl.dataset.status = "ok";
  const how = body.resolution === "raw" ? "raw" : "at " + body.resolution + " (" + body.agg + ")";
  setStatus(c.drawn + " values of " + body.series + " " + how + ", times in " + zone + partialNote(c.partial));
}

async function plot(event) {
  if (event) event.preventDefault();
  const name = $("series").value;
  if (!name) return;
  chartEl.dataset.status = "loading";
  try {
    const start = parseWall("start", $("start").value, inputZone);
    const end = parseWall("end", $("end").value, inputZone);
    const zone = zoneOf($("tz").value);
    if (zone !== inputZone) {
      $("start").value = formatWall(start, zone);
      $("end").value = formatWall(end, zone);
      setZone(zone);
    }
    const resolution = $("resolution").value;
    const query = new URLSearchParams({
      start: new Date(start).toISOString().replace(".000Z", "Z"),
      end: new Date(end).toISOString().replace(".000Z", "Z"),
      resolution,
      agg: $("agg").value,
      fill: "none", // empty windows are left out; columns() decides where the line breaks
      max_points: "5000",
    });
    if ($("tz").value.trim() && resolution !== "raw") query.set("tz", zone);
    const shown = new URLSearchParams({ series: name, ...Object.fromEntries(query) });
    for (const key of ["fill", "max_points"]) shown.delete(key);
    history.replaceState(null, "", "?" + shown);
    setStatus("loading " + name + " …");
    const body = await api("/v1/series/" + encodeURIComponent(name) + "/data?" + query);
    draw(body, zone, start / 1000, end / 1000);
  } catch (err) {
    chartEl.dataset.status = "error";
    setStatus(err.message, true);
  }
}

// A new zone re-expresses the range's fields in it (the same instants).
function changeZone() {
  try {
    const zone = zoneOf($("tz").value);
    if (zone === inputZone) return;
    const start = parseWall("start", $("start").value, inputZone);
    const end = parseWall("end", $("end").value, inputZone);
    $("start").value = formatWall(start, zone);
    $("end").value = formatWall(end, zone);
    setZone(zone);
  } catch (err) {
    setStatus(err.message, true);
  }
}

async function main() {
  const params = new URLSearchParams(location.search);
  $("token").value = params.get("token") || localStorage.getItem("gridts-token") || "";
  for (const key of ["resolution", "agg", "tz"]) if (params.get(key)) $(key).value = params.get(key);
  $("controls").addEventListener("submit", plot);
  $("tz").addEventListener("change", changeZone);
  $("series").addEventListener("change", () => {
    defaultRange($("series").selectedOptions[0]);
    plot();
  });
  try {
    setZone(zoneOf($("tz").value));
    for (const key of ["start", "end"]) {
      if (params.get(key)) {
        const ms = Date.parse(params.get(key));
        if (Number.isNaN(ms)) throw new Error(key + ": " + JSON.stringify(params.get(key)) + " is not RFC 3339");
        $(key).value = formatWall(ms, inputZone);
      }
    }
    await loadCatalog(params);
    await plot();
  } catch (err) {
    chartEl.dataset.status = "error";
    setStatus(err.message, true);
  }
}

main();
