// kdeploy dashboard: follows /events (server-sent events, one JSON object
// per topic event) and draws the deployments. Everything shown comes from
// hosts and operators, so text is only ever set as text, never as HTML.
"use strict";

const deployments = new Map();   // deploy id -> deployment
const expanded = new Map();      // "id/host" -> open or closed, as the user left it
let selected = decodeURIComponent(location.hash.slice(1));
let renderQueued = false;

const TERMINAL = new Set(["succeeded", "failed", "rejected", "stopped",
                          "rollback_succeeded", "rollback_failed"]);

function deployment(id) {
  let d = deployments.get(id);
  if (!d) {
    d = { id, app: "", group: "", label: "", url: "", strategy: "", status: "pending",
          requestedBy: "", rollbackOf: "", rolledBackBy: "", reason: "", started: null,
          ended: null, hosts: new Map(), order: [] };
    deployments.set(id, d);
  }
  return d;
}

function host(d, name) {
  let h = d.hosts.get(name);
  if (!h) {
    h = { name, status: "waiting", error: "", failedStep: "", steps: new Map() };
    d.hosts.set(name, h);
    if (!d.order.includes(name)) d.order.push(name);
  }
  return h;
}

function step(h, name) {
  let s = h.steps.get(name);
  if (!s) {
    s = { name, start: null, dur: null, status: "running", out: "", err: "", exit: null };
    h.steps.set(name, s);
  }
  return s;
}

// One event of the deployments or results topic.
function apply(ev) {
  if (ev.type === "synced") return setConn("live", "live");
  if (ev.type === "reset") {   // another dashboard process: its history comes again
    deployments.clear();
    return scheduleRender();
  }
  if (!ev.id) return;
  const d = deployment(ev.id);
  if (d.started === null || ev.ts < d.started) d.started = ev.ts;
  switch (ev.type) {
    case "accepted":
      Object.assign(d, { app: ev.application || "", group: ev.group || "", label: ev.label || "",
                         url: ev.url || "", strategy: ev.strategy || "", requestedBy: ev.requested_by || "",
                         rollbackOf: ev.rollback_of || d.rollbackOf, status: ev.status || "deploying" });
      for (const name of ev.hosts || []) host(d, name);
      if (d.rollbackOf) deployment(d.rollbackOf).rolledBackBy = d.id;
      break;
    case "deployment_hosts":   // the host list, in slices after "accepted"
      for (const name of ev.hosts || []) host(d, name);
      break;
    case "rejected":
      d.status = "rejected"; d.reason = ev.reason || ""; d.ended = ev.ts;
      break;
    case "host_started":
      host(d, ev.host).status = "running";
      if (d.status === "pending") d.status = "deploying";
      break;
    case "host_finished": {
      const h = host(d, ev.host);
      h.status = ev.status; h.error = ev.error || ""; h.failedStep = ev.failed_step || "";
      break;
    }
    case "succeeded":
      d.status = d.rollbackOf && d.status === "rollback_succeeded" ? d.status : "succeeded";
      d.ended = ev.ts;
      break;
    case "failed":
      d.status = "failed"; d.reason = ev.reason || ""; d.ended = ev.ts;
      break;
    case "rollback_started":
      d.rolledBackBy = ev.rollback_id || "";
      if (ev.rollback_id) deployment(ev.rollback_id).rollbackOf = d.id;
      break;
    case "status_changed":
      d.status = ev.status;
      // A failure's reason stays; a stop or a failed rollback says why too.
      if (ev.reason && !d.reason && ["stopped", "rollback_failed", "paused"].includes(ev.status))
        d.reason = ev.reason;
      if (TERMINAL.has(ev.status) && d.ended === null) d.ended = ev.ts;
      break;
    case "step_dispatched": {
      const s = step(host(d, ev.host), ev.step);
      if (s.start === null) s.start = ev.ts;
      break;
    }
    case "step_result":
    case "traffic_result": {
      const h = host(d, ev.host), s = step(h, ev.step);
      s.dur = ev.duration_ms || 0;
      s.start = ev.started_ms || s.start || ev.ts - s.dur;
      s.status = ev.status; s.out = ev.output_tail || ""; s.err = ev.error || "";
      s.exit = ev.exit_code === undefined ? null : ev.exit_code;
      if (h.status === "waiting") h.status = "running";
      break;
    }
    case "progress": {
      const s = step(host(d, ev.host), ev.step);
      if (s.status === "running") {
        s.out = ev.output_tail || s.out;
        if (s.start === null) s.start = ev.ts - (ev.elapsed_ms || 0);
      }
      break;
    }
  }
  scheduleRender();
}

// ---- drawing ----

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "text") e.textContent = v;
    else if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c) e.append(c);
  return e;
}

function badge(status) {
  return el("span", { class: "badge s-" + status, text: status.replace(/_/g, " ") });
}

function dur(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return ms + " ms";
  if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
  return Math.floor(ms / 60000) + " min " + Math.round((ms % 60000) / 1000) + " s";
}

function clock(ts) {
  if (!ts) return "";
  const t = new Date(ts);
  return t.toLocaleTimeString([], { hour12: false }) + "." + String(t.getMilliseconds()).padStart(3, "0");
}

function short(id) { return id.slice(0, 8); }

// "shop / web 2.4"; a rollback names itself, as its revision is the one it restores.
function title(d, sep) {
  return (d.app || "?") + " / " + (d.group || "?") +
         (d.rollbackOf ? sep + "rollback" : d.label ? sep + d.label : "");
}

function matches(d) {
  const f = filters();
  return (!f.app || d.app === f.app) && (!f.group || d.group === f.group) &&
         (!f.label || d.label === f.label);
}

function filters() {
  return { app: document.getElementById("f-app").value,
           group: document.getElementById("f-group").value,
           label: document.getElementById("f-label").value };
}

function fillSelect(id, values) {
  const sel = document.getElementById(id), keep = sel.value;
  const want = ["", ...[...values].filter(v => v).sort()];
  const have = [...sel.options].map(o => o.value);
  if (want.join("\n") === have.join("\n")) return;
  sel.replaceChildren(...want.map(v => el("option", { value: v, text: v || "all" })));
  sel.value = want.includes(keep) ? keep : "";
}

function sorted() {
  return [...deployments.values()].filter(d => d.app || d.status === "rejected")
    .sort((a, b) => (b.started || 0) - (a.started || 0));
}

const LIST_MAX = 200;   // the DOM is rebuilt on every change: keep it small

function renderList(all) {
  const nav = document.getElementById("list");
  const matching = all.filter(matches);
  const shown = matching.slice(0, LIST_MAX);
  if (!shown.length) {
    nav.replaceChildren(el("p", { class: "empty", text: all.length ? "No deployment matches the filters."
                                                                  : "No deployment on the topics yet." }));
    return;
  }
  const more = matching.length - shown.length;
  nav.replaceChildren(...shown.map(d => {
    const done = [...d.hosts.values()].filter(h => h.status === "succeeded").length;
    return el("a", { class: "card" + (d.id === selected ? " selected" : ""), href: "#" + d.id,
                     "data-id": d.id },
      el("div", { class: "title" }, document.createTextNode(title(d, "  ") + " "), badge(d.status)),
      el("div", { class: "sub" },
         el("span", { text: short(d.id) }), el("span", { text: clock(d.started) }),
         el("span", { text: done + "/" + d.hosts.size + " hosts" }),
         d.rollbackOf ? el("span", { text: "↩ rollback of " + short(d.rollbackOf) }) : null,
         d.rolledBackBy ? el("span", { text: "rolled back by " + short(d.rolledBackBy) }) : null));
  }), ...(more > 0 ? [el("p", { class: "empty", text: `${more} older: narrow with the filters.` })] : []));
}

function span(d, now) {
  let t0 = d.started, t1 = d.ended || now;
  for (const h of d.hosts.values())
    for (const s of h.steps.values()) {
      if (s.start !== null && s.start < t0) t0 = s.start;
      const end = s.start !== null ? s.start + (s.dur !== null ? s.dur : now - s.start) : null;
      if (end !== null && end > t1) t1 = end;
    }
  return [t0, Math.max(t1, t0 + 1000)];
}

function axis(t0, t1) {
  const ticks = el("div", { class: "ticks" });
  for (let i = 0; i <= 4; i++) {
    const t = el("span", { class: "tick", text: "+" + dur(Math.round((t1 - t0) * i / 4)) });
    t.style.left = (i * 25) + "%";
    if (i === 0) t.style.transform = "none";
    if (i === 4) t.style.transform = "translateX(-100%)";
    ticks.append(t);
  }
  return el("div", { class: "axis" }, el("span", { text: "host" }), ticks);
}

function lane(h, t0, t1, now) {
  const lane = el("div", { class: "lane" });
  for (const s of h.steps.values()) {
    if (s.start === null) continue;
    const d = s.dur !== null ? s.dur : now - s.start;
    const bar = el("div", { class: "bar " + s.status, text: s.name,
                            title: `${s.name} · ${s.status} · started ${clock(s.start)} (+${dur(s.start - t0)}) · ${dur(d)}` });
    bar.style.left = ((s.start - t0) / (t1 - t0) * 100) + "%";
    bar.style.width = Math.max(d / (t1 - t0) * 100, 0.4) + "%";
    lane.append(bar);
  }
  return lane;
}

function stepTable(h, t0, now) {
  const rows = [...h.steps.values()].sort((a, b) => (a.start || 0) - (b.start || 0)).map(s =>
    el("tr", { class: "step", "data-step": s.name },
       el("td", { text: s.name }),
       el("td", { text: clock(s.start) + (s.start !== null ? "  (+" + dur(s.start - t0) + ")" : "") }),
       el("td", { class: "num", text: s.dur !== null ? dur(s.dur) : dur(now - (s.start || now)) + "…" }),
       el("td", {}, badge(s.status)),
       el("td", { class: "num", text: s.exit !== null && s.status !== "skipped" ? "exit " + s.exit : "" })));
  return el("table", { class: "steps" },
            el("thead", {}, el("tr", {}, ...["step", "started", "took", "result", ""].map(t => el("th", { text: t })))),
            el("tbody", {}, ...rows));
}

function failureOutput(h) {
  const bad = [...h.steps.values()].filter(s => s.status === "failed" || s.status === "timed_out");
  if (!bad.length && !h.error) return null;
  const pre = el("pre", { class: "tail", "data-host": h.name });
  for (const s of bad) {
    pre.append(document.createTextNode(`── ${s.name} (exit ${s.exit}) ──\n` + (s.out || "(no output)\n")));
    if (s.err) pre.append(el("span", { class: "err", text: (s.out.endsWith("\n") ? "" : "\n") + s.err + "\n" }));
  }
  if (!bad.length) pre.append(el("span", { class: "err", text: h.error }));
  return pre;
}

function hostBlock(d, h, t0, t1, now) {
  const key = d.id + "/" + h.name;
  const open = expanded.has(key) ? expanded.get(key) : (h.status === "failed" || h.status === "running");
  const name = el("div", { class: "host-name", title: "show or hide the steps",
                           onclick: () => { expanded.set(key, !open); render(); } },
                  el("span", { class: "caret", text: open ? "▾" : "▸" }),
                  el("span", { class: "hname", text: h.name }), badge(h.status));
  return el("div", { class: "host" + (open ? " open" : ""), "data-host": h.name },
            el("div", { class: "host-row" }, name, lane(h, t0, t1, now)),
            open ? stepTable(h, t0, now) : null,
            open ? failureOutput(h) : null);
}

function link(label, id) {
  return el("span", { class: "links" }, document.createTextNode(label + " "),
            el("a", { href: "#" + id, text: short(id) }));
}

function renderDetail() {
  const sec = document.getElementById("detail");
  const d = deployments.get(selected);
  if (!d) {
    sec.replaceChildren(el("p", { class: "empty", text: selected ? `Deployment ${selected} is not on the topics (yet).`
                                                                 : "Pick a deployment on the left." }));
    return;
  }
  const now = Date.now(), [t0, t1] = span(d, now);
  const hosts = d.order.map(n => d.hosts.get(n));
  // replaceChildren would print a null: the optional parts are filtered.
  sec.replaceChildren(...[
    el("h2", {}, document.createTextNode(title(d, " — ")), badge(d.status)),
    el("div", { class: "meta" },
       el("span", {}, document.createTextNode("deployment "), el("code", { text: d.id })),
       d.requestedBy ? el("span", { text: "by " + d.requestedBy }) : null,
       el("span", { text: "started " + clock(d.started) }),
       el("span", { text: (d.ended ? "took " : "running for ") + dur((d.ended || now) - d.started) }),
       d.strategy ? el("span", { text: d.strategy.replace("_", "-") }) : null,
       d.rollbackOf ? link("rollback of", d.rollbackOf) : null,
       d.rolledBackBy ? link("rolled back by", d.rolledBackBy) : null),
    d.reason ? el("div", { class: "reason", text: d.reason }) : null,
    axis(t0, t1),
    ...hosts.map(h => hostBlock(d, h, t0, t1, now)),
    el("div", { class: "legend" }, ...["succeeded", "failed", "running", "skipped"].map(s =>
       el("span", { class: "l-" + s, text: s })))].filter(Boolean));
}

function render() {
  renderQueued = false;
  const all = sorted();
  fillSelect("f-app", new Set(all.map(d => d.app)));
  fillSelect("f-group", new Set(all.map(d => d.group)));
  fillSelect("f-label", new Set(all.map(d => d.label)));
  // A deployment named in the address may not have arrived yet: keep it.
  if (!selected && all.length) selected = (all.find(matches) || all[0]).id;
  renderList(all);
  renderDetail();
}

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(render, 100);
}

function setConn(cls, text) {
  const c = document.getElementById("conn");
  c.className = "conn " + cls;
  c.textContent = text;
}

function connect() {
  const es = new EventSource("/events");
  es.onopen = () => setConn("loading", "reading history…");
  es.onerror = () => setConn("lost", "reconnecting…");
  es.onmessage = m => {
    try { apply(JSON.parse(m.data)); } catch (e) { console.warn("bad event", e); }
  };
}

window.addEventListener("hashchange", () => {
  selected = decodeURIComponent(location.hash.slice(1));
  render();
});
document.addEventListener("DOMContentLoaded", () => {
  for (const id of ["f-app", "f-group", "f-label"])
    document.getElementById(id).addEventListener("change", render);
  connect();
  // Running steps grow with the clock.
  setInterval(() => {
    const d = deployments.get(selected);
    if (d && !d.ended) render();
  }, 1000);
});
