// Karn dashboard: polls /api/runs/<run>?log_after=N (one run) or /api/compare?runs=a,b (runs side by side) every
// second and redraws. Charts are uPlot 1.6.32 (static/uPlot.iife.min.js, MIT: static/uPlot.LICENSE.txt), shipped with
// the page: nothing is fetched from the network.
"use strict";

const POLL_MS = 1000;
const CHART_HEIGHT = 240;
const COLORS = ["#4ea1ff", "#ffb84e", "#7bd88f", "#ff6b6b", "#c792ea", "#5ce1e6", "#f78c6c", "#d4d4d4"];
const STAGE_COLORS = {
  UNKNOWN: "#444", DORMANT: "#2a2e35", GERMINATED: "#7bd88f", TRAINING: "#5ce1e6", BLENDING: "#4ea1ff",
  HOLDING: "#c792ea", FOSSILIZED: "#ffd84e", PRUNED: "#ff6b6b", EMBARGOED: "#a04848", RESETTING: "#666",
};

// Seed events marked on the accuracy chart (LiveRun's SEED_MARKS): a triangle at the event's epoch, one row per kind
// along the bottom of the plot, in this order.
const MARK_COLORS = { germinate: "#7bd88f", level: "#c792ea", fossilize: "#ffd84e", prune: "#ff6b6b" };
const MARK_KINDS = Object.keys(MARK_COLORS);
const BASELINE = { color: "#d4d4d4", dash: [6, 4] };  // the host-only baseline: grey, dashed
const DASHED = [6, 4];  // a run's host-only baseline in the comparison: the run's colour, dashed
const DELTA_RATIO = "|δ|/|x|";  // a seed's output relative to the host features reaching it (SeedEpoch.delta_ratio)
const FONT = "12px system-ui, sans-serif";
const AXIS = {
  stroke: "#8a8f98", font: FONT, labelFont: FONT, labelSize: 18,
  grid: { stroke: "#2a2e35", width: 1 }, ticks: { stroke: "#2a2e35", width: 1, size: 4 },
};
// Every x axis counts something whole (epochs, episodes, PPO rounds): ticks only at whole, round steps.
const WHOLE_STEPS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];

const state = {
  run: null, logAfter: 0, env: 0, timer: null, snapshot: null,
  runs: [], compare: [],  // the run listing; the runs ticked for comparison, in the order ticked
  generation: 0, polling: false,  // a poll answered after the selection changed is dropped
};
const charts = new Map();  // element id -> { plot, shape, key, spec, zoomed, tip }
const $ = (id) => document.getElementById(id);

function fmt(value, digits = 3) {
  if (value === null || value === undefined) return "-";
  return typeof value === "number" ? value.toFixed(digits) : String(value);
}

// A legend value: four significant digits, whole numbers from 1000 on.
function fmtValue(value) {
  if (value === null || value === undefined) return "-";
  return Math.abs(value) >= 1000 ? Math.round(value).toLocaleString("en") : String(Number(value.toPrecision(4)));
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = String(text);
  if (className) td.className = className;
  return td;
}

// ---------------------------------------------------------------- charts (uPlot)
// spec: { series: [{ name, points: [[x, y]], color, dash, width }], xLabel, yLabel, logY, marks: [{ x, kind, text }],
// boundaries: [{ x, label }], xValue: (x) => text for the legend }. A y that is null (or <= 0 on a log scale) is a
// gap in its line. The chart's panel (its section) is hidden while no series has a point to draw. The element
// records what it drew, which the tests read: data-points, data-counts (per series), data-ymin / data-ymax,
// data-series (names), data-scale (the uPlot y scale's: log or linear), data-marks, data-mark-kinds (in MARK_KINDS
// order) and data-boundaries.
function chart(id, spec) {
  const el = $(id);
  const drawable = (y) => typeof y === "number" && Number.isFinite(y) && (!spec.logY || y > 0);
  const ys = spec.series.map((s) => s.points.map((p) => p[1]).filter(drawable));
  record(el, spec, ys);
  const empty = ys.every((values) => values.length === 0);
  el.closest("section").hidden = empty;
  if (empty) { drop(el.id); return; }
  draw(el, spec, aligned(spec, drawable));
}

function record(el, spec, ys) {
  const all = ys.flat();
  const marks = spec.marks || [];
  el.dataset.points = String(all.length);
  el.dataset.counts = ys.map((values) => values.length).join(", ");
  el.dataset.series = spec.series.map((s) => s.name).join(", ");
  el.dataset.marks = String(marks.length);
  el.dataset.markKinds = MARK_KINDS.filter((k) => marks.some((m) => m.kind === k)).join(", ");
  el.dataset.boundaries = String((spec.boundaries || []).length);
  if (all.length) {
    el.dataset.ymin = String(Math.min(...all)); el.dataset.ymax = String(Math.max(...all));
  } else {
    delete el.dataset.ymin; delete el.dataset.ymax;
    el.dataset.scale = spec.logY ? "log" : "linear";  // nothing drawn: what the chart would use
  }
}

// uPlot's aligned columns: every x of any series, mark or boundary, sorted; per series its y at each x: a number,
// null (a gap: the line breaks) or undefined (the series has no point there: the line is drawn across it).
function aligned(spec, drawable) {
  const xs = new Set();
  for (const s of spec.series) for (const p of s.points) xs.add(p[0]);
  for (const m of spec.marks || []) xs.add(m.x);
  for (const b of spec.boundaries || []) xs.add(b.x);
  const xv = [...xs].sort((a, b) => a - b);
  const index = new Map(xv.map((x, i) => [x, i]));
  const columns = spec.series.map((s) => {
    const y = new Array(xv.length).fill(undefined);
    for (const [x, v] of s.points) y[index.get(x)] = drawable(v) ? v : null;
    return y;
  });
  return [xv, ...columns];
}

// Create the chart, or give it the new data (keeping a zoom the user made), or rebuild it when its series changed.
function draw(el, spec, data) {
  const shape = JSON.stringify([spec.series.map((s) => [s.name, s.color, s.dash, s.width]), spec.logY, spec.xLabel, spec.yLabel]);
  const key = JSON.stringify([data, spec.marks, spec.boundaries]);
  let c = charts.get(el.id);
  if (c && c.shape !== shape) { drop(el.id); c = undefined; }
  if (!c) {
    c = { shape, key, spec, zoomed: false };
    el.replaceChildren();
    c.plot = new uPlot(options(el, c), data, el);
    c.tip = document.createElement("div"); c.tip.className = "mark-tip"; c.tip.hidden = true;
    c.plot.over.appendChild(c.tip);
    c.legend = document.createElement("div"); c.legend.className = "mark-legend";
    el.appendChild(c.legend);
    c.resize = new ResizeObserver(() => {
      const width = el.clientWidth;
      if (width > 0 && Math.abs(width - c.plot.width) > 1) c.plot.setSize({ width, height: CHART_HEIGHT });
    });
    c.resize.observe(el);
    charts.set(el.id, c);
  } else if (c.key !== key) {
    c.key = key; c.spec = spec;
    c.plot.setData(data, !c.zoomed);
  }
  c.spec = spec;
  markLegend(c);
  el.dataset.scale = c.plot.scales.y.distr === 3 ? "log" : "linear";
}

function drop(id) {
  const c = charts.get(id);
  if (!c) return;
  c.resize.disconnect(); c.plot.destroy(); charts.delete(id);
}

function options(el, c) {
  const spec = c.spec;
  return {
    width: Math.max(el.clientWidth, 320), height: CHART_HEIGHT,
    scales: { x: { time: false }, y: spec.logY ? { distr: 3, log: 10, range: logRange } : {} },
    series: [
      { label: spec.xLabel, value: (u, x, si, idx) => (idx === null ? "latest" : (c.spec.xValue || fmtValue)(x)) },
      ...spec.series.map((s, i) => ({
        label: s.name, stroke: s.color || COLORS[i % COLORS.length], dash: s.dash, width: s.width || 1.5,
        points: { size: 5 }, value: (u, y, si, idx) => fmtValue(idx === null ? latest(u.data[si]) : y),
      })),
    ],
    axes: [{ ...AXIS, label: spec.xLabel, incrs: WHOLE_STEPS }, { ...AXIS, label: spec.yLabel, size: 58 }],
    cursor: { drag: { x: true, y: false } },  // drag across to zoom; uPlot resets on double-click
    legend: { live: true },
    hooks: {
      setScale: [(u, key) => { if (key === "x") c.zoomed = zoomedIn(u); }],
      draw: [(u) => drawOverlays(u, c.spec)],
      setCursor: [(u) => hoverMarks(u, c)],
    },
  };
}

// With the cursor off the chart the legend shows each series' latest value.
function latest(column) {
  for (let i = column.length - 1; i >= 0; i--) if (column[i] !== null && column[i] !== undefined) return column[i];
  return null;
}

// A log scale from the round value (1, 2 or 5 times a power of ten) below the data to the one above it: uPlot's own
// snaps out to whole decades, which left most of a loss chart empty, and an unrounded end gets an unround tick.
function logRange(u, min, max) {
  if (min === null || max === null) return [0.1, 1];
  const round = (v) => { const decade = 10 ** Math.floor(Math.log10(v)); return [0.5, 1, 2, 5, 10, 20].map((m) => m * decade); };
  return [round(min).filter((v) => v <= min * 0.999).pop(), round(max).find((v) => v >= max * 1.001)];
}

function zoomedIn(u) {
  const xs = u.data[0];
  return xs.length > 0 && (u.scales.x.min > xs[0] || u.scales.x.max < xs[xs.length - 1]);
}

// Episode boundaries as dotted vertical lines labelled at the top; seed events as triangles, one row per kind, along
// the bottom of the plot. Drawn on uPlot's canvas in device pixels (uPlot.pxRatio: sharp on HiDPI screens).
function drawOverlays(u, spec) {
  const px = uPlot.pxRatio;
  const { left, top, width, height } = u.bbox;
  const ctx = u.ctx;
  ctx.save();
  ctx.beginPath(); ctx.rect(left, top, width, height); ctx.clip();
  ctx.font = `${11 * px}px system-ui, sans-serif`;
  ctx.textAlign = "left"; ctx.textBaseline = "alphabetic";  // uPlot's axes leave theirs set on the shared context
  for (const b of spec.boundaries || []) {
    const x = Math.round(u.valToPos(b.x, "x", true)) + 0.5;
    ctx.strokeStyle = "#9aa0aa"; ctx.lineWidth = px; ctx.setLineDash([2 * px, 3 * px]);
    ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
    ctx.fillStyle = "#9aa0aa"; ctx.fillText(b.label, x + 4 * px, top + 12 * px);
  }
  ctx.setLineDash([]);
  for (const m of spec.marks || []) {
    const x = u.valToPos(m.x, "x", true);
    const base = top + height - (2 + 9 * MARK_KINDS.indexOf(m.kind)) * px;
    ctx.fillStyle = MARK_COLORS[m.kind];
    ctx.beginPath(); ctx.moveTo(x - 4 * px, base); ctx.lineTo(x + 4 * px, base); ctx.lineTo(x, base - 7 * px);
    ctx.closePath(); ctx.fill();
  }
  ctx.restore();
}

// Hover text for the seed events at the cursor's epoch.
function hoverMarks(u, c) {
  const idx = u.cursor.idx;
  const x = idx === null || idx === undefined ? null : u.data[0][idx];
  const here = (c.spec.marks || []).filter((m) => m.x === x);
  c.tip.hidden = here.length === 0;
  if (!here.length) return;
  c.tip.textContent = here.map((m) => m.text).join("\n");
  const at = u.valToPos(x, "x");
  const flip = at > u.over.clientWidth * 0.6;  // near the right edge: show it on the left of the cursor
  c.tip.style.left = flip ? "" : `${at + 10}px`;
  c.tip.style.right = flip ? `${u.over.clientWidth - at + 10}px` : "";
  c.tip.style.bottom = `${12 + 9 * MARK_KINDS.length}px`;
}

function markLegend(c) {
  const items = [];
  if ((c.spec.boundaries || []).length) items.push(["boundary", "#9aa0aa", "episode start"]);
  for (const kind of MARK_KINDS) {
    if ((c.spec.marks || []).some((m) => m.kind === kind)) items.push(["", MARK_COLORS[kind], kind]);
  }
  c.legend.replaceChildren(...items.flatMap(([cls, color, text]) => {
    const glyph = document.createElement("i"); glyph.className = cls; glyph.style.borderBottomColor = color;
    return [glyph, document.createTextNode(text)];
  }));
}

// ---------------------------------------------------------------- episodes end to end
// The traces of an environment (past episodes, then the current one), laid end to end on one x axis: episode i of
// the list covers x = i * length + 1 .. i * length + length (length: the run's epochs per episode). A boundary
// marks each episode's start, and a null point there breaks the lines between one episode and the next.
function endToEnd(traces, length) {
  const out = { accuracy: [], baseline: [], marks: [], boundaries: [] };
  traces.forEach((t, i) => {
    const start = i * length + 0.5;
    const at = (epoch) => i * length + epoch;
    const gap = i > 0 ? [[start, null]] : [];
    out.boundaries.push({ x: start, label: `episode ${t.episode}` });
    out.accuracy.push(...gap, ...t.accuracy.map(([epoch, y]) => [at(epoch), y]));
    out.baseline.push(...gap, ...t.baseline.map(([epoch, y]) => [at(epoch), y]));
    out.marks.push(...t.seed_marks.map((m) => ({
      x: at(m.epoch), kind: m.kind, text: `episode ${t.episode}, epoch ${m.epoch}: ${m.kind} ${m.slot} (${m.seed_id})`,
    })));
  });
  return out;
}

// The legend's x: which episode and epoch a point of an end-to-end axis is.
function episodeEpoch(traces, length) {
  return (x) => {
    const i = Math.floor((x - 0.5) / length);
    const epoch = x - i * length;
    if (i < 0 || i >= traces.length) return fmtValue(x);
    return Number.isInteger(epoch) ? `ep ${traces[i].episode} · epoch ${epoch}` : `episode ${traces[i].episode} starts`;
  };
}

function traces(env) {
  return [...env.past_episodes, { episode: env.episode, accuracy: env.accuracy, baseline: env.baseline, seed_marks: env.seed_marks }];
}

// ---------------------------------------------------------------- the header: run, provenance, process
function renderHeader(s) {
  const status = $("status");
  status.textContent = s.status;
  status.className = "status " + s.status;
  const ranks = s.started && s.started.world_size > 1 ? `, ${s.started.world_size} ranks (${s.started.parallel_mode})` : "";
  const started = s.started ? `${s.started.task} / ${s.started.policy}, ${s.started.n_envs} env(s) × ${s.started.episode_length} epochs${ranks}` : "waiting for TRAINING_STARTED";
  $("summary").textContent = `${started} · ${s.events} events · ${s.episodes.length} episode(s) · ${s.invalid_actions} invalid · ${s.gate_refusals} gate refusal(s) · ${s.internal_level_changes} level change(s) · ${s.governor_rollbacks} rollback(s)`;
  renderProvenance(s.started, s.system);
}

// Where the run came from (TRAINING_STARTED's provenance) and what the process used at the latest epoch.
function renderProvenance(started, system) {
  $("provenance").hidden = !started;
  if (!started) return;
  const p = started.provenance;
  const commit = $("prov-commit");
  commit.replaceChildren(document.createTextNode(p.git_commit === null ? "no git checkout" : `commit ${p.git_commit.slice(0, 7)}`));
  commit.title = p.git_commit === null ? "not run from a git checkout" : p.git_commit;
  if (p.git_dirty) {
    const dirty = document.createElement("span"); dirty.className = "dirty"; dirty.textContent = " (dirty)";
    dirty.title = "the checkout had uncommitted changes"; commit.appendChild(dirty);
  }
  $("prov-command").textContent = command(p.command_line);
  $("prov-command").title = p.command_line.join(" ");
  $("prov-versions").textContent = `esper ${p.esper_version} · torch ${p.torch_version} · Python ${p.python_version}`;
  $("prov-host").textContent = `${p.host_name} (${p.platform}) · device ${started.device}`;
  $("system").textContent = systemText(system);
}

// The command as typed: the program by its name, not the virtual environment's path to it.
function command(argv) {
  return [argv[0].split("/").pop(), ...argv.slice(1)].join(" ");
}

function systemText(m) {
  if (m === null) return "no epoch yet";
  const parts = [`RSS ${m.rss_mb.toFixed(0)} MiB`, `CPU ${m.cpu_seconds.toFixed(1)} s`];
  if (m.cuda_peak_mb !== null) parts.push(`CUDA peak ${m.cuda_peak_mb.toFixed(0)} MiB`);
  return parts.join(" · ");
}

// ---------------------------------------------------------------- one run's panels
function renderEnvs(s) {
  const body = $("envs").tBodies[0];
  body.replaceChildren(...s.envs.map((e) => {
    const tr = document.createElement("tr");
    for (const v of [e.env, e.episode, e.epoch, fmt(e.val_accuracy, 1), fmt(e.train_loss), e.live_seeds, e.seed_params, e.last_action, fmt(e.last_reward)]) {
      tr.appendChild(cell(v));
    }
    return tr;
  }));
}

// The selected environment's recent episodes end to end: its accuracy, the host-only baseline of each episode
// (heuristic and random runs write one for env 0 after each episode) and the seed events at their epochs.
function renderAccuracy(s) {
  const env = selectedEnv(s);
  const shown = env ? traces(env) : [];
  const first = shown.length ? shown[0].episode : 0;
  $("accuracy-env").textContent = env ? `env ${env.env} · episode${shown.length > 1 ? `s ${first}–${env.episode}` : ` ${env.episode}`}` : "no epochs yet";
  const length = s.started ? s.started.episode_length : 1;
  const lines = endToEnd(shown, length);
  const series = env ? [{ name: `env ${env.env} val acc`, points: lines.accuracy }] : [];
  if (shown.some((t) => t.baseline.length)) series.push({ name: "host-only baseline", points: lines.baseline, ...BASELINE });
  chart("chart-accuracy", {
    series, xLabel: "epoch (episodes end to end)", yLabel: "val accuracy (%)",
    marks: lines.marks, boundaries: shown.length > 1 ? lines.boundaries : [], xValue: episodeEpoch(shown, length),
  });
}

function renderCharts(s) {
  renderAccuracy(s);
  const finals = [{ name: "final val acc", points: s.episodes.map((o, i) => [i + 1, o.final_accuracy]) }];
  if (s.episodes.some((o) => o.baseline_accuracy !== null)) {
    finals.push({ name: "host-only final val acc", points: s.episodes.map((o, i) => [i + 1, o.baseline_accuracy]), ...BASELINE });
  }
  chart("chart-episodes", { series: finals, xLabel: "episode (in the order they ended)", yLabel: "val accuracy (%)" });
  chart("chart-reward", {
    series: s.envs.slice(0, 4).map((e) => ({ name: `env ${e.env} step reward`, points: e.rewards })),
    xLabel: "epoch", yLabel: "reward",
  });
  chart("chart-episode-reward", {
    series: [{ name: "episode reward", points: s.episodes.map((o, i) => [i + 1, o.reward]) }],
    xLabel: "episode", yLabel: "reward",
  });
  renderLosses(s);
  // Policy loss is signed (and entropy near 0 is the point to see): a linear scale.
  chart("chart-ppo", {
    series: [
      { name: "policy loss", points: s.ppo.map((u) => [u.round, u.policy_loss]) },
      { name: "value loss", points: s.ppo.map((u) => [u.round, u.value_loss]) },
      { name: "entropy", points: s.ppo.map((u) => [u.round, u.entropy]) },
    ],
    xLabel: "PPO round", yLabel: "",
  });
}

// Train and val loss of the selected environment's current episode, on a log scale: a loss falls by decades.
function renderLosses(s) {
  const env = selectedEnv(s);
  $("losses-env").textContent = env ? `env ${env.env}` : "no epochs yet";
  const losses = env ? env.losses : [];
  chart("chart-losses", {
    series: [
      { name: "train loss", points: losses.map((p) => [p[0], p[1]]) },
      { name: "val loss", points: losses.map((p) => [p[0], p[2]]) },
    ],
    xLabel: "epoch", yLabel: "loss", logY: true,
  });
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
  chart("chart-delta-ratio", { series, xLabel: "epoch", yLabel: DELTA_RATIO, logY: true });
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
      tr.appendChild(cell(text, cls));
    }
    tr.hidden = filter !== "" && !tr.textContent.includes(filter);
    body.appendChild(tr);
    state.logAfter = Math.max(state.logAfter, e.seq);
  }
  while (body.rows.length > 2000) body.deleteRow(0);
}

// ---------------------------------------------------------------- the run list and the comparison
function renderRunList() {
  $("runs-count").textContent = `(${state.runs.length})`;
  $("runs").tBodies[0].replaceChildren(...state.runs.map((r) => {
    const tr = document.createElement("tr"); tr.dataset.run = r.run_id;
    const tick = document.createElement("input"); tick.type = "checkbox"; tick.value = r.run_id;
    tick.onchange = () => setCompare(tick.checked ? [...state.compare, r.run_id] : state.compare.filter((id) => id !== r.run_id));
    const pick = document.createElement("td"); pick.appendChild(tick);
    const link = document.createElement("a"); link.href = `#run=${encodeURIComponent(r.run_id)}`; link.textContent = r.run_id;
    link.onclick = (event) => { event.preventDefault(); setCompare([]); $("run-select").value = r.run_id; selectRun(r.run_id); };
    const name = document.createElement("td"); name.appendChild(link);
    tr.append(pick, name, cell(`${r.task || "-"} / ${r.policy || "-"}`), cell(r.status), cell(fmt(r.episodes, 0)),
      cell(fmt(r.final_accuracy, 1)), cell(r.started || "-"));
    return tr;
  }));
  syncTicks();
}

function syncTicks() {
  for (const tr of $("runs").tBodies[0].rows) {
    const ticked = state.compare.includes(tr.dataset.run);
    tr.querySelector("input").checked = ticked;
    tr.classList.toggle("selected", ticked);
  }
  $("compare-clear").disabled = state.compare.length === 0;
}

// The runs to compare, kept in the address (?compare=a,b) so a comparison can be bookmarked or shared.
function setCompare(ids) {
  state.compare = ids;
  const url = new URL(location.href);
  if (ids.length) url.searchParams.set("compare", ids.join(",")); else url.searchParams.delete("compare");
  history.replaceState(null, "", url);
  showView();
  poll();
}

function comparing() {
  return state.compare.length >= 2;
}

function showView() {
  $("compare-view").hidden = !comparing();
  $("run-view").hidden = comparing();
  document.body.dataset.view = comparing() ? "compare" : "run";
  state.generation += 1;
  syncTicks();
}

// A run's line: its colour, and wider the earlier it is drawn, so a run whose curve lies on another's still shows
// around it (runs seeded alike often share long stretches).
function runLine(runs, i) {
  return { color: COLORS[i % COLORS.length], width: 1.5 + 1.25 * (runs.length - 1 - i) };
}

function renderCompare(data) {
  const runs = data.runs;
  const color = (i) => COLORS[i % COLORS.length];
  $("status").textContent = "comparing"; $("status").className = "status comparing";
  $("summary").textContent = `${runs.length} runs: ${runs.map((r) => r.run_id).join(" vs ")}`;
  $("provenance").hidden = true;  // each run's provenance is in the comparison table
  $("compare-names").textContent = runs.map((r) => r.run_id).join(" vs ");
  $("compare-table").tBodies[0].replaceChildren(...runs.map((r, i) => compareRow(r, color(i))));
  const perEpisode = (pick) => runs.map((r, i) => ({ name: r.run_id, ...runLine(runs, i), points: r.episodes.map((o, k) => [k + 1, pick(o)]) }));
  const withBaselines = (series, baseline) => series.flatMap((s, i) => (
    baseline[i].points.some((p) => p[1] !== null) ? [s, baseline[i]] : [s]));
  chart("chart-compare-final", {
    series: withBaselines(perEpisode((o) => o.final_accuracy), runs.map((r, i) => ({
      name: `${r.run_id} host-only`, color: color(i), dash: DASHED, points: r.episodes.map((o, k) => [k + 1, o.baseline_accuracy]),
    }))),
    xLabel: "episode (in the order they ended)", yLabel: "final val accuracy (%)",
  });
  renderCompareCurves(runs);
  chart("chart-compare-reward", { series: perEpisode((o) => o.reward), xLabel: "episode", yLabel: "episode reward" });
  chart("chart-compare-params", { series: perEpisode((o) => o.added_params), xLabel: "episode", yLabel: "added params" });
  document.body.dataset.compared = runs.map((r) => r.run_id).join(",");
}

// Env 0's per-epoch accuracy of each run, its kept episodes end to end; episode starts are marked when every run
// has the same episode length (otherwise their episodes do not line up). The host-only baselines stay in the final
// accuracy chart: per epoch they would double the lines (and runs seeded alike share one baseline).
function renderCompareCurves(runs) {
  const lengths = runs.map((r) => (r.started ? r.started.episode_length : 1));
  const lines = runs.map((r, i) => endToEnd(r.accuracy, lengths[i]));
  const series = runs.map((r, i) => ({ name: r.run_id, ...runLine(runs, i), points: lines[i].accuracy }));
  const longest = lines.reduce((a, b) => (b.boundaries.length > a.boundaries.length ? b : a), lines[0]);
  const same = lengths.every((l) => l === lengths[0]);
  chart("chart-compare-accuracy", {
    series, xLabel: "epoch (episodes end to end)", yLabel: "val accuracy (%)",
    boundaries: same && longest.boundaries.length > 1 ? longest.boundaries : [],
  });
}

function compareRow(r, color) {
  const tr = document.createElement("tr"); tr.dataset.run = r.run_id;
  const name = document.createElement("td");
  const swatch = document.createElement("span"); swatch.className = "swatch"; swatch.style.background = color;
  name.append(swatch, document.createTextNode(r.run_id));
  const last = r.episodes.length ? r.episodes[r.episodes.length - 1] : null;
  const p = r.started ? r.started.provenance : null;
  const commit = p === null ? "-" : p.git_commit === null ? "no checkout" : p.git_commit.slice(0, 7) + (p.git_dirty ? " (dirty)" : "");
  const what = r.started ? `${r.started.task} / ${r.started.policy}` : "-";
  tr.append(name, cell(what), cell(r.status), cell(r.episodes.length), cell(fmt(last && last.final_accuracy, 1)),
    cell(fmt(last && last.baseline_accuracy, 1)), cell(fmt(last && last.added_params, 0)), cell(commit),
    cell(p === null ? "-" : command(p.command_line), "command"));
  return tr;
}

// ---------------------------------------------------------------- polling
async function poll() {
  if (state.polling) return;  // one request at a time; the next tick asks again
  const generation = state.generation;
  state.polling = true;
  try {
    if (comparing()) {
      await pollCompare(generation);
    } else if (state.run) {
      await pollRun(generation);
    }
    $("error").hidden = true;
  } catch (err) {
    $("error").hidden = false; $("error").textContent = String(err);
  } finally {
    state.polling = false;
  }
}

async function fetchJson(url) {
  const response = await fetch(url);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error);
  return data;
}

async function pollRun(generation) {
  const data = await fetchJson(`/api/runs/${encodeURIComponent(state.run)}?log_after=${state.logAfter}`);
  if (generation !== state.generation) return;  // the page moved on to another run or a comparison
  state.snapshot = data;
  renderHeader(data); renderEnvs(data); renderCharts(data); renderActions(data); renderLanes(data); renderDeltaRatios(data);
  appendLog(data.log);
  document.body.dataset.events = String(data.events);
  document.body.dataset.status = data.status;
}

async function pollCompare(generation) {
  const data = await fetchJson(`/api/compare?runs=${state.compare.map(encodeURIComponent).join(",")}`);
  if (generation !== state.generation) return;
  renderCompare(data);
}

function selectRun(runId) {
  state.run = runId; state.logAfter = 0; state.env = 0; state.generation += 1;
  $("log").tBodies[0].replaceChildren();
  location.hash = `run=${encodeURIComponent(runId)}`;
  poll();
}

async function init() {
  renderLegend();
  state.runs = await fetchJson("/api/runs");
  const select = $("run-select");
  select.replaceChildren(...state.runs.map((r) => new Option(`${r.run_id} (${r.status})`, r.run_id)));
  const wanted = decodeURIComponent((location.hash.match(/run=([^&]+)/) || [])[1] || "");
  const initial = state.runs.some((r) => r.run_id === wanted) ? wanted : (state.runs[0] && state.runs[0].run_id);
  const asked = new URLSearchParams(location.search).get("compare");
  state.compare = asked ? asked.split(",").filter((id) => id !== "") : [];
  renderRunList();
  showView();
  select.onchange = () => { setCompare([]); selectRun(select.value); };
  $("compare-clear").onclick = () => setCompare([]);
  $("env-select").onchange = () => {
    state.env = Number($("env-select").value);
    if (state.snapshot) { renderLanes(state.snapshot); renderDeltaRatios(state.snapshot); renderAccuracy(state.snapshot); renderLosses(state.snapshot); }
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

init().catch((err) => { $("error").hidden = false; $("error").textContent = String(err); });
