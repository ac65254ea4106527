// The series page: pick a series and a range, fetch /v1/series/{name}/data, plot it with uPlot.
// The chart element reports what happened in data-* attributes (status, points received, points
// drawn), which the browser test reads.
"use strict";

const $ = (id) => document.getElementById(id);
const chartEl = $("chart");
let chart = null;

function headers() {
  const token = $("token").value.trim();
  if (token) localStorage.setItem("gridts-token", token);
  return token ? { Authorization: "Bearer " + token } : {};
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

// datetime-local values are wall-clock strings; the page treats them as UTC.
const toInput = (iso) => iso.replace("Z", "").slice(0, 19);
const fromInput = (value) => (value.length === 16 ? value + ":00" : value) + "Z";

async function api(path) {
  const response = await fetch(path, { headers: headers() });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || response.status + " " + response.statusText);
  return body;
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
  if (chosen && !$("start").value) {
    // Default range: the last two days the series has.
    const last = new Date(chosen.dataset.last);
    const end = new Date(last.getTime() + 1000);
    const start = new Date(Math.max(new Date(chosen.dataset.first).getTime(), end - 2 * 86400e3));
    $("start").value = toInput(start.toISOString());
    $("end").value = toInput(end.toISOString());
  }
}

function draw(body) {
  const xs = new Float64Array(body.points.length);
  const ys = new Array(body.points.length);
  body.points.forEach((p, i) => {
    xs[i] = Date.parse(p.time) / 1000;
    ys[i] = p.value;
  });
  const data = [xs, ys];
  const label = body.series + (body.unit ? " [" + body.unit + "]" : "");
  if (chart) chart.destroy();
  chart = new uPlot(
    {
      width: Math.max(400, chartEl.clientWidth || 900),
      height: 400,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      series: [{ label: "time (UTC)" }, { label: label, stroke: "#1f6feb", width: 1.5, spanGaps: false }],
      axes: [{}, { label: body.unit || "" }],
    },
    data,
    chartEl,
  );
  window.gridtsChart = chart;
  chartEl.dataset.points = String(body.points.length);
  chartEl.dataset.drawn = String(chart.data[0].length);
  chartEl.dataset.resolution = body.resolution;
  chartEl.dataset.status = "ok";
}

async function plot(event) {
  if (event) event.preventDefault();
  const name = $("series").value;
  if (!name) return;
  const query = new URLSearchParams({
    start: fromInput($("start").value),
    end: fromInput($("end").value),
    resolution: $("resolution").value,
    agg: $("agg").value,
    fill: "null", // empty windows come as nulls, which uPlot draws as gaps
    max_points: "5000",
  });
  if ($("tz").value.trim()) query.set("tz", $("tz").value.trim());
  chartEl.dataset.status = "loading";
  setStatus("loading " + name + " …");
  try {
    const body = await api("/v1/series/" + encodeURIComponent(name) + "/data?" + query);
    draw(body);
    setStatus(body.points.length + " points of " + body.series + " at " + body.resolution
      + " (" + body.agg + ")");
  } catch (err) {
    chartEl.dataset.status = "error";
    setStatus(err.message, true);
  }
}

async function main() {
  const params = new URLSearchParams(location.search);
  $("token").value = params.get("token") || localStorage.getItem("gridts-token") || "";
  for (const key of ["start", "end"]) if (params.get(key)) $(key).value = toInput(params.get(key));
  for (const key of ["resolution", "agg", "tz"]) if (params.get(key)) $(key).value = params.get(key);
  $("controls").addEventListener("submit", plot);
  try {
    await loadCatalog(params);
    await plot();
  } catch (err) {
    chartEl.dataset.status = "error";
    setStatus(err.message, true);
  }
}

main();
