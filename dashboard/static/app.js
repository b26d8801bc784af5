// Bulwark dashboard: vanilla JavaScript, no build step. It listens to the
// Server-Sent Events on api/stream and updates the page in place (cards are
// keyed by instance id, so a click is never lost to a re-render).
"use strict";

const controls = document.body.dataset.controls === "true";
const MAX_POINTS = 120;
const MAX_EVENTS = 200;
const SVGNS = "http://www.w3.org/2000/svg";

const state = { points: [], cards: new Map(), services: new Map(), eventSeq: 0 };

// ---- helpers ---------------------------------------------------------------

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function fmtNum(v, digits) {
  if (!isFinite(v)) return "–";
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(1) + "k";
  return v.toFixed(digits);
}

function fmtMs(ms) {
  if (!isFinite(ms)) return "–";
  if (ms >= 1000) return (ms / 1000).toFixed(2) + " s";
  if (ms >= 10) return ms.toFixed(0) + " ms";
  return ms.toFixed(1) + " ms";
}

function fmtAge(s) {
  if (!s) return "–";
  if (s < 60) return s.toFixed(1) + " s";
  return (s / 60).toFixed(1) + " min";
}

function toast(msg) {
  const t = document.getElementById("toast");
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}

// ---- charts ----------------------------------------------------------------

// niceMax rounds a maximum up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// drawChart draws series (each {values: [number|null], color, area}) into
// the svg: a fixed window of MAX_POINTS slots, newest on the right.
function drawChart(svg, series, opts) {
  const W = 600, H = 170, padL = 40, padR = 6, padT = 8, padB = 16;
  let max = opts.max;
  if (max === undefined) {
    max = 0;
    for (const s of series) for (const v of s.values) if (v !== null && v > max) max = v;
    max = niceMax(max * 1.1);
  }
  const min = opts.min || 0;
  const x = (i, n) => padL + (W - padL - padR) * (MAX_POINTS - n + i) / (MAX_POINTS - 1);
  const y = (v) => padT + (H - padT - padB) * (1 - (v - min) / (max - min));
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  for (let g = 0; g <= 4; g++) {
    const v = min + (max - min) * g / 4;
    const line = document.createElementNS(SVGNS, "line");
    line.setAttribute("class", "grid");
    line.setAttribute("x1", padL); line.setAttribute("x2", W - padR);
    line.setAttribute("y1", y(v)); line.setAttribute("y2", y(v));
    svg.appendChild(line);
    const label = document.createElementNS(SVGNS, "text");
    label.setAttribute("class", "axis-label");
    label.setAttribute("x", padL - 6); label.setAttribute("y", y(v) + 4);
    label.setAttribute("text-anchor", "end");
    label.textContent = opts.fmt(v);
    svg.appendChild(label);
  }
  for (const s of series) {
    const n = s.values.length;
    let d = "", first = null, last = null;
    s.values.forEach((v, i) => {
      if (v === null) return;
      const px = x(i, n).toFixed(1), py = y(Math.min(v, max)).toFixed(1);
      d += (d === "" || s.values[i - 1] === null ? "M" : "L") + px + " " + py + " ";
      if (first === null) first = px;
      last = px;
    });
    if (d === "") continue;
    if (s.area && !s.values.includes(null)) {
      const area = document.createElementNS(SVGNS, "path");
      area.setAttribute("class", "area");
      area.setAttribute("fill", s.color);
      area.setAttribute("d", d + "L" + last + " " + y(min) + " L" + first + " " + y(min) + " Z");
      svg.appendChild(area);
    }
    const path = document.createElementNS(SVGNS, "path");
    path.setAttribute("class", "line");
    path.setAttribute("stroke", s.color);
    path.setAttribute("d", d);
    svg.appendChild(path);
  }
  svg.dataset.points = String(series.length ? series[0].values.length : 0);
}

function renderCharts() {
  const pts = state.points;
  const css = getComputedStyle(document.documentElement);
  const col = (name) => css.getPropertyValue(name).trim();
  const some = (f) => pts.map((p) => (p.requests > 0 ? f(p) : null));
  drawChart(document.getElementById("chart-rps"),
    [{ values: pts.map((p) => p.rps), color: col("--accent"), area: true }],
    { fmt: (v) => (v === 0 ? "0" : fmtNum(v, v < 10 ? 1 : 0)) });
  drawChart(document.getElementById("chart-success"),
    [{ values: some((p) => p.success * 100), color: col("--up"), area: false }],
    { min: 0, max: 100, fmt: (v) => v.toFixed(0) + "%" });
  drawChart(document.getElementById("chart-latency"),
    [{ values: some((p) => p.p50_ms), color: col("--p50") }, { values: some((p) => p.p99_ms), color: col("--p99") }],
    { fmt: (v) => (v === 0 ? "0" : v >= 1000 ? (v / 1000).toFixed(1) + "s" : v.toFixed(v < 10 ? 1 : 0)) });
  const p = pts[pts.length - 1];
  if (p) {
    setText(document.getElementById("kpi-rps"), fmtNum(p.rps, p.rps < 10 ? 1 : 0));
    setText(document.getElementById("kpi-success"), p.requests ? (p.success * 100).toFixed(1) + "%" : "–");
    setText(document.getElementById("kpi-p99"), p.requests ? fmtMs(p.p99_ms) : "–");
  }
}

function addPoints(points) {
  if (!points || !points.length) return;
  const lastSeq = state.points.length ? state.points[state.points.length - 1].seq : 0;
  for (const p of points) if (p.seq > lastSeq) state.points.push(p);
  if (state.points.length > MAX_POINTS) state.points.splice(0, state.points.length - MAX_POINTS);
  renderCharts();
}

// ---- topology --------------------------------------------------------------

const ACTIONS = [
  ["kill", "kill"], ["stop", "stop"], ["restart", "restart"], ["slow", "slow"],
  ["corrupt", "corrupt"], ["lie", "lie"], ["partition", "partition"], ["heal", "heal"],
];

function makeCard(id) {
  const card = el("div", "instance");
  card.dataset.instance = id;
  const head = el("div", "inst-head");
  head.append(el("span", "dot"), el("span", "inst-id", id), el("span", "badge health"));
  const stats = el("dl", "inst-stats");
  const fields = {};
  for (const [key, label] of [["breaker", "breaker"], ["ewma", "EWMA"], ["inflight", "in flight"], ["reqs", "req / fail"]]) {
    const dd = el("dd", key === "breaker" ? "breaker" : "");
    dd.dataset.field = key;
    stats.append(el("dt", "", label), dd);
    fields[key] = dd;
  }
  card.append(head, el("div", "inst-addr"), stats, el("div", "inst-fault"));
  if (controls) {
    const actions = el("div", "actions");
    for (const [action, label] of ACTIONS) {
      const b = el("button", "", label);
      b.type = "button";
      b.dataset.action = action;
      b.dataset.target = id;
      actions.append(b);
    }
    card.append(actions);
  }
  card.fields = fields;
  return card;
}

function updateCard(card, inst) {
  const health = ["up", "suspect", "ejected", "down"].includes(inst.health) ? inst.health : "unknown";
  if (card.dataset.health !== health) card.dataset.health = health;
  card.dataset.breaker = inst.breaker || "";
  card.dataset.fault = inst.fault || "";
  setText(card.querySelector(".health"), health);
  setText(card.querySelector(".inst-addr"), inst.address || "");
  const f = card.fields;
  setText(f.breaker, inst.breaker || "–");
  f.breaker.dataset.state = inst.breaker || "";
  setText(f.ewma, fmtMs(inst.ewma_ms || 0));
  setText(f.inflight, String(inst.inflight || 0));
  setText(f.reqs, (inst.requests || 0) + " / " + (inst.failures || 0));
  setText(card.querySelector(".inst-fault"), inst.fault ? "fault: " + inst.fault : "");
}

// place keeps parent's children in the order of nodes, moving only what is
// out of place.
function place(parent, nodes) {
  nodes.forEach((n, i) => {
    if (parent.children[i] !== n) parent.insertBefore(n, parent.children[i] || null);
  });
  while (parent.children.length > nodes.length) parent.removeChild(parent.lastChild);
}

function renderServices(services) {
  const root = document.getElementById("services");
  const seen = new Set();
  let up = 0, total = 0;
  const sections = (services || []).map((svc) => {
    let sec = state.services.get(svc.name);
    if (!sec) {
      sec = el("div", "service");
      sec.dataset.service = svc.name;
      const head = el("div", "service-head");
      head.append(el("span", "service-name", svc.name), el("span", "service-meta"));
      sec.append(head, el("div", "instances"));
      state.services.set(svc.name, sec);
    }
    const cards = (svc.instances || []).map((inst) => {
      const key = svc.name + "\u0000" + inst.id;
      seen.add(key);
      let card = state.cards.get(key);
      if (!card) { card = makeCard(inst.id); state.cards.set(key, card); }
      updateCard(card, inst);
      total++;
      if (inst.health === "up") up++;
      return card;
    });
    const svcUp = (svc.instances || []).filter((i) => i.health === "up").length;
    setText(sec.querySelector(".service-meta"),
      svcUp + "/" + cards.length + " up" + (svc.balance ? " · " + svc.balance : "") + (svc.tls ? " · mTLS" : ""));
    place(sec.querySelector(".instances"), cards);
    return sec;
  });
  for (const key of [...state.cards.keys()]) if (!seen.has(key)) state.cards.delete(key);
  const names = new Set((services || []).map((s) => s.name));
  for (const name of [...state.services.keys()]) if (!names.has(name)) state.services.delete(name);
  if (sections.length) {
    root.dataset.empty = "";
    place(root, sections);
  } else if (root.dataset.empty !== "true") {
    root.dataset.empty = "true";
    root.replaceChildren(el("p", "empty", "No services on this node."));
  }
  setText(document.getElementById("kpi-up"), total ? up + "/" + total : "–");
}

// ---- registry, delivery, traffic -------------------------------------------

function renderRegistry(reg) {
  const panel = document.getElementById("registry");
  panel.hidden = !reg;
  if (!reg) return;
  setText(document.getElementById("registry-leader"), reg.leader || "none");
  panel.dataset.leader = reg.leader || "";
  setText(document.getElementById("registry-index"), String(reg.index || 0));
  document.getElementById("registry-stale").hidden = !reg.stale;
  document.getElementById("registry-tls").hidden = !reg.tls;
  const items = (reg.nodes || []).map((n) => {
    const li = el("li");
    li.dataset.node = n.id;
    li.dataset.state = n.state;
    li.append(el("span", "dot"), el("span", "", n.id + (n.address ? "  " + n.address : "")), el("span", "node-state", n.state));
    return li;
  });
  document.getElementById("registry-nodes").replaceChildren(...items);
}

function renderDelivery(del) {
  const panel = document.getElementById("delivery");
  panel.hidden = !del;
  if (!del) return;
  setText(document.getElementById("delivery-queued"), fmtNum(del.queued || 0, 0));
  setText(document.getElementById("delivery-inflight"), fmtNum(del.inflight || 0, 0));
  setText(document.getElementById("delivery-delivered"), fmtNum(del.delivered || 0, 0));
  setText(document.getElementById("delivery-dead"), fmtNum(del.dead_letters || 0, 0));
  document.querySelector(".counter.dead").dataset.nonzero = String((del.dead_letters || 0) > 0);
  setText(document.getElementById("delivery-oldest"), fmtAge(del.oldest_age_seconds));
}

function renderTraffic(tr) {
  const sw = document.getElementById("traffic-toggle");
  if (!sw) return;
  sw.dataset.on = tr ? String(!!tr.generator) : "unknown";
  setText(sw.querySelector(".switch-label"),
    "traffic " + (tr ? (tr.generator ? "on" : "off") : "") + (tr && tr.rate ? " · " + tr.rate + "/s" : ""));
}

// renderCluster shows the gateway cluster: who owns the VIP, its lease,
// handovers, and each node with its state (and, with controls, the kill,
// stop, restart, partition and heal buttons the instance cards have).
// Node rows are keyed by id and updated in place, so a click is never lost.
const CLUSTER_ACTIONS = [["kill", "kill"], ["stop", "stop"], ["restart", "restart"], ["partition", "partition"], ["heal", "heal"]];

function renderCluster(cl) {
  const panel = document.getElementById("cluster");
  panel.hidden = !cl;
  if (!cl) return;
  panel.dataset.owner = cl.owner || "";
  setText(document.getElementById("cluster-vip"), cl.vip || "–");
  setText(document.getElementById("cluster-owner"), cl.owner || "none");
  setText(document.getElementById("cluster-lease-age"), cl.owner ? fmtMs((cl.lease_age_seconds || 0) * 1000) : "–");
  setText(document.getElementById("cluster-held"), cl.owner ? fmtAge(cl.held_seconds || 0) : "–");
  setText(document.getElementById("cluster-leader"), (cl.leader || "none") + " · " + (cl.term || 0));
  setText(document.getElementById("cluster-handovers"), (cl.epoch || 0) + " · " + (cl.handovers || 0));
  const list = document.getElementById("cluster-nodes");
  state.clusterNodes = state.clusterNodes || new Map();
  const seen = new Set();
  const items = (cl.nodes || []).map((n) => {
    seen.add(n.id);
    let li = state.clusterNodes.get(n.id);
    if (!li) {
      li = el("li");
      li.dataset.node = n.id;
      const badge = el("span", "vip-badge", "VIP");
      li.append(el("span", "dot"), el("span", "node-name", n.id), badge, el("span", "node-addr muted"), el("span", "node-state"));
      if (controls) {
        const actions = el("div", "actions");
        for (const [action, label] of CLUSTER_ACTIONS) {
          const b = el("button", "", label);
          b.type = "button";
          b.dataset.action = action;
          b.dataset.target = n.id;
          actions.append(b);
        }
        li.append(actions);
      }
      state.clusterNodes.set(n.id, li);
    }
    li.dataset.state = n.state;
    li.dataset.holding = String(!!n.holding);
    li.dataset.fault = n.fault || "";
    li.querySelector(".vip-badge").hidden = !n.holding;
    setText(li.querySelector(".node-addr"), n.address || "");
    setText(li.querySelector(".node-state"), n.state + (n.fault ? " · " + n.fault : ""));
    li.title = n.error || "";
    return li;
  });
  for (const id of [...state.clusterNodes.keys()]) if (!seen.has(id)) state.clusterNodes.delete(id);
  place(list, items);
}

// renderTree draws the supervision tree: each supervisor and child with
// its state, restarts and last failure.
function renderTree(root) {
  const panel = document.getElementById("supervision");
  panel.hidden = !root;
  if (!root) return;
  const item = (n, depth) => {
    const li = el("li");
    li.dataset.node = n.name;
    li.dataset.state = n.state;
    li.style.paddingLeft = (depth * 14) + "px";
    const label = n.name + (n.supervisor ? " · " + n.strategy : "");
    li.append(el("span", "dot"), el("span", "tree-name", label), el("span", "tree-state",
      n.state + (n.restarts ? " · " + n.restarts + " restart" + (n.restarts > 1 ? "s" : "") : "")));
    if (n.last_failure) {
      const why = el("div", "tree-failure", n.last_failure);
      why.title = n.last_failure;
      li.append(why);
    }
    return [li, ...(n.children || []).flatMap((c) => item(c, depth + 1))];
  };
  document.getElementById("tree").replaceChildren(...item(root, 0));
}

// ---- events ----------------------------------------------------------------

function addEvents(events) {
  if (!events || !events.length) return;
  const list = document.getElementById("events");
  for (const e of events) {
    if (e.seq <= state.eventSeq) continue;
    state.eventSeq = e.seq;
    const li = el("li");
    li.dataset.kind = e.kind;
    li.dataset.seq = String(e.seq);
    const t = new Date(e.time);
    li.append(el("span", "ev-time", t.toLocaleTimeString([], { hour12: false })), el("span", "ev-kind", e.kind), el("span", "ev-text", e.text));
    list.insertBefore(li, list.firstChild);
  }
  while (list.children.length > MAX_EVENTS) list.removeChild(list.lastChild);
}

// ---- stream and actions ----------------------------------------------------

function onMessage(msg) {
  const banner = document.getElementById("error-banner");
  banner.hidden = !msg.error;
  if (msg.error) banner.textContent = "Snapshot is stale: " + msg.error;
  if (msg.snapshot) {
    renderServices(msg.snapshot.services);
    renderRegistry(msg.snapshot.registry);
    renderDelivery(msg.snapshot.delivery);
    renderTraffic(msg.snapshot.traffic);
    renderTree(msg.snapshot.supervision);
    renderCluster(msg.snapshot.cluster);
  }
  addPoints(msg.points);
  addEvents(msg.events);
}

function connect() {
  const conn = document.getElementById("conn");
  const es = new EventSource("api/stream");
  es.onopen = () => { conn.dataset.state = "live"; conn.textContent = "live"; };
  es.onerror = () => { conn.dataset.state = "lost"; conn.textContent = "reconnecting…"; };
  es.onmessage = (ev) => {
    conn.dataset.state = "live"; conn.textContent = "live";
    try { onMessage(JSON.parse(ev.data)); } catch (err) { console.error(err); }
  };
}

// An admin listener with a token (admin.token, BULWARK_ADMIN_TOKEN) asks
// for it once per tab; it is kept in sessionStorage, sent as a bearer token.
const tokenKey = "bulwark-admin-token";

async function post(path, body, button, retried) {
  if (button) button.disabled = true;
  try {
    const headers = { "Content-Type": "application/json" };
    const token = sessionStorage.getItem(tokenKey);
    if (token) headers["Authorization"] = "Bearer " + token;
    const res = await fetch(path, {
      method: "POST",
      headers,
      body: body === undefined ? "" : JSON.stringify(body),
    });
    if (!res.ok) {
      let msg = res.status + " " + res.statusText;
      try { msg = (await res.json()).error || msg; } catch (_) { /* not JSON */ }
      if (!retried && (res.status === 401 || msg === "wrong bearer token")) {
        const t = window.prompt("This action needs the admin token (admin.token or BULWARK_ADMIN_TOKEN):");
        if (t) {
          sessionStorage.setItem(tokenKey, t);
          if (button) button.disabled = false;
          return post(path, body, button, true);
        }
      }
      toast(msg);
    }
  } catch (err) {
    toast("request failed: " + err);
  } finally {
    if (button) button.disabled = false;
  }
}

document.addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-action]");
  if (b) {
    const id = encodeURIComponent(b.dataset.target);
    const a = b.dataset.action;
    if (a === "kill" || a === "stop" || a === "restart") post("api/instances/" + id + "/" + a, undefined, b);
    else post("api/instances/" + id + "/fault", { fault: a === "heal" ? "ok" : a }, b);
    return;
  }
  const sw = ev.target.closest("#traffic-toggle");
  if (sw) post("api/traffic", { on: sw.dataset.on !== "true" }, sw);
});

connect();
