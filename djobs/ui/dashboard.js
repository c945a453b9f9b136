"use strict";
// Every URL is relative to this page, so the dashboard works under any mount prefix. Live updates come
// from the server-sent event stream (api/stream); the page polls only as a fallback and, slowly, for what
// the event log does not carry (worker heartbeats, throughput).
const STATUSES = ["pending", "running", "waiting", "retrying", "paused", "failed", "completed", "cancelled"];
const FINISHED = ["completed", "failed", "cancelled"];
const POLL_MS = 2000, SLOW_MS = 10000, PAGE = 50, EVENT_LINES = 300, STREAM_RETRY_MS = 30000;
const state = { offset: 0, filter: {}, selected: null, evCursor: null, evSeen: new Set(), typesKey: "", busy: false,
  again: false, picked: new Set(), lastTick: 0, pageIds: [] };
const live = { es: null, connected: false, retryAt: 0, timer: null };
const $ = (id) => document.getElementById(id);

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "checked") el.checked = !!v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function ago(iso) {
  if (!iso) return "";
  const s = (Date.now() - Date.parse(iso)) / 1000, a = Math.abs(s);
  const t = a < 60 ? Math.round(a) + "s" : a < 3600 ? Math.round(a / 60) + "m" : a < 86400 ? (a / 3600).toFixed(1) + "h" : (a / 86400).toFixed(1) + "d";
  return s >= 0 ? t + " ago" : "in " + t;
}
const when = (iso) => iso ? h("span", { title: iso }, ago(iso)) : h("span", { class: "muted" }, "–");
const pill = (status) => h("span", { class: "pill s-" + status }, status);
const short = (id) => id ? String(id).slice(0, 8) + "…" + String(id).slice(-4) : "";
const seg = encodeURIComponent;

async function api(path, opts) {
  const res = await fetch("api/" + path, Object.assign({ headers: { "Accept": "application/json" }, credentials: "same-origin" }, opts || {}));
  let body = null;
  try { body = await res.json(); } catch (e) { body = { error: res.status + " " + res.statusText }; }
  if (!res.ok) {
    const err = new Error(res.status === 401 ? "signed out: open the address `djobs ui` printed (it carries the token)" : (body && body.error ? body.error : res.statusText));
    err.status = res.status; throw err;
  }
  return body;
}
const post = (path, body) => api(path, body === undefined ? { method: "POST" } : { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json", "Accept": "application/json" } });

function flash(text, ok) {
  const f = $("flash");
  f.textContent = text; f.className = ok ? "ok" : "err";
  clearTimeout(flash.t); flash.t = setTimeout(() => { f.textContent = ""; }, 6000);
}

async function act(path, confirmText, body) {
  if (confirmText && !window.confirm(confirmText)) return;
  try {
    const r = await post(path, body);
    flash((r.action || "done") + (r.deleted !== undefined ? ` (${r.deleted} deleted)` : "") + " ✓", true);
  } catch (e) { flash(e.message, false); }
  tick();
}
const btn = (label, path, confirmText, cls) => h("button", { class: cls, "data-action": label, onclick: (ev) => { ev.stopPropagation(); act(path, confirmText); } }, label);

function table(el, head, rows, empty) {
  el.replaceChildren(h("tr", {}, head.map(([t, cls]) => h("th", { class: cls }, t))));
  if (!rows.length) el.append(h("tr", {}, h("td", { class: "muted", colspan: head.length }, empty)));
  for (const r of rows) el.append(r);
}

const ALWAYS = ["pending", "running", "failed"];

function limitsText(l) {
  // "run ≤5 (3 held) · 10/s · key run ≤1 · key 1/s": each limit, and the due jobs it holds back.
  const held = l.held_back || {}, parts = [];
  for (const [k, label] of [["running", l.running !== null ? "run ≤" + l.running : null], ["rate", l.rate],
    ["key_running", l.key_running !== null ? "key run ≤" + l.key_running : null], ["key_rate", l.key_rate ? "key " + l.key_rate : null]]) {
    if (label === null || label === undefined) continue;
    parts.push(h("span", { "data-limit": k }, label, held[k] ? h("b", { class: "s-retrying" }, ` (${held[k]} held)`) : ""));
  }
  return parts.flatMap((p, i) => (i ? [" · ", p] : [p]));
}

function renderQueues(queues, limits) {
  limits = limits || {};
  // A limited queue that holds no jobs yet is listed too, with its limits.
  queues = queues.concat(Object.keys(limits).filter((n) => !queues.some((q) => q.name === n))
    .map((name) => ({ name, counts: {}, completed_last_minute: 0, paused: false })));
  queues.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  // Statuses no queue has are left out, so the table fits beside the other panels.
  const shown = STATUSES.filter((s) => ALWAYS.includes(s) || queues.some((q) => q.counts[s]));
  table($("queues"), [["queue"], ...shown.map((s) => [s, "num"]), ["done/min", "num"], ["state"], ["limits"], [""]],
    queues.map((q) => h("tr", { "data-queue": q.name },
      h("td", {}, h("b", {}, q.name)),
      shown.map((s) => h("td", { class: "num" + (q.counts[s] ? " s-" + s : " muted") }, q.counts[s] || 0)),
      h("td", { class: "num" }, q.completed_last_minute),
      h("td", { class: "qstate", title: q.pause_reason || "" }, q.paused ? h("span", { class: "pill s-paused" }, "paused " + ago(q.paused_at)) : "active"),
      h("td", { class: "qlimits" }, limits[q.name] ? limitsText(limits[q.name]) : ""),
      h("td", {}, q.paused ? btn("resume", `queues/${seg(q.name)}/resume`) : btn("pause", `queues/${seg(q.name)}/pause`), " ",
        FINISHED.some((s) => q.counts[s]) ? btn("purge", `queues/${seg(q.name)}/purge`, `Delete every finished job of queue ${q.name} (completed, failed, cancelled)?`, "danger") : ""),
    )), "no queues yet");
}

function renderWorkers(workers) {
  table($("workers"), [["worker"], ["host:pid"], ["queues"], ["running", "num"], ["heartbeat"], ["state"], [""]],
    workers.map((w) => h("tr", {},
      h("td", { class: "mono", title: w.id }, short(w.id)),
      h("td", {}, `${w.host}:${w.pid}`),
      h("td", {}, Object.entries(w.queues || {}).map(([q, n]) => `${q}×${n}`).join(" ")),
      h("td", { class: "num" }, w.running),
      h("td", {}, when(w.last_heartbeat_at)),
      h("td", { title: w.pause_reason || "" }, !w.alive ? "dead" : w.paused ? h("span", { class: "pill s-paused" }, "paused (" + w.pause_mode + ")") : "active"),
      h("td", {}, w.paused
        ? btn("resume", `workers/${seg(w.id)}/resume`)
        : [btn("pause", `workers/${seg(w.id)}/pause`), " ",
           btn("pause now", `workers/${seg(w.id)}/pause?mode=aggressive`, "Pause aggressively? Running handlers are cancelled and their jobs requeued.", "danger")]),
    )), "no live workers");
}

function renderSchedules(schedules) {
  table($("schedules"), [["name"], ["job"], ["spec"], ["queue"], ["next"], ["last"], [""]],
    schedules.map((s) => h("tr", {},
      h("td", {}, h("b", {}, s.name)),
      h("td", {}, s.job),
      h("td", { class: "mono" }, s.spec),
      h("td", {}, s.queue),
      h("td", {}, s.paused ? h("span", { class: "pill s-paused", title: s.pause_reason || "" }, "paused") : when(s.next_fire)),
      h("td", {}, when(s.last_fire)),
      h("td", {}, s.paused ? btn("resume", `schedules/${seg(s.name)}/resume`) : btn("pause", `schedules/${seg(s.name)}/pause`)),
    )), "no schedules");
}

function jobButtons(j) {
  const id = seg(j.id), out = [];
  if (j.status === "failed" || j.status === "cancelled") out.push(btn("retry", `jobs/${id}/retry`));
  if (j.status === "paused") out.push(btn("resume", `jobs/${id}/resume`));
  else if (["pending", "retrying", "waiting", "running"].includes(j.status)) {
    out.push(btn("pause", `jobs/${id}/pause`));
    if (j.status === "running") out.push(btn("pause now", `jobs/${id}/pause?mode=aggressive`, "Pause aggressively? The running handler is cancelled.", "danger"));
  }
  if (!FINISHED.includes(j.status)) out.push(btn("cancel", `jobs/${id}/cancel`, `Cancel job ${j.id} and its sub-jobs?`, "danger"));
  return out.flatMap((b) => [b, " "]);
}

function waitText(j) {
  // What a waiting job waits for: "sleeping until 14:05", "waiting for signal 'approved'", "waiting on sub-jobs".
  if (j.status !== "waiting") return "";
  let at = "";
  if (j.run_at) {
    const t = new Date(j.run_at), today = t.toDateString() === new Date().toDateString();
    at = today ? t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : t.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
  }
  if (j.wait_kind === "sleep") return "sleeping" + (at ? " until " + at : "");
  if (j.wait_kind === "signal") return `waiting for signal '${j.wait_signal || ""}'` + (at ? ` (times out at ${at})` : "");
  return "waiting on sub-jobs";
}

function progressText(p) {
  if (!p) return "";
  const frac = p.total ? ` ${Math.round(100 * p.done / p.total)}%` : "";
  return `${p.done ?? ""}${p.total ? "/" + p.total : ""}${frac}${p.message ? " " + p.message : ""}`;
}

function renderBulk() {
  const n = state.picked.size;
  $("bulk").hidden = n === 0;
  $("bulk-count").textContent = `${n} selected`;
}

function pick(id, on) {
  if (on) state.picked.add(id); else state.picked.delete(id);
  renderBulk();
}

function renderJobs(r) {
  state.pageIds = r.jobs.map((j) => j.id);
  const all = h("input", { type: "checkbox", title: "select this page", checked: r.jobs.length > 0 && r.jobs.every((j) => state.picked.has(j.id)),
    onchange: (e) => { for (const j of r.jobs) pick(j.id, e.target.checked); renderJobs(r); } });
  table($("jobs"), [[all], ["id"], ["type"], ["queue"], ["status"], ["try", "num"], ["created"], ["updated"], ["args / error"], [""]],
    r.jobs.map((j) => h("tr", { class: "click" + (j.id === state.selected ? " sel" : ""), "data-job": j.id, onclick: () => select(j.id) },
      h("td", {}, h("input", { type: "checkbox", class: "pick", checked: state.picked.has(j.id), onclick: (e) => e.stopPropagation(), onchange: (e) => pick(j.id, e.target.checked) })),
      h("td", { class: "mono", title: j.id }, short(j.id)),
      h("td", {}, j.type), h("td", {}, j.queue), h("td", { class: "jstatus" }, pill(j.status)),
      h("td", { class: "num" }, `${j.attempt}/${j.max_retries + 1}`),
      h("td", {}, when(j.created_at)), h("td", {}, when(j.updated_at)),
      h("td", { class: "wrap muted" }, waitText(j) ? h("span", { class: "s-waiting wait", title: j.run_at || "" }, waitText(j))
        : j.error_preview ? h("span", { class: "s-failed" }, j.error_preview) : (j.args_preview || "")),
      h("td", {}, jobButtons(j)),
    )), "no jobs match");
  const total = r.total !== undefined ? ` of ${r.total}` : "";
  $("page").textContent = r.jobs.length ? `${r.offset + 1}–${r.offset + r.jobs.length}${total}` : "";
  $("prev").disabled = r.offset === 0;
  $("next").disabled = !r.has_more;
  $("retry-shown").hidden = state.filter.status !== "failed" || !r.jobs.length;
  renderBulk();
}

async function bulk(action) {
  const ids = [...state.picked];
  if (!ids.length) return;
  if (action !== "retry" && !window.confirm(`${action[0].toUpperCase() + action.slice(1)} ${ids.length} selected job(s)?` + (action === "delete" ? " Unfinished ones are skipped." : ""))) return;
  try {
    const r = await post("jobs/bulk", { action, ids });
    flash(action === "delete" ? `deleted ${r.deleted}, skipped ${r.skipped}` : `${action}: ${r.done.length} done, ${r.skipped.length} skipped`, true);
    state.picked.clear();
  } catch (e) { flash(e.message, false); }
  tick();
}

function kv(pairs) {
  return h("div", { class: "grid2" }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== "").flatMap(([k, v]) => [h("span", { class: "muted" }, k), h("span", {}, v)]));
}
const json = (v) => h("pre", {}, JSON.stringify(v, null, 2));
const link = (id, text) => h("a", { href: "#", onclick: (e) => { e.preventDefault(); select(id); } }, text || short(id));

const STEP_ICONS = { call: "↳", checkpoint: "◆", fanout: "⇉", sleep: "⏾", signal: "⚑" };

function renderWorkflow(w) {
  const times = [];
  const walk = (n) => { const j = n.job; for (const t of [j.created_at, j.started_at, j.completed_at, j.updated_at]) if (t) times.push(Date.parse(t)); (n.children || []).forEach(walk); };
  walk(w.root);
  const t0 = Math.min(...times), span = Math.max(1, Math.max(Date.now(), ...times) - t0);
  const bar = (j) => {
    if (!j.started_at) return h("span", { class: "barbox" });
    const a = Date.parse(j.started_at) - t0, b = (j.completed_at ? Date.parse(j.completed_at) : Date.now()) - t0;
    const el = h("span", { class: "bar", title: `${j.started_at} → ${j.completed_at || "now"}` });
    el.style.left = (100 * a / span).toFixed(2) + "%"; el.style.width = Math.max(0.8, 100 * (b - a) / span).toFixed(2) + "%";
    return h("span", { class: "barbox" }, el);
  };
  const step = (s) => h("li", { class: "step" },
    h("span", { class: "k" }, (STEP_ICONS[s.kind] || "·") + " " + s.kind), s.index !== null && s.index !== undefined ? `#${s.index} ` : "",
    h("b", {}, s.name), " ", s.status === "failed" ? h("span", { class: "s-failed" }, s.error) : h("span", { class: "mono" }, s.value_preview || ""), " ", when(s.at));
  const node = (n) => {
    const j = n.job;
    const li = h("li", { "data-node": j.id }, pill(j.status), " ", h("b", {}, j.type), " ", link(j.id), bar(j), j.error_preview ? h("span", { class: "s-failed" }, j.error_preview) : "");
    if (n.waiting_on || waitText(j)) li.append(h("div", { class: "step" }, "⧗ ", waitText(j) || "waiting on", n.waiting_on ? [" ", h("span", { class: "mono" }, JSON.stringify(n.waiting_on))] : ""));
    if (n.steps && n.steps.length) li.append(h("ul", { class: "tree" }, n.steps.map(step)));
    if (n.children && n.children.length) li.append(h("ul", { class: "tree" }, n.children.map(node)));
    if (n.more_children) li.append(h("div", { class: "muted" }, `… and ${n.more_children} more sub-jobs`));
    return li;
  };
  const crumbs = w.ancestors.length ? h("div", { class: "muted" }, "part of ", w.ancestors.flatMap((a, i) => [i ? " › " : "", link(a.id, `${a.type} ${short(a.id)}`)])) : "";
  return [h("h2", {}, "workflow"), crumbs, h("ul", { class: "tree", id: "workflow" }, node(w.root)), w.truncated ? h("div", { class: "muted" }, "(large workflow: only part is shown)") : ""];
}

function renderDetail(d, wf) {
  const j = d.job;
  $("detail-id").textContent = j.id;
  const parts = [
    h("div", { class: "row" }, pill(j.status), jobButtons(j)),
    kv([["waiting", waitText(j) ? h("span", { class: "s-waiting wait", title: j.run_at || "" }, waitText(j)) : null],
        ["type", j.type], ["queue", j.queue], ["priority", j.priority], ["attempt", `${j.attempt} of ${j.max_retries + 1}`],
        ["created", when(j.created_at)], ["run at", when(j.run_at)], ["started", when(j.started_at)], ["completed", when(j.completed_at)],
        ["heartbeat", j.last_heartbeat_at ? when(j.last_heartbeat_at) : null], ["worker", j.locked_by], ["unique", j.unique_key],
        ["parent", j.parent_id ? link(j.parent_id, j.parent_id) : null],
        ["paused", j.paused_at ? [when(j.paused_at), " ", j.pause_reason || ""] : null],
        ["progress", progressText(j.progress)], ["key", j.key],
        ["meta", j.meta ? h("span", { class: "mono meta" }, JSON.stringify(j.meta)) : null]]),
  ];
  if (d.why && d.why.length) parts.push(h("h2", {}, "why"), h("ul", {}, d.why.map((w) => h("li", {}, w))));
  if (j.last_error) parts.push(h("h2", {}, "last error"), h("pre", {}, j.last_error));
  if (j.last_traceback) parts.push(h("h2", {}, "traceback"), h("pre", {}, j.last_traceback));
  parts.push(h("h2", {}, "args"), json(j.args));
  if (j.result !== null && j.result !== undefined) parts.push(h("h2", {}, "result"), json(j.result));
  if (wf) parts.push(...renderWorkflow(wf));
  else if (d.checkpoints.length) {
    const t = h("table", {});
    table(t, [["#"], ["name"], ["value / error"], ["at"]], d.checkpoints.map((c) => h("tr", {},
      h("td", { class: "num" }, c.call_index ?? "–"), h("td", {}, c.name),
      h("td", { class: "wrap mono" + (c.error ? " s-failed" : "") }, c.error || JSON.stringify(c.value)), h("td", {}, when(c.created_at)))), "");
    parts.push(h("h2", {}, `checkpoints (${d.checkpoints.length})`), t);
  }
  if (d.events.length) parts.push(h("h2", {}, `events (last ${d.events.length})`), h("div", { class: "mono" }, d.events.slice().reverse().map(eventLine)));
  $("detail").replaceChildren(...parts);
  $("detail-box").hidden = false;
  // The signal form lives outside the redrawn detail, so what is typed survives refreshes.
  const form = $("signal");
  form.hidden = FINISHED.includes(j.status);
  if (form.dataset.job !== j.id) { form.dataset.job = j.id; $("s-name").value = j.wait_signal || ""; $("s-payload").value = ""; }
}

function select(id) {
  state.selected = id;
  refreshDetail().catch((e) => flash(e.message, false));
  document.querySelectorAll("#jobs tr.sel").forEach((tr) => tr.classList.remove("sel"));
}
async function refreshDetail() {
  if (!state.selected) return;
  const id = state.selected;
  try {
    const d = await api("jobs/" + seg(id));
    const wf = d.checkpoints.length || d.sub_jobs_total || d.job.parent_id ? await api(`jobs/${seg(id)}/workflow`) : null;
    if (state.selected === id) renderDetail(d, wf);
  } catch (e) {
    if (e.status !== 404) throw e;
    state.selected = null; $("detail-box").hidden = true;  // purged meanwhile: just close the panel
  }
}

function eventLine(e) {
  const data = e.data && Object.keys(e.data).length ? " " + JSON.stringify(e.data) : "";
  const cls = e.kind === "job_failed" ? "s-failed" : e.kind === "job_completed" ? "s-completed" : e.kind.includes("paused") ? "s-paused" : "";
  return h("div", { "data-event": e.id },
    h("span", { class: "muted", title: e.timestamp }, new Date(e.timestamp).toLocaleTimeString()), " ",
    h("span", { class: cls }, e.kind), " ",
    e.job_id ? link(e.job_id) : "",
    e.queue ? ` [${e.queue}]` : "", e.worker_id ? ` @${short(e.worker_id)}` : "", data);
}

function addEvents(events) {
  const box = $("events");
  for (const e of events) {
    if (state.evSeen.has(e.id)) continue;
    state.evSeen.add(e.id); box.prepend(eventLine(e));
    state.evCursor = Math.max(state.evCursor ?? 0, e.id);
  }
  while (box.childNodes.length > EVENT_LINES) box.lastChild.remove();
  if (state.evSeen.size > 5000) state.evSeen = new Set([...state.evSeen].filter((i) => i > state.evCursor - 1000));
}

async function pollEvents() {
  // Without the stream: re-read a short window behind the cursor (an id can commit late), skip ahead when far behind.
  let path = "events?limit=100";
  if (state.evCursor !== null) path = `events?after=${Math.max(0, state.evCursor - 50)}&limit=500`;
  const r = await api(path);
  if (state.evCursor !== null && r.latest - state.evCursor > 1000) { state.evCursor = r.latest - 100; return; }
  addEvents(r.events);
  state.evCursor = Math.max(state.evCursor ?? 0, r.cursor);
}

function setLiveState() {
  const el = $("live-state");
  if (!$("live").checked) { el.textContent = "paused"; el.className = "muted"; return; }
  el.textContent = live.connected ? "● streaming" : "○ polling";
  el.className = live.connected ? "muted" : "off";
}

function soon() {  // many events in a burst: one refresh
  if (live.timer) return;
  live.timer = setTimeout(() => { live.timer = null; tick(); }, 300);
}

function connectStream() {
  if (live.es || !window.EventSource || !$("live").checked || Date.now() < live.retryAt) return;
  const after = state.evCursor !== null ? `?after=${state.evCursor}` : "";
  const es = new EventSource("api/stream" + after);
  live.es = es;
  es.addEventListener("open", () => { live.connected = true; setLiveState(); });
  es.addEventListener("job-event", (m) => { addEvents([JSON.parse(m.data)]); soon(); });
  es.addEventListener("reset", () => soon());
  es.addEventListener("status", (m) => { const s = JSON.parse(m.data); if (s.error) { $("status").textContent = "event log: " + s.error; $("status").className = "err"; } });
  es.onerror = () => {
    live.connected = false; setLiveState();
    if (es.readyState === EventSource.CLOSED) { es.close(); live.es = null; live.retryAt = Date.now() + STREAM_RETRY_MS; }
  };
}

function disconnectStream() {
  if (live.es) { live.es.close(); live.es = null; }
  live.connected = false; setLiveState();
}

function spark(series, kinds) {
  const W = 220, H = 28, n = series.length, max = Math.max(1, ...series.map((p) => kinds.reduce((a, k) => a + p[k], 0)));
  const ns = "http://www.w3.org/2000/svg", svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", W); svg.setAttribute("height", H); svg.setAttribute("class", "spark");
  const colors = { completed: "var(--ok)", failed: "var(--bad)", retried: "var(--warn)" };
  series.forEach((p, i) => {
    let y = H;
    for (const k of kinds) {
      const hgt = (p[k] / max) * (H - 2);
      if (!hgt) continue;
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("x", (i * W) / n); r.setAttribute("width", Math.max(1, W / n - 1));
      r.setAttribute("y", y - hgt); r.setAttribute("height", hgt); r.setAttribute("fill", colors[k]);
      const t = document.createElementNS(ns, "title"); t.textContent = `${p.t}: ${kinds.map((kk) => kk + " " + p[kk]).join(", ")}`;
      r.append(t); svg.append(r); y -= hgt;
    }
  });
  return svg;
}

function renderStats(s) {
  $("stats-span").textContent = `last ${Math.round(s.window_seconds / 60)} min, ${s.bucket_seconds}s buckets`;
  const rows = Object.entries(s.queues).map(([q, d]) => h("tr", {},
    h("td", {}, h("b", {}, q)), h("td", {}, spark(d.series, ["completed", "failed", "retried"])),
    h("td", { class: "num s-completed" }, d.totals.completed), h("td", { class: "num s-failed" }, d.totals.failed),
    h("td", { class: "num s-retrying" }, d.totals.retried)));
  table($("stats"), [["queue"], [""], ["done", "num"], ["failed", "num"], ["retried", "num"]], rows, "no finished jobs in this window");
}

function renderTypes(types) {
  const key = types.join("\n");
  if (key === state.typesKey) return;
  state.typesKey = key;
  const sel = $("e-type"), cur = sel.value;
  sel.replaceChildren(...(types.length ? types.map((t) => h("option", { value: t }, t)) : [h("option", { value: "" }, "no job types registered")]));
  if (types.includes(cur)) sel.value = cur;
}

function jobsPath() {
  const p = new URLSearchParams({ limit: PAGE, offset: state.offset });
  for (const [k, v] of Object.entries(state.filter)) if (v) p.set(k, v);
  return "jobs?" + p.toString();
}

async function tick() {
  if (state.busy) { state.again = true; return; }
  state.busy = true; state.lastTick = Date.now();
  try {
    const [ov, jobs, stats] = await Promise.all([api("overview"), api(jobsPath()), api("stats"), live.connected ? null : pollEvents(), refreshDetail()]);
    renderQueues(ov.queues, ov.limits); renderWorkers(ov.workers); renderSchedules(ov.schedules); renderTypes(ov.job_types);
    renderJobs(jobs); renderStats(stats);
    $("status").textContent = "updated " + new Date().toLocaleTimeString();
    $("status").className = "";
  } catch (e) {
    $("status").textContent = (e.status === 503 ? "database unavailable: " : e.status === 401 ? "" : "error: ") + e.message;
    $("status").className = "err";
  } finally {
    state.busy = false;
    if (state.again) { state.again = false; tick(); }
  }
}

function applyFilter() {
  state.filter = { status: $("f-status").value, queue: $("f-queue").value.trim(), type: $("f-type").value.trim(), meta: $("f-meta").value.trim() };
  state.offset = 0; tick();
}

function init() {
  for (const s of STATUSES) $("f-status").append(h("option", { value: s }, s));
  $("f-apply").addEventListener("click", applyFilter);
  for (const id of ["f-queue", "f-type", "f-meta"]) $(id).addEventListener("keydown", (e) => { if (e.key === "Enter") applyFilter(); });
  $("f-status").addEventListener("change", applyFilter);
  $("f-failed").addEventListener("click", () => { $("f-status").value = "failed"; applyFilter(); });
  $("retry-shown").addEventListener("click", async () => {
    if (!window.confirm(`Retry the ${state.pageIds.length} failed job(s) shown?`)) return;
    try {
      const r = await post("jobs/bulk", { action: "retry", ids: state.pageIds });
      flash(`retry: ${r.done.length} done, ${r.skipped.length} skipped`, true);
    } catch (e) { flash(e.message, false); }
    tick();
  });
  $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); tick(); });
  $("next").addEventListener("click", () => { state.offset += PAGE; tick(); });
  $("detail-close").addEventListener("click", () => { state.selected = null; $("detail-box").hidden = true; });
  for (const action of ["retry", "cancel", "delete"]) $("bulk-" + action).addEventListener("click", () => bulk(action));
  $("bulk-clear").addEventListener("click", () => { state.picked.clear(); tick(); });
  $("live").addEventListener("change", () => { if ($("live").checked) { live.retryAt = 0; connectStream(); tick(); } else disconnectStream(); setLiveState(); });
  $("signal").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { name: $("s-name").value.trim() }, raw = $("s-payload").value.trim();
    if (raw) { try { body.payload = JSON.parse(raw); } catch (err) { flash("payload is not valid JSON: " + err.message, false); return; } }
    try {
      await post(`jobs/${seg($("signal").dataset.job)}/signal`, body);
      flash(`signal '${body.name}' sent ✓`, true); $("s-payload").value = "";
    } catch (err) { flash(err.message, false); }
    tick();
  });
  $("enqueue").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { type: $("e-type").value };
    const args = $("e-args").value.trim();
    if (args) { try { body.args = JSON.parse(args); } catch (err) { flash("args are not valid JSON: " + err.message, false); return; } }
    if ($("e-queue").value.trim()) body.queue = $("e-queue").value.trim();
    if ($("e-priority").value !== "") body.priority = parseInt($("e-priority").value, 10);
    if ($("e-delay").value !== "") body.delay = parseFloat($("e-delay").value);
    if ($("e-unique").value.trim()) body.unique = $("e-unique").value.trim();
    try {
      const r = await post("jobs", body);
      flash("enqueued " + r.id, true); select(r.id);
    } catch (err) { flash(err.message, false); }
    tick();
  });
  const loop = () => {
    if ($("live").checked && !document.hidden) {
      connectStream();
      if (Date.now() - state.lastTick >= (live.connected ? SLOW_MS : POLL_MS)) tick();
    }
    setTimeout(loop, 500);
  };
  setLiveState();
  tick().then(connectStream);
  setTimeout(loop, 500);
}
init();
