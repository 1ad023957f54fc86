// The t2 dashboard page: jobs, one job, nodes. Live through server-sent events (api/events),
// never by reloading. Every URL is relative, so the page works under any path prefix.
"use strict";

const view = document.getElementById("view");
const live = document.getElementById("live");
let current = { route: "", render: null };
let refreshTimer = null;
let jobsPage = 1;
let jobsFilter = { state: "", q: "" };

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function since(ms, now) {
  if (!ms) return "—";
  let s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return s + "s";
  const m = Math.floor(s / 60); s %= 60;
  if (m < 60) return m + "m " + s + "s";
  const hr = Math.floor(m / 60);
  if (hr < 48) return hr + "h " + (m % 60) + "m";
  return Math.floor(hr / 24) + "d " + (hr % 24) + "h";
}

// Replaces the view's content, skipping the parts left out (null).
function show(...parts) { view.replaceChildren(...parts.flat().filter(p => p !== null && p !== undefined)); }

function stateBadge(s, id) { return h("span", { class: "state " + s, id: id }, s); }

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || (r.status + " " + r.statusText));
  return body;
}

function setNav(which) {
  for (const id of ["nav-jobs", "nav-nodes"]) {
    document.getElementById(id).classList.toggle("current", id === which);
  }
}

// ---- jobs ----
async function renderJobs() {
  setNav("nav-jobs");
  const params = new URLSearchParams({ page: jobsPage, per_page: 25 });
  if (jobsFilter.state) params.set("state", jobsFilter.state);
  if (jobsFilter.q) params.set("q", jobsFilter.q);
  const data = await getJSON("api/jobs?" + params);
  const now = data.now_ms;
  const rows = data.jobs.map(j => h("tr", { "data-job-id": j.job_id },
    h("td", {}, h("a", { href: "#/jobs/" + encodeURIComponent(j.job_id) }, j.name)),
    h("td", { class: "muted" }, j.job_id),
    h("td", { class: "state-cell" }, stateBadge(j.state)),
    h("td", { class: "num workers" }, j.workers_running + " / " + j.num_workers),
    h("td", {}, j.cluster + (j.namespace ? "/" + j.namespace : "")),
    h("td", { class: "num" }, since(j.started_ms, now)),
    h("td", { class: "num" }, since(j.started_ms, j.ended_ms || now)),
  ));
  const stateSel = h("select", { id: "state-filter", onchange: e => { jobsFilter.state = e.target.value; jobsPage = 1; refresh(); } },
    h("option", { value: "" }, "all states"),
    ...["STARTING", "RUNNING", "COMPLETED", "FAILED", "KILLED"].map(s =>
      h("option", { value: s, selected: jobsFilter.state === s }, s)));
  const search = h("input", { id: "search", type: "search", placeholder: "search names", value: jobsFilter.q });
  search.addEventListener("change", e => { jobsFilter.q = e.target.value; jobsPage = 1; refresh(); });
  const pages = Math.max(1, Math.ceil(data.total / data.per_page));
  const focused = document.activeElement && document.activeElement.id;
  show(
    h("h1", {}, "Jobs"),
    h("div", { class: "filters" }, stateSel, search, h("span", { class: "muted", id: "jobs-total" }, data.total + " jobs")),
    h("table", { id: "jobs-table" },
      h("thead", {}, h("tr", {}, ...["Name", "Job ID", "State", "Workers running/total", "Cluster", "Age", "Duration"].map(t => h("th", {}, t)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No jobs yet. Submit one with --dashboard pointing here.")))),
    h("div", { class: "pager" },
      h("button", { disabled: jobsPage <= 1, onclick: () => { jobsPage--; refresh(); } }, "‹ newer"),
      h("span", {}, "page " + jobsPage + " of " + pages),
      h("button", { disabled: jobsPage >= pages, onclick: () => { jobsPage++; refresh(); } }, "older ›")),
  );
  if (focused === "search") document.getElementById("search").focus();
}

// ---- one job ----
let killToken = sessionStorage.getItem("t2-dashboard-token") || "";
let killMessage = null;
// The kill form's elements live across re-renders, so typing is never lost to a live update.
const tokenInput = h("input", { id: "kill-token", type: "password", placeholder: "dashboard token", autocomplete: "off" });
tokenInput.value = killToken;
tokenInput.addEventListener("input", () => {
  killToken = tokenInput.value.trim();
  sessionStorage.setItem("t2-dashboard-token", killToken);
});
const killButton = h("button", { class: "danger", id: "kill-button" }, "Kill job");
let killTarget = null;
killButton.addEventListener("click", () => { if (killTarget) killJob(killTarget); });

async function killJob(id) {
  killToken = tokenInput.value.trim();
  sessionStorage.setItem("t2-dashboard-token", killToken);
  const r = await fetch("api/jobs/" + encodeURIComponent(id) + "/kill", {
    method: "POST",
    headers: { "Authorization": "Bearer " + killToken, "X-T2-Dashboard-Token": killToken, "Content-Type": "application/json" },
    body: JSON.stringify({ reason: "" }),
  });
  const body = await r.json().catch(() => ({}));
  killMessage = r.ok ? { ok: true, text: "Kill requested: the job master ends the job at its next report." }
                     : { ok: false, text: body.error || (r.status + " " + r.statusText) };
  refresh();
}

async function renderJob(id) {
  setNav("nav-jobs");
  const j = await getJSON("api/jobs/" + encodeURIComponent(id));
  const now = j.now_ms;
  const joined = j.workers.filter(w => ["STARTED", "RESTARTED", "COMPLETED"].includes(w.state)).length;
  const pct = j.num_workers ? Math.min(100, Math.round(100 * joined / j.num_workers)) : 0;
  const ended = ["COMPLETED", "FAILED", "KILLED"].includes(j.state);
  const spec = Object.entries(j.spec || {}).map(([k, v]) => k + "=" + v).join("  ");
  const workers = j.workers.map(w => h("tr", { class: "worker-row", "data-worker-id": w.worker_id },
    h("td", { class: "num" }, w.worker_id),
    h("td", {}, w.host + ":" + w.port),
    h("td", {}, w.node), h("td", {}, w.rack), h("td", {}, w.datacenter),
    h("td", {}, stateBadge(w.state)),
    h("td", { class: "num" }, w.restart_count),
    h("td", { class: "num" }, since(w.heartbeat_ms, now)),
    h("td", { class: "num" }, w.exit_code === null ? "—" : w.exit_code),
  ));
  const events = j.events.slice().reverse().map(e => h("li", {},
    h("span", { class: "muted" }, new Date(e.at_ms).toLocaleTimeString() + "  "),
    h("span", { class: "kind" }, e.kind + (e.worker_id === null ? "" : " #" + e.worker_id)),
    e.message));
  const typing = document.activeElement === tokenInput;
  killTarget = j.job_id;
  killButton.disabled = j.kill_requested;
  killButton.textContent = j.kill_requested ? "Kill requested…" : "Kill job";
  show(
    h("p", {}, h("a", { href: "#/" }, "‹ all jobs")),
    h("h1", {}, j.name + " ", stateBadge(j.state, "job-state")),
    h("dl", { class: "facts" },
      h("dt", {}, "job ID"), h("dd", { id: "job-id" }, j.job_id),
      h("dt", {}, "cluster"), h("dd", {}, j.cluster + (j.namespace ? " / " + j.namespace : "")),
      h("dt", {}, "user"), h("dd", {}, j.user || "—"),
      h("dt", {}, "reason"), h("dd", { id: "job-reason" }, j.reason || "—"),
      h("dt", {}, "started"), h("dd", {}, new Date(j.started_ms).toLocaleString() + " (" + since(j.started_ms, now) + " ago)"),
      h("dt", {}, "duration"), h("dd", {}, since(j.started_ms, j.ended_ms || now)),
      h("dt", {}, "spec"), h("dd", { class: "muted" }, spec || "—")),
    h("div", {}, h("span", { id: "joined" }, joined + " of " + j.num_workers + " workers joined")),
    h("div", { class: "progress", id: "progress" }, h("div", { style: "width:" + pct + "%" })),
    ended ? null : h("div", { class: "kill" }, tokenInput, killButton),
    killMessage ? h("p", { id: "kill-result", class: killMessage.ok ? "muted" : "error" }, killMessage.text) : null,
    h("h2", {}, "Workers"),
    h("table", { id: "workers-table" },
      h("thead", {}, h("tr", {}, ...["ID", "Address", "Node", "Rack", "Datacenter", "State", "Restarts", "Heartbeat age", "Exit code"].map(t => h("th", {}, t)))),
      h("tbody", {}, workers)),
    h("h2", {}, "Events"),
    h("ul", { class: "timeline", id: "events" }, events),
  );
  if (typing) tokenInput.focus();
}

// ---- nodes ----
async function renderNodes() {
  setNav("nav-nodes");
  const showAll = (sessionStorage.getItem("t2-nodes-all") === "1");
  const data = await getJSON("api/nodes" + (showAll ? "?all=true" : ""));
  const toggle = h("label", {}, h("input", { type: "checkbox", id: "nodes-all", checked: showAll,
    onchange: e => { sessionStorage.setItem("t2-nodes-all", e.target.checked ? "1" : "0"); refresh(); } }), " include ended jobs");
  const dcs = data.datacenters.map(dc => h("section", { class: "dc" },
    h("h2", {}, "Datacenter " + dc.datacenter),
    dc.racks.map(r => h("div", { class: "rack" },
      h("h3", {}, "Rack " + r.rack),
      r.nodes.map(n => h("div", { class: "node" },
        h("strong", {}, n.node), h("span", { class: "muted" }, "  " + n.workers.length + " workers"), h("br"),
        n.workers.map(w => h("a", { class: "chip", href: "#/jobs/" + encodeURIComponent(w.job_id) },
          w.job_id + " #" + w.worker_id + " " + w.state))))))));
  show(h("h1", {}, "Nodes"), h("div", { class: "filters" }, toggle),
    dcs.length ? dcs : h("p", { class: "muted" }, "No workers of running jobs."));
}

// ---- routing and live updates ----
function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const m = hash.match(/^\/jobs\/(.+)$/);
  if (m) return { route: "job", render: () => renderJob(decodeURIComponent(m[1])) };
  if (hash === "/nodes") return { route: "nodes", render: renderNodes };
  return { route: "jobs", render: renderJobs };
}

async function refresh() {
  refreshTimer = null;
  try { await current.render(); }
  catch (e) { show(h("p", { class: "error", id: "error" }, "Cannot load: " + e.message)); }
}

function soon() { if (!refreshTimer) refreshTimer = setTimeout(refresh, 150); }

window.addEventListener("hashchange", () => { killMessage = null; current = route(); refresh(); });

function connect() {
  const es = new EventSource("api/events");
  es.addEventListener("hello", () => { live.textContent = "live"; live.className = "live on"; soon(); });
  es.addEventListener("change", soon);
  es.addEventListener("resync", soon);
  es.onerror = () => { live.textContent = "reconnecting…"; live.className = "live off"; };
}

current = route();
refresh();
connect();
