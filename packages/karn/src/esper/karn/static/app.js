// Karn dashboard: polls /api/runs/<run>?log_after=N every second and redraws. No dependencies, no network.
"use strict";

const POLL_MS = 1000;
const COLORS = ["#4ea1ff", "#ffb84e", "#7bd88f", "#ff6b6b", "#c792ea", "#5ce1e6", "#f78c6c", "#d4d4d4"];
const STAGE_COLORS = {
  UNKNOWN: "#444", DORMANT: "#2a2e35", GERMINATED: "#7bd88f", TRAINING: "#5ce1e6", BLENDING: "#4ea1ff",
  HOLDING: "#c792ea", FOSSILIZED: "#ffd84e", PRUNED: "#ff6b6b", EMBARGOED: "#a04848", RESETTING: "#666",
};

// Seed events marked on the accuracy chart (LiveRun's SEED_MARKS): a short tick at the event's epoch, one row each.
const MARK_COLORS = { germinate: "#7bd88f", level: "#c792ea", fossilize: "#ffd84e", prune: "#ff6b6b" };
const BASELINE = { color: "#d4d4d4", dash: [6, 4] };  // the host-only baseline: grey, dashed

const DELTA_RATIO = "|δ|/|x|";  // a seed's output relative to the host features reaching it (SeedEpoch.delta_ratio)

const state = { run: null, logAfter: 0, env: 0, timer: null, snapshot: null };
const $ = (id) => document.getElementById(id);

function fmt(value, digits = 3) {
  if (value === null || value === undefined) return "-";
  return typeof value === "number" ? value.toFixed(digits) : String(value);
}

// ---------------------------------------------------------------- line chart on a canvas
// logY: a log10 y axis (values <= 0 cannot be drawn on it and are left out, like nulls). A series may have a color
// and a dash pattern. marks: [{x, kind}] drawn as ticks along the bottom of the plot, one row per kind of
// MARK_COLORS, with a second legend line. The canvas records what it drew: data-points (points drawn), data-counts
// (points drawn per series), data-ymin / data-ymax (their range), data-series (names), data-scale, data-marks (marks
// drawn) and data-mark-kinds (their kinds, in MARK_COLORS order).
function drawChart(canvas, series, { xLabel = "", yLabel = "", empty = "no data yet", logY = false, marks = [] } = {}) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, pad = { l: 52, r: 10, t: 10, b: marks.length ? 58 : 42 };
  ctx.clearRect(0, 0, W, H);
  const drawable = (y) => y !== null && (!logY || y > 0);
  const raw = series.flatMap((s) => s.points).filter((p) => drawable(p[1]));
  canvas.dataset.points = String(raw.length);
  canvas.dataset.counts = series.map((s) => s.points.filter((p) => drawable(p[1])).length).join(", ");
  canvas.dataset.scale = logY ? "log" : "linear";
  canvas.dataset.series = series.map((s) => s.name).join(", ");
  canvas.dataset.marks = "0"; canvas.dataset.markKinds = "";
  ctx.fillStyle = "#8a8f98"; ctx.font = "12px system-ui";
  if (raw.length === 0) {
    delete canvas.dataset.ymin; delete canvas.dataset.ymax;
    ctx.fillText(empty, W / 2 - ctx.measureText(empty).width / 2, H / 2);
    return;
  }
  canvas.dataset.ymin = String(Math.min(...raw.map((p) => p[1])));
  canvas.dataset.ymax = String(Math.max(...raw.map((p) => p[1])));
  const ty = (y) => (drawable(y) ? (logY ? Math.log10(y) : y) : null);
  series = series.map((s) => ({ ...s, points: s.points.map(([x, y]) => [x, ty(y)]) }));
  const points = raw.map(([x, y]) => [x, ty(y)]);
  const xs = [...points.map((p) => p[0]), ...marks.map((m) => m.x)];
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...points.map((p) => p[1])), Math.max(...points.map((p) => p[1]))];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const frame = {
    ctx, W, H, pad,
    sx: (x) => pad.l + ((x - x0) / (x1 - x0)) * (W - pad.l - pad.r),
    sy: (y) => H - pad.b - ((y - y0) / (y1 - y0)) * (H - pad.t - pad.b),
  };
  drawAxes(frame, { x0, x1, y0, y1, logY, xLabel });
  drawSeries(frame, series, marks.length ? H - 25 : H - 9);
  drawMarks(canvas, frame, marks);
  canvas.title = yLabel;
}

function drawAxes({ ctx, W, H, pad, sy }, { x0, x1, y0, y1, logY, xLabel }) {
  ctx.strokeStyle = "#2a2e35"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = y0 + ((y1 - y0) * i) / 4;
    ctx.beginPath(); ctx.moveTo(pad.l, sy(y)); ctx.lineTo(W - pad.r, sy(y)); ctx.stroke();
    ctx.fillText((logY ? 10 ** y : y).toPrecision(3), 4, sy(y) + 4);
  }
  ctx.fillText(String(x0), pad.l, H - pad.b + 14);
  ctx.fillText(String(x1), W - pad.r - 20, H - pad.b + 14);
  ctx.fillText(xLabel, W / 2 - 20, H - pad.b + 14);
}

// Each series as a line (broken at nulls; a lone point as a square), and its legend entry at height legendY.
function drawSeries({ ctx, pad, sx, sy }, series, legendY) {
  let legendX = pad.l;
  series.forEach((s, i) => {
    const color = s.color || COLORS[i % COLORS.length];
    ctx.strokeStyle = color; ctx.fillStyle = color; ctx.lineWidth = 1.5;
    ctx.setLineDash(s.dash || []);
    ctx.beginPath();
    let started = false;
    for (const [x, y] of s.points) {
      if (y === null) { started = false; continue; }
      if (!started) { ctx.moveTo(sx(x), sy(y)); started = true; } else { ctx.lineTo(sx(x), sy(y)); }
    }
    ctx.stroke();
    const drawn = s.points.filter((p) => p[1] !== null);
    if (drawn.length === 1) { ctx.fillRect(sx(drawn[0][0]) - 2, sy(drawn[0][1]) - 2, 4, 4); }
    ctx.beginPath(); ctx.moveTo(legendX, legendY - 4); ctx.lineTo(legendX + 12, legendY - 4); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = "#c0c4cc"; ctx.fillText(s.name, legendX + 16, legendY);
    legendX += ctx.measureText(s.name).width + 32;
  });
}

// Seed events as ticks along the bottom of the plot (a row per kind), and a legend line of the kinds drawn.
function drawMarks(canvas, { ctx, H, pad, sx }, marks) {
  const kinds = Object.keys(MARK_COLORS);
  const base = H - pad.b;
  ctx.lineWidth = 2;
  for (const m of marks) {
    const row = kinds.indexOf(m.kind);
    ctx.strokeStyle = MARK_COLORS[m.kind];
    ctx.beginPath(); ctx.moveTo(sx(m.x), base - 7 * row - 1); ctx.lineTo(sx(m.x), base - 7 * row - 7); ctx.stroke();
  }
  const present = kinds.filter((k) => marks.some((m) => m.kind === k));
  canvas.dataset.marks = String(marks.length);
  canvas.dataset.markKinds = present.join(", ");
  let legendX = pad.l;
  for (const kind of present) {
    ctx.strokeStyle = MARK_COLORS[kind];
    ctx.beginPath(); ctx.moveTo(legendX + 4, H - 5); ctx.lineTo(legendX + 4, H - 13); ctx.stroke();
    ctx.fillStyle = "#c0c4cc"; ctx.fillText(kind, legendX + 12, H - 5);
    legendX += ctx.measureText(kind).width + 28;
  }
  ctx.lineWidth = 1;
}

// ---------------------------------------------------------------- panels
function renderHeader(s) {
  const status = $("status");
  status.textContent = s.status;
  status.className = "status " + s.status;
  const ranks = s.started && s.started.world_size > 1 ? `, ${s.started.world_size} ranks (${s.started.parallel_mode})` : "";
  const started = s.started ? `${s.started.task} / ${s.started.policy}, ${s.started.n_envs} env(s) × ${s.started.episode_length} epochs${ranks}` : "waiting for TRAINING_STARTED";
  $("summary").textContent = `${started} · ${s.events} events · ${s.episodes.length} episode(s) · ${s.invalid_actions} invalid · ${s.gate_refusals} gate refusal(s) · ${s.internal_level_changes} level change(s) · ${s.governor_rollbacks} rollback(s)`;
}

function renderEnvs(s) {
  const body = $("envs").tBodies[0];
  body.replaceChildren(...s.envs.map((e) => {
    const tr = document.createElement("tr");
    for (const v of [e.env, e.episode, e.epoch, fmt(e.val_accuracy, 1), fmt(e.train_loss), e.live_seeds, e.seed_params, e.last_action, fmt(e.last_reward)]) {
      const td = document.createElement("td"); td.textContent = String(v); tr.appendChild(td);
    }
    return tr;
  }));
}

// The selected environment's accuracy over its current episode, the host-only baseline of that episode (heuristic
// and random runs write one for env 0 after each episode) and the episode's seed events at their epochs.
function renderAccuracy(s) {
  const env = selectedEnv(s);
  $("accuracy-env").textContent = env ? `env ${env.env} · episode ${env.episode}` : "no epochs yet";
  const series = env ? [{ name: `env ${env.env} val acc`, points: env.accuracy }] : [];
  if (env && env.baseline.length) series.push({ name: "host-only baseline", points: env.baseline, ...BASELINE });
  const marks = env ? env.seed_marks.map((m) => ({ x: m.epoch, kind: m.kind })) : [];
  drawChart($("chart-accuracy"), series, { xLabel: "epoch", yLabel: "val accuracy (%)", marks });
}

function renderCharts(s) {
  const envSeries = (key, pick) => s.envs.slice(0, 4).map((e) => ({ name: `env ${e.env} ${key}`, points: e[pick.field].map(pick.map) }));
  renderAccuracy(s);
  const finals = [{ name: "final val acc", points: s.episodes.map((o, i) => [i + 1, o.final_accuracy]) }];
  if (s.episodes.some((o) => o.baseline_accuracy !== null)) {
    finals.push({ name: "host-only final val acc", points: s.episodes.map((o, i) => [i + 1, o.baseline_accuracy]), ...BASELINE });
  }
  drawChart($("chart-episodes"), finals, { xLabel: "episode" });
  drawChart($("chart-reward"), envSeries("step reward", { field: "rewards", map: (p) => [p[0], p[1]] }), { xLabel: "epoch", empty: "no rewards in this run (yet)" });
  drawChart($("chart-episode-reward"), s.episodes.some((o) => o.reward !== null)
    ? [{ name: "episode reward", points: s.episodes.map((o, i) => [i + 1, o.reward]) }] : [],
    { xLabel: "episode", empty: "no rewards in this run (yet)" });
  const ppo = s.ppo.length
    ? [{ name: "policy loss", points: s.ppo.map((u) => [u.round, u.policy_loss]) },
       { name: "value loss", points: s.ppo.map((u) => [u.round, u.value_loss]) },
       { name: "entropy", points: s.ppo.map((u) => [u.round, u.entropy]) }]
    : [];
  const host = s.envs.length
    ? [{ name: "train loss (env 0)", points: s.envs[0].losses.map((p) => [p[0], p[1]]) },
       { name: "val loss (env 0)", points: s.envs[0].losses.map((p) => [p[0], p[2]]) }]
    : [];
  drawChart($("chart-losses"), ppo.length ? ppo : host, { xLabel: ppo.length ? "PPO round" : "epoch" });
}

function renderActions(s) {
  const total = Object.values(s.ops).reduce((a, b) => a + b, 0);
  $("actions").replaceChildren(...Object.entries(s.ops).map(([op, count]) => {
    const row = document.createElement("div"); row.className = "bar-row"; row.dataset.op = op;
    const bar = document.createElement("div"); bar.className = "bar"; bar.style.width = `${(100 * count) / total}%`;
    const name = document.createElement("span"); name.textContent = op;
    const holder = document.createElement("div"); holder.appendChild(bar);
    const share = document.createElement("span"); share.textContent = `${count} (${((100 * count) / total).toFixed(1)}%)`;
    row.append(name, holder, share);
    return row;
  }));
}

function renderLanes(s) {
  const select = $("env-select");
  const ids = s.envs.map((e) => String(e.env));
  if ([...select.options].map((o) => o.value).join() !== ids.join()) {
    select.replaceChildren(...ids.map((id) => new Option(`env ${id}`, id)));
    select.value = String(state.env);
  }
  const env = selectedEnv(s);
  if (!env) { $("lanes").textContent = "no epochs yet"; return; }
  const head = document.createElement("div"); head.className = "lane head";
  for (const title of ["slot surface blueprint level", DELTA_RATIO, "stage per epoch", "now"]) {
    const th = document.createElement("span"); th.textContent = title; head.appendChild(th);
    if (title === DELTA_RATIO) th.className = "ratio";
  }
  $("lanes").replaceChildren(head, ...Object.entries(env.slots).map(([slot, lane]) => {
    const row = document.createElement("div"); row.className = "lane"; row.dataset.slot = slot;
    const label = document.createElement("span");
    const level = lane.level === null ? "" : ` L${lane.level}/${lane.max_level}`;
    const groups = lane.group_size > 0 ? ` x${lane.group_size}ch` : "";  // a channel ladder's channels per group
    label.textContent = `${slot} ${lane.surface || "-"} ${lane.blueprint || "-"}${level}${groups}`;
    const ratio = document.createElement("span"); ratio.className = "ratio"; ratio.textContent = fmt(lane.delta_ratio);
    const cells = document.createElement("div"); cells.className = "cells";
    lane.stages.forEach((stage, i) => {
      const c = document.createElement("div"); c.className = "cell";
      c.style.background = STAGE_COLORS[stage]; c.title = `epoch ${i + 1}: ${stage}`; cells.appendChild(c);
    });
    const now = document.createElement("span"); now.textContent = lane.stage;
    row.append(label, ratio, cells, now);
    return row;
  }));
}

// |delta| / |x| of each seed of the selected environment's current episode, on a log scale (0.05-0.5 is healthy;
// an unbounded incubator reaches 1000).
function renderDeltaRatios(s) {
  const env = selectedEnv(s);
  $("delta-env").textContent = env ? `env ${env.env}` : "no epochs yet";
  const series = env ? env.delta_ratios.map((c) => ({ name: `${c.slot} ${c.blueprint} (${c.seed_id})`, points: c.points })) : [];
  drawChart($("chart-delta-ratio"), series, { xLabel: "epoch", yLabel: DELTA_RATIO, logY: true, empty: "no seed measured yet" });
}

function selectedEnv(s) {
  return s.envs.find((e) => e.env === state.env) || s.envs[0];
}

function renderLegend() {
  $("lane-legend").replaceChildren(...Object.entries(STAGE_COLORS).flatMap(([stage, color]) => {
    const swatch = document.createElement("span"); swatch.style.background = color;
    return [swatch, document.createTextNode(stage.toLowerCase())];
  }));
}

function appendLog(entries) {
  const body = $("log").tBodies[0];
  const filter = $("log-filter").value.trim();
  for (const e of entries) {
    const tr = document.createElement("tr"); tr.className = e.severity; tr.dataset.type = e.type;
    for (const [cls, text] of [["seq", e.seq], ["where", e.where], ["type", e.type], ["text", e.text]]) {
      const td = document.createElement("td"); td.className = cls; td.textContent = String(text); tr.appendChild(td);
    }
    tr.hidden = filter !== "" && !tr.textContent.includes(filter);
    body.appendChild(tr);
    state.logAfter = Math.max(state.logAfter, e.seq);
  }
  while (body.rows.length > 2000) body.deleteRow(0);
}

// ---------------------------------------------------------------- polling
async function poll() {
  if (!state.run) return;
  try {
    const response = await fetch(`/api/runs/${encodeURIComponent(state.run)}?log_after=${state.logAfter}`);
    const data = await response.json();
    if (!response.ok) throw new Error(data.error);
    $("error").hidden = true;
    state.snapshot = data;
    renderHeader(data); renderEnvs(data); renderCharts(data); renderActions(data); renderLanes(data); renderDeltaRatios(data);
    appendLog(data.log);
    document.body.dataset.events = String(data.events);
    document.body.dataset.status = data.status;
  } catch (err) {
    $("error").hidden = false; $("error").textContent = String(err);
  }
}

function selectRun(runId) {
  state.run = runId; state.logAfter = 0; state.env = 0;
  $("log").tBodies[0].replaceChildren();
  location.hash = `run=${encodeURIComponent(runId)}`;
  poll();
}

async function init() {
  renderLegend();
  const runs = await (await fetch("/api/runs")).json();
  const select = $("run-select");
  select.replaceChildren(...runs.map((r) => new Option(`${r.run_id} (${r.status})`, r.run_id)));
  const wanted = decodeURIComponent((location.hash.match(/run=([^&]+)/) || [])[1] || "");
  const initial = runs.some((r) => r.run_id === wanted) ? wanted : (runs[0] && runs[0].run_id);
  select.onchange = () => selectRun(select.value);
  $("env-select").onchange = () => {
    state.env = Number($("env-select").value);
    if (state.snapshot) { renderLanes(state.snapshot); renderDeltaRatios(state.snapshot); renderAccuracy(state.snapshot); }
  };
  $("log-filter").oninput = () => {
    const f = $("log-filter").value.trim();
    for (const tr of $("log").tBodies[0].rows) tr.hidden = f !== "" && !tr.textContent.includes(f);
  };
  if (!initial) { $("status").textContent = "no runs"; return; }
  select.value = initial;
  selectRun(initial);
  state.timer = setInterval(poll, POLL_MS);
}

init();
