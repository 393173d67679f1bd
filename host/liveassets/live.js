"use strict";
(function () {
  // The stream carries the token this page was opened with: EventSource
  // cannot send an Authorization header.
  const token = new URLSearchParams(location.search).get("token");
  const streamURL = "live/events" + (token ? "?token=" + encodeURIComponent(token) : "");
  const sparkPoints = 60; // seconds of throughput the sparkline shows
  const history = [];
  const $ = (id) => document.getElementById(id);
  const nf = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });

  function rate(v) {
    if (v === 0) return "0";
    return v < 100 ? v.toFixed(1) : nf.format(v);
  }
  function ms(l, key) {
    if (!l || l.count === 0) return "–";
    const v = l[key];
    if (v < 1) return v.toFixed(3) + " ms";
    if (v < 10) return v.toFixed(2) + " ms";
    if (v < 100) return v.toFixed(1) + " ms";
    return nf.format(v) + " ms";
  }
  function duration(s) {
    s = Math.floor(s);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const two = (n) => String(n).padStart(2, "0");
    return h > 0 ? h + "h " + two(m) + "m " + two(sec) + "s" : m > 0 ? m + "m " + two(sec) + "s" : sec + "s";
  }
  function setText(id, text) { $(id).textContent = text; }
  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
  }
  function status(text, cls) {
    const b = $("status");
    b.textContent = text;
    b.className = "badge " + cls;
  }

  function renderKinds(kinds) {
    const body = $("kinds").tBodies[0];
    const rows = [];
    for (const k of kinds) {
      if (k.kind === "other" && k.answered === 0) continue; // requests of no known kind
      const tr = document.createElement("tr");
      tr.dataset.kind = k.kind;
      if (k.tasks_per_s === 0) tr.className = "idle";
      cell(tr, k.kind);
      cell(tr, rate(k.tasks_per_s));
      cell(tr, rate(k.errors_per_s));
      cell(tr, nf.format(k.answered));
      cell(tr, ms(k.run, "p50_ms"));
      cell(tr, ms(k.run, "p99_ms"));
      cell(tr, ms(k.total, "p50_ms"));
      cell(tr, ms(k.total, "p99_ms"));
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  function renderWorkers(workers) {
    const body = $("workers").tBodies[0];
    const rows = workers.map((w) => {
      const tr = document.createElement("tr");
      tr.dataset.worker = w.id;
      cell(tr, w.id);
      cell(tr, w.pid > 0 ? String(w.pid) : "–");
      cell(tr, w.state || "–", "state-" + String(w.state || "unknown").replace(/[^a-z]/g, ""));
      cell(tr, nf.format(w.tasks));
      cell(tr, nf.format(w.restarts));
      cell(tr, w.sandbox || "–", "sandbox"); // the worker's confinement, as the strategy states it
      return tr;
    });
    body.replaceChildren(...rows);
    $("workers").hidden = rows.length === 0;
    $("no-workers").hidden = rows.length > 0;
    setText("worker-count", rows.length > 0 ? "(" + rows.length + ")" : "");
  }

  function drawSpark() {
    const c = $("spark");
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(c.clientWidth * dpr)), h = Math.max(1, Math.round(c.clientHeight * dpr));
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    const g = c.getContext("2d");
    g.clearRect(0, 0, w, h);
    const peak = Math.max(1, ...history);
    setText("spark-peak", history.length ? rate(Math.max(...history)) : "–");
    if (history.length < 2) return;
    const pad = 6 * dpr, step = (w - 2 * pad) / (sparkPoints - 1);
    const x = (i) => pad + (sparkPoints - history.length + i) * step;
    const y = (v) => h - pad - (v / peak) * (h - 2 * pad);
    g.beginPath();
    history.forEach((v, i) => (i === 0 ? g.moveTo(x(i), y(v)) : g.lineTo(x(i), y(v))));
    g.lineWidth = 2 * dpr;
    g.strokeStyle = "#2f6fdf";
    g.stroke();
    g.lineTo(x(history.length - 1), h - pad);
    g.lineTo(x(0), h - pad);
    g.closePath();
    g.fillStyle = "rgba(47, 111, 223, 0.12)";
    g.fill();
  }

  function render(ev) {
    setText("strategy", ev.strategy);
    setText("description", ev.description);
    document.title = "wslab live: " + ev.strategy;
    if (ev.draining) status("draining", "draining");
    else if (!ev.ready) status("strategy not ready", "down");
    else status("live", "live");
    setText("uptime", duration(ev.uptime_s));
    setText("updated", new Date(ev.time).toLocaleTimeString("en-GB"));
    const first = ev.interval_s === 0; // a stream's first event has no rates yet
    setText("tasks-per-s", first ? "–" : rate(ev.tasks_per_s));
    setText("errors-per-s", first ? "–" : rate(ev.errors_per_s));
    setText("answered", nf.format(ev.answered));
    setText("connections", nf.format(ev.connections));
    setText("queued", nf.format(ev.queued));
    setText("in-strategy", nf.format(ev.in_strategy));
    setText("outstanding", nf.format(ev.outstanding));
    setText("window", nf.format(ev.window));
    setText("latency-window", ev.latency_window_s > 0 ? ev.latency_window_s.toFixed(0) : "–");
    renderKinds(ev.kinds || []);

    const p = ev.plugin;
    setText("plugin", p ? (p.up ? "up, pid " + p.pid : "down") + ", " + p.restarts + " restarts" : "built into the host");
    const x = ev.executor || {};
    setText("executor-load", nf.format(x.running || 0) + " / " + nf.format(x.queued || 0));
    setText("capacity", x.capacity > 0 ? nf.format(x.capacity) + " at once" : "no bound");
    setText("executor-done", nf.format(x.completed || 0) + " / " + nf.format(x.failed || 0));
    setText("executor-restarts", nf.format(x.restarts || 0));
    const err = $("executor-error");
    err.hidden = !ev.executor_error;
    err.textContent = ev.executor_error ? "stats: " + ev.executor_error : "";
    renderWorkers(x.workers || []);

    if (!first) {
      history.push(ev.tasks_per_s);
      if (history.length > sparkPoints) history.shift();
    }
    drawSpark();
    document.body.dataset.events = String(Number(document.body.dataset.events) + 1);
  }

  const es = new EventSource(streamURL);
  es.addEventListener("stats", (e) => {
    let ev;
    try { ev = JSON.parse(e.data); } catch (_) { status("bad event", "down"); return; }
    render(ev);
  });
  es.addEventListener("error", () => {
    // CLOSED: refused (401, 503) or gone for good; else reconnecting.
    status(es.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting", "down");
  });
  window.addEventListener("resize", drawSpark);
  setText("spark-span", String(sparkPoints));
})();
