// logisync dashboards: draws each panel from /api/query/<name> with the page's filters, and
// refreshes them (and the "data as of" clock) every data-refresh seconds. No framework, no CDN.
"use strict";

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563",
                 "#65a30d", "#9333ea", "#0d9488", "#ea580c"];
const charts = new Map();

function filterQuery() {
  const params = new URLSearchParams(window.location.search);
  params.delete("refresh");
  return params.toString();
}

function formatTime(ms) {
  const d = new Date(ms);
  return d.toISOString().slice(0, 16).replace("T", " ");
}

function formatValue(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return Number.isInteger(value) ? value.toLocaleString("en") : value.toLocaleString("en", {maximumFractionDigits: 4});
  if (typeof value === "string" && /^\d{4}-\d\d-\d\dT/.test(value)) return value.replace("T", " ").replace(/\.000Z$|Z$/, "");
  return String(value);
}

function columnIndex(data, name) {
  const index = data.columns.indexOf(name);
  if (index < 0) throw new Error("column " + name + " not in the result (" + data.columns.join(", ") + ")");
  return index;
}

// Long rows -> Chart.js datasets: one per (series value, y column), or one per y column. A series
// keeps one colour across its y columns (told apart by dashes); SLA columns are long dashes.
function datasets(data, chart, isTime) {
  const xi = columnIndex(data, chart.x);
  const si = chart.series ? columnIndex(data, chart.series) : -1;
  const groups = new Map();
  const labels = [];
  const colours = new Map();
  for (const row of data.rows) {
    const raw = row[xi];
    const x = isTime ? Date.parse(raw) : (typeof raw === "string" && /^\d{4}-\d\d-\d\dT/.test(raw) ? formatTime(Date.parse(raw)) : String(raw));
    if (!isTime && !labels.includes(x)) labels.push(x);
    const series = si >= 0 ? String(row[si]) : "";
    if (!colours.has(series)) colours.set(series, colours.size);
    chart.y.forEach((y, yi) => {
      const name = si >= 0 ? (chart.y.length > 1 ? series + " " + y : series) : y;
      if (!groups.has(name)) groups.set(name, {series: series, y: y, yi: yi, points: []});
      groups.get(name).points.push({x: x, y: row[columnIndex(data, y)]});
    });
  }
  const sets = [];
  for (const [label, group] of groups) {
    const colour = PALETTE[(si >= 0 ? colours.get(group.series) : group.yi) % PALETTE.length];
    const sla = group.y.startsWith("sla");
    sets.push({label: label, data: group.points, borderColor: colour,
               backgroundColor: colour + (chart.kind === "bar" ? (sla ? "55" : "cc") : "33"),
               borderDash: chart.kind !== "line" ? [] : sla ? [6, 4] : [[], [8, 3], [2, 2]][group.yi % 3],
               pointRadius: isTime && !sla ? 2 : 0,
               tension: 0, spanGaps: sla});
  }
  return {labels: labels, datasets: sets};
}

function drawChart(panel, data, chart) {
  const canvas = panel.querySelector("canvas");
  const isTime = chart.kind === "line";
  const old = charts.get(panel.id);
  if (old) old.destroy();
  const shaped = datasets(data, chart, isTime);
  const x = isTime ? {type: "linear", ticks: {callback: (v) => formatTime(v), maxTicksLimit: 8}}
                   : {type: "category", labels: shaped.labels, stacked: chart.stacked};
  const instance = new Chart(canvas, {
    type: chart.kind,
    data: {datasets: shaped.datasets},
    options: {
      animation: false, responsive: true, maintainAspectRatio: false, parsing: true,
      scales: {x: x, y: {beginAtZero: true, stacked: chart.stacked, title: {display: !!chart.unit, text: chart.unit}}},
      plugins: {legend: {position: "bottom"},
                tooltip: {callbacks: {title: (items) => isTime ? formatTime(items[0].parsed.x) : items[0].label}}},
    },
  });
  charts.set(panel.id, instance);
}

function drawTable(panel, data, chart) {
  const body = panel.querySelector(".body");
  body.replaceChildren();
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  for (const name of data.columns) {
    const th = document.createElement("th");
    th.textContent = name;
    head.appendChild(th);
  }
  const tbody = table.createTBody();
  const link = chart.link ? data.columns.indexOf(chart.link) : -1;
  for (const row of data.rows) {
    const tr = tbody.insertRow();
    row.forEach((value, i) => {
      const td = tr.insertCell();
      if (i === link && value) {
        const a = document.createElement("a");
        a.href = "/timeline?delivery=" + encodeURIComponent(value);
        a.textContent = value;
        td.appendChild(a);
      } else {
        td.textContent = formatValue(value);
      }
    });
  }
  body.appendChild(table);
}

function drawStat(panel, data) {
  const body = panel.querySelector(".body");
  body.replaceChildren();
  const row = data.rows[0] || [];
  data.columns.forEach((name, i) => {
    const tile = document.createElement("div");
    tile.className = "stat";
    const value = document.createElement("strong");
    value.textContent = formatValue(row[i]);
    const label = document.createElement("span");
    label.textContent = name.replaceAll("_", " ");
    tile.append(value, label);
    body.appendChild(tile);
  });
}

async function loadPanel(panel, spec) {
  const note = panel.querySelector(".note");
  const response = await fetch("/api/query/" + encodeURIComponent(spec.query) + "?" + filterQuery());
  const data = await response.json();
  if (!response.ok) {
    note.textContent = data.error || ("HTTP " + response.status);
    panel.dataset.state = "error";
    return;
  }
  panel.dataset.rows = String(data.rows.length);
  note.textContent = data.rows.length ? "" : "no rows for these filters";
  if (spec.chart.kind === "table") drawTable(panel, data, spec.chart);
  else if (spec.chart.kind === "stat") drawStat(panel, data);
  else if (data.rows.length) drawChart(panel, data, spec.chart);
  panel.dataset.state = "ready";
}

async function refreshClock() {
  const response = await fetch("/api/clock");
  if (!response.ok) return;
  const clock = await response.json();
  document.getElementById("as-of").textContent = formatValue(clock.as_of);
  document.getElementById("last-flush").textContent = clock.last_flush_at ? formatValue(clock.last_flush_at) : "none";
  document.getElementById("refreshed").textContent = new Date().toISOString().slice(11, 19) + " UTC";
}

async function refreshAll(specs) {
  const panels = document.querySelectorAll("article.panel[data-query]");
  await Promise.all([refreshClock(), ...Array.from(panels, (panel, i) => loadPanel(panel, specs[i]).catch((error) => {
    panel.querySelector(".note").textContent = "could not draw: " + error.message;
    panel.dataset.state = "error";
  }))]);
  document.body.dataset.loaded = "true";
}

function start() {
  const clock = document.getElementById("clock");
  const refresh = clock ? Number(clock.dataset.refresh) : 0;
  for (const id of ["as-of", "last-flush"]) {
    const element = document.getElementById(id);
    if (element) element.textContent = formatValue(element.textContent);
  }
  const refreshed = document.getElementById("refreshed");
  if (refreshed) refreshed.textContent = new Date().toISOString().slice(11, 19) + " UTC";
  const specsElement = document.getElementById("panels");
  if (!specsElement) {  // the timeline page is rendered on the server: reload it to refresh
    document.body.dataset.loaded = "true";
    if (refresh > 0) window.setTimeout(() => window.location.reload(), refresh * 1000);
    return;
  }
  const specs = JSON.parse(specsElement.textContent);
  refreshAll(specs);
  if (refresh > 0) window.setInterval(() => refreshAll(specs), refresh * 1000);
}

document.addEventListener("DOMContentLoaded", start);
