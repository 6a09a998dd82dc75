// crus status page: reads the crus API (see api/openapi.yaml), follows its
// event stream, and draws each session's nodes on a canvas.
"use strict";

const API = document.body.dataset.api;

// One character per node (api.Nodes.codes): label and colour.
const CODES = {
  p: ["pending", "#d4d8de"],
  q: ["draining", "#f2c14e"],
  d: ["drained", "#f08a24"],
  b: ["rebooting", "#2f6fd0"],
  r: ["returning", "#7ea8ea"],
  s: ["resuming", "#3fb0c4"],
  f: ["failing", "#f07070"],
  l: ["releasing", "#b79be0"],
  U: ["upgraded", "#2f9e55"],
  F: ["failed", "#d03030"],
  S: ["skipped", "#8b929c"],
  T: ["untouched", "#a9c79a"],
  D: ["done", "#444444"],
};

const COUNTS = [
  ["upgraded", "U"], ["failed", "F"], ["in_flight", "b"], ["pending", "p"], ["skipped", "S"], ["untouched", "T"],
];

const state = {
  sessions: new Map(), // id → summary
  current: null,       // id shown
  nodes: null,         // api.Nodes of the current session, with names
  cell: 8,
  cols: 1,
  nodesTimer: null,
  nodesBusy: false,
  listTimer: null,
  timelineAt: 0,
};

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

async function getJSON(path) {
  const r = await fetch(API + path, { headers: { Accept: "application/json" } });
  if (!r.ok) {
    let detail = r.status + " " + r.statusText;
    try { const p = await r.json(); detail = (p.title || "") + ": " + (p.detail || ""); } catch (_) { /* not a problem body */ }
    throw new Error(detail);
  }
  return r.json();
}

function showError(err) {
  const live = $("#live");
  live.textContent = String(err.message || err);
  live.className = "live";
}

function fmtTime(s) {
  if (!s) return "";
  const d = new Date(s);
  return d.toISOString().replace("T", " ").slice(0, 16) + " UTC";
}

function fmtDur(ms) {
  if (!(ms > 0)) return "";
  const m = Math.round(ms / 60000);
  return m >= 60 ? Math.floor(m / 60) + "h" + String(m % 60).padStart(2, "0") + "m" : m + "m";
}

// stepText says where a session is: "3 of 10", or "batch 7" for the
// rolling and scheduled strategies, which number their batches as they
// take them.
function stepText(s) {
  if (s.strategy === "rolling" || s.strategy === "scheduled") return "batch " + s.step;
  return s.steps ? `${s.step} of ${s.steps}` : String(s.step);
}

// ---------- the list ----------

function miniBar(c) {
  const bar = el("span", { class: "mini" });
  for (const [key, code] of COUNTS) {
    if (!c[key]) continue;
    bar.append(el("span", { style: `width:${(100 * c[key]) / Math.max(c.nodes, 1)}%;background:${CODES[code][1]}` }));
  }
  return bar;
}

function renderList() {
  state.listTimer = null;
  const body = $("#sessions tbody");
  const rows = [...state.sessions.values()].sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
  body.replaceChildren(...rows.map((s) => {
    const tr = el("tr", { "data-id": s.upgrade_id },
      el("td", { class: "mono" }, s.upgrade_id),
      el("td", {}, el("span", { class: "state " + s.state }, s.state)),
      el("td", {}, s.stage + (s.paused ? " (paused)" : "") + (s.result ? " — " + s.result : "")),
      el("td", {}, stepText(s)),
      el("td", {}, miniBar(s.counts)),
      el("td", {}, `${s.counts.upgraded + s.counts.failed + s.counts.skipped + s.counts.untouched} / ${s.counts.nodes}`),
      el("td", {}, fmtTime(s.created_at)));
    tr.addEventListener("click", () => { location.hash = "#/s/" + s.upgrade_id; });
    return tr;
  }));
  $("#empty").hidden = rows.length > 0;
}

function scheduleList() {
  if (!state.listTimer) state.listTimer = setTimeout(renderList, 250);
}

async function loadList() {
  try {
    const list = await getJSON("/sessions");
    state.sessions = new Map(list.map((s) => [s.upgrade_id, s]));
    renderList();
    if (state.current && state.sessions.has(state.current)) renderHead(state.sessions.get(state.current));
  } catch (err) {
    showError(err);
  }
}

// ---------- one session ----------

function renderHead(s) {
  $("#sid").textContent = s.upgrade_id;
  const c = s.counts;
  const items = [
    ["state", el("span", { class: "state " + s.state }, s.state)],
    ["stage", s.stage + (s.paused ? " (paused)" : "") + (s.cancel ? " (cancelling)" : "")],
    ["step", stepText(s)],
    ["strategy", s.strategy],
    ["out of service", `${c.in_flight} (cap ${s.upgrade_step_size})`],
    ["template", s.upgrade_template_id],
    ["groups", `${s.starting_label} → ${s.upgrading_label} / ${s.failed_label}`],
    ["started", fmtTime(s.started_at || s.created_at)],
  ];
  if (s.ended_at) items.push(["ended", fmtTime(s.ended_at)], ["took", fmtDur(new Date(s.ended_at) - new Date(s.started_at || s.created_at))]);
  if (s.result) items.push(["result", s.result]);
  if (s.abort) items.push(["aborted", s.abort]);
  // What holds the session back right now (a backend that cannot be read).
  for (const c of s.conditions || []) items.push([c.kind.replaceAll("_", " "), el("span", { class: "condition", title: "since " + fmtTime(c.since) }, c.message)]);
  $("#head").replaceChildren(...items.map(([k, v]) => el("span", {}, el("b", {}, k + ": "), v)));
  $("#counts").replaceChildren(...COUNTS.map(([key, code]) =>
    el("div", { class: "count", style: `border-left-color:${CODES[code][1]}` },
      el("div", { class: "n", "data-count": key }, c[key]),
      el("div", { class: "l" }, key.replace("_", " ")))));
  $("#bar").replaceChildren(...COUNTS.filter(([key]) => c[key] > 0).map(([key, code]) =>
    el("span", { style: `width:${(100 * c[key]) / Math.max(c.nodes, 1)}%;background:${CODES[code][1]}`, title: `${key}: ${c[key]}` })));
  // The timeline image is drawn by the server; fetch it again now and
  // then while the session moves.
  const now = Date.now();
  if (now - state.timelineAt > 5000 || s.completed) {
    state.timelineAt = now;
    $("#timeline").src = "timeline/" + encodeURIComponent(s.upgrade_id) + ".svg?t=" + now;
  }
}

function renderLegend() {
  $("#legend").replaceChildren(...Object.entries(CODES).filter(([k]) => k !== "D").map(([, [label, colour]]) =>
    el("span", {}, el("i", { style: "background:" + colour }), label)));
}

function layoutGrid(n) {
  const wrap = $(".grid-wrap");
  const width = Math.max(200, wrap.clientWidth - 14);
  let cell = n <= 300 ? 18 : n <= 1500 ? 12 : n <= 5000 ? 8 : n <= 20000 ? 6 : 4;
  state.cell = cell;
  state.cols = Math.max(1, Math.floor(width / cell));
  const rows = Math.ceil(n / state.cols);
  const canvas = $("#grid");
  const dpr = window.devicePixelRatio || 1;
  canvas.style.width = state.cols * cell + "px";
  canvas.style.height = rows * cell + "px";
  canvas.width = Math.round(state.cols * cell * dpr);
  canvas.height = Math.round(rows * cell * dpr);
}

function drawGrid() {
  const nodes = state.nodes;
  if (!nodes) return;
  const codes = nodes.codes;
  const canvas = $("#grid");
  const ctx = canvas.getContext("2d");
  const dpr = window.devicePixelRatio || 1;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const cell = state.cell, gap = cell >= 8 ? 1 : 0, cols = state.cols;
  let last = "";
  for (let i = 0; i < codes.length; i++) {
    const code = codes[i];
    if (code !== last) {
      ctx.fillStyle = (CODES[code] || CODES.D)[1];
      last = code;
    }
    ctx.fillRect((i % cols) * cell, Math.floor(i / cols) * cell, cell - gap, cell - gap);
  }
  const counts = {};
  for (const ch of codes) counts[ch] = (counts[ch] || 0) + 1;
  $("#grid-info").textContent = `${codes.length} nodes, sorted by xname; ` +
    Object.entries(counts).map(([k, v]) => `${v} ${(CODES[k] || CODES.D)[0]}`).join(", ");
}

function renderFailed() {
  const failed = state.nodes.failed;
  $("#failed-n").textContent = failed.length ? `(${failed.length})` : "(none)";
  const shown = failed.slice(0, 500);
  $("#failed tbody").replaceChildren(...shown.map((n) =>
    el("tr", {}, el("td", { class: "mono" }, n.xname), el("td", { class: "mono" }, n.wlm_name), el("td", {}, n.reason))));
  const msgs = state.nodes.messages.slice(-200).reverse();
  $("#messages").replaceChildren(...msgs.map((m) => el("li", {}, m)));
}

async function loadNodes() {
  state.nodesTimer = null;
  const id = state.current;
  if (!id || state.nodesBusy) return;
  state.nodesBusy = true;
  try {
    const withNames = !state.nodes || state.nodes.session !== id;
    const n = await getJSON(`/sessions/${encodeURIComponent(id)}/nodes` + (withNames ? "?names=true" : ""));
    if (state.current !== id) return;
    if (!withNames) {
      n.xnames = state.nodes.xnames;
      n.wlm_names = state.nodes.wlm_names;
    }
    const relayout = !state.nodes || state.nodes.codes.length !== n.codes.length;
    state.nodes = n;
    if (relayout) layoutGrid(n.codes.length);
    drawGrid();
    renderFailed();
  } catch (err) {
    showError(err);
  } finally {
    state.nodesBusy = false;
  }
}

function scheduleNodes() {
  if (!state.nodesTimer) state.nodesTimer = setTimeout(loadNodes, 700);
}

function hover(ev) {
  const tip = $("#tip");
  const nodes = state.nodes;
  if (!nodes || !nodes.xnames) { tip.hidden = true; return; }
  const rect = ev.target.getBoundingClientRect();
  const x = ev.clientX - rect.left, y = ev.clientY - rect.top;
  const col = Math.floor(x / state.cell), row = Math.floor(y / state.cell);
  const i = row * state.cols + col;
  if (col >= state.cols || i < 0 || i >= nodes.codes.length) { tip.hidden = true; return; }
  const [label] = CODES[nodes.codes[i]] || CODES.D;
  const step = nodes.steps[i] ? `, step ${nodes.steps[i]}` : "";
  tip.textContent = `${nodes.xnames[i]} (${nodes.wlm_names[i]}): ${label}${step}`;
  tip.style.left = Math.min(x + 14, rect.width - 160) + "px";
  tip.style.top = y + 16 + "px";
  tip.hidden = false;
}

// ---------- routing and the live stream ----------

function route() {
  const m = location.hash.match(/^#\/s\/(.+)$/);
  state.current = m ? decodeURIComponent(m[1]) : null;
  $("#list-view").hidden = !!state.current;
  $("#session-view").hidden = !state.current;
  if (state.current) {
    state.nodes = null;
    state.timelineAt = 0;
    const s = state.sessions.get(state.current);
    if (s) renderHead(s);
    loadNodes();
  }
}

function connect() {
  const live = $("#live");
  const es = new EventSource(API + "/events");
  es.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  es.onerror = () => { live.textContent = "reconnecting…"; live.className = "live"; };
  es.addEventListener("session", (e) => {
    const s = JSON.parse(e.data);
    state.sessions.set(s.upgrade_id, s);
    scheduleList();
    if (s.upgrade_id === state.current) {
      renderHead(s);
      scheduleNodes();
    }
  });
  const onEvent = (e) => {
    const ev = JSON.parse(e.data);
    if (ev.session === state.current) scheduleNodes();
  };
  for (const kind of ["node", "stage", "step_started", "message", "done", "cancel"]) es.addEventListener(kind, onEvent);
}

renderLegend();
$("#grid").addEventListener("mousemove", hover);
$("#grid").addEventListener("mouseleave", () => { $("#tip").hidden = true; });
window.addEventListener("hashchange", route);
window.addEventListener("resize", () => { if (state.nodes) { layoutGrid(state.nodes.codes.length); drawGrid(); } });
loadList().then(route);
connect();
setInterval(loadList, 30000);
