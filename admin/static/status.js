// Avocet status page: polls api/v1/status every second and shows it.
// No libraries: the chart is SVG drawn here.
"use strict";

(function () {
  const POLL_MS = 1000;
  const HISTORY = 120; // samples kept for the chart: two minutes
  const SVG_NS = "http://www.w3.org/2000/svg";

  const history = []; // {in, out}: messages per second between two polls
  let previous = null; // {at, received, sent}

  const $ = (id) => document.getElementById(id);

  // set writes text into element id and keeps the raw value in data-value.
  function set(id, text, value) {
    const el = $(id);
    if (!el) return;
    el.textContent = text;
    if (value !== undefined) el.dataset.value = String(value);
  }

  function count(n) {
    return String(n);
  }

  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let v = n;
    let u = 0;
    while (v >= 1024 && u < units.length - 1) {
      v /= 1024;
      u++;
    }
    return (u === 0 ? String(v) : v.toFixed(1)) + " " + units[u];
  }

  function duration(sec) {
    const d = Math.floor(sec / 86400);
    const h = Math.floor((sec % 86400) / 3600);
    const m = Math.floor((sec % 3600) / 60);
    const s = sec % 60;
    if (d > 0) return d + "d " + h + "h " + m + "m";
    if (h > 0) return h + "h " + m + "m " + s + "s";
    if (m > 0) return m + "m " + s + "s";
    return s + "s";
  }

  function perSecond(x) {
    return x < 10 ? x.toFixed(1) : String(Math.round(x));
  }

  function render(st, at) {
    set("node", st.node);
    set("version", st.version);
    set("uptime", duration(st.uptime_seconds), st.uptime_seconds);
    const health = $("health");
    health.textContent = st.health;
    health.className = "badge " + (st.health === "ok" ? "ok" : "warn");

    set("connections", count(st.connections.current), st.connections.current);
    set("clients", count(st.connections.clients), st.connections.clients);
    set("connections-total", count(st.connections.total), st.connections.total);
    set("connections-refused", count(st.connections.refused), st.connections.refused);
    set("sessions-online", count(st.sessions.online), st.sessions.online);
    set("sessions-offline", count(st.sessions.offline), st.sessions.offline);
    set("subscriptions", count(st.subscriptions), st.subscriptions);
    set("protocol-errors", count(st.protocol_errors), st.protocol_errors);
    set("retained-messages", count(st.retained.messages), st.retained.messages);
    set("retained-bytes", bytes(st.retained.bytes), st.retained.bytes);
    set("messages-received", count(st.messages.received), st.messages.received);
    set("messages-sent", count(st.messages.sent), st.messages.sent);
    set("queued", count(st.queued_messages), st.queued_messages);
    set("inflight", count(st.inflight_messages), st.inflight_messages);
    set("outbound-bytes", bytes(st.outbound_bytes), st.outbound_bytes);

    const reasons = Object.keys(st.messages.dropped).sort();
    let dropped = 0;
    const parts = [];
    for (const r of reasons) {
      const n = st.messages.dropped[r];
      dropped += n;
      if (n > 0) parts.push(r.replace(/_/g, " ") + " " + n);
    }
    set("dropped", count(dropped), dropped);
    set("dropped-by-reason", parts.length ? parts.join(" \u00b7 ") : "none");

    const store = $("store");
    if (st.store) {
      store.hidden = false;
      set("store-size", bytes(st.store.size), st.store.size);
      set("store-batches", count(st.store.batches), st.store.batches);
      set("store-last-batch", st.store.last_batch_ms.toFixed(2) + " ms", st.store.last_batch_ms);
    } else {
      store.hidden = true;
    }

    renderListeners(st.listeners || []);
    updateBridges(st.bridges || { count: 0, connected: 0 });
    updateCluster(st.cluster);

    if (previous !== null && at > previous.at) {
      const dt = (at - previous.at) / 1000;
      const rin = Math.max(0, (st.messages.received - previous.received) / dt);
      const rout = Math.max(0, (st.messages.sent - previous.sent) / dt);
      history.push({ in: rin, out: rout });
      if (history.length > HISTORY) history.shift();
      set("rate-in", perSecond(rin), rin);
      set("rate-out", perSecond(rout), rout);
    }
    previous = { at: at, received: st.messages.received, sent: st.messages.sent };
    drawChart();
  }

  function renderListeners(list) {
    const body = $("listeners-body");
    const rows = [];
    for (const l of list) {
      const tr = document.createElement("tr");
      tr.dataset.listener = l.name;
      const cells = [
        [l.name, ""],
        [l.kind, ""],
        [l.address, ""],
        [l.running ? "running" : "stopped", l.running ? "ok" : "warn"],
        [count(l.connections), "num"],
        [count(l.accepted), "num"],
        [count(l.rejected), "num"],
      ];
      for (const [text, cls] of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        if (cls) td.className = cls;
        tr.appendChild(td);
      }
      rows.push(tr);
    }
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = 7;
      td.className = "empty";
      td.textContent = "no listeners";
      tr.appendChild(td);
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  // updateBridges shows the Bridges panel while any bridge runs, and fetches
  // their rows from api/v1/bridges, which the status only counts.
  async function updateBridges(sum) {
    const panel = $("bridges-panel");
    set("bridges-count", count(sum.count), sum.count);
    set("bridges-connected", count(sum.connected), sum.connected);
    if (sum.count === 0) {
      panel.hidden = true;
      $("bridges-body").replaceChildren();
      return;
    }
    try {
      const res = await fetch("api/v1/bridges?limit=1000", { cache: "no-store", credentials: "same-origin" });
      if (!res.ok) return;
      const page = await res.json();
      renderBridges(page.items || []);
      panel.hidden = false;
    } catch (err) {
      // The next poll tries again; the status poll reports an unreachable server.
    }
  }

  function renderBridges(list) {
    const rows = [];
    for (const b of list) {
      const tr = document.createElement("tr");
      tr.dataset.bridge = b.name;
      const cells = [
        [b.name, ""],
        [b.connected ? "connected" : "disconnected", b.connected ? "ok" : "warn"],
        [b.address || "\u2013", ""],
        [count(b.queued), "num"],
        [count(b.forwarded_in), "num"],
        [count(b.forwarded_out), "num"],
        [count(b.dropped), "num"],
        [count(b.reconnects), "num"],
      ];
      for (const [text, cls] of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        if (cls) td.className = cls;
        tr.appendChild(td);
      }
      rows.push(tr);
    }
    $("bridges-body").replaceChildren(...rows);
  }

  // updateCluster shows the Cluster panel on a node of a cluster (the status
  // then has a cluster summary), with its members and links from
  // api/v1/cluster; on a single node the panel stays hidden.
  async function updateCluster(sum) {
    const panel = $("cluster-panel");
    if (!sum) {
      panel.hidden = true;
      $("cluster-members-body").replaceChildren();
      $("cluster-links-body").replaceChildren();
      return;
    }
    set("cluster-members", count(sum.members), sum.members);
    set("cluster-alive", count(sum.alive), sum.alive);
    const split = $("cluster-netsplit");
    split.textContent = sum.netsplit ? "netsplit" : "connected";
    split.className = "badge " + (sum.netsplit ? "bad" : "ok");
    try {
      const res = await fetch("api/v1/cluster", { cache: "no-store", credentials: "same-origin" });
      if (!res.ok) return;
      const cl = await res.json();
      set("cluster-node", cl.node);
      set("cluster-forwarded", count(cl.forwarded), cl.forwarded);
      set("cluster-received", count(cl.received), cl.received);
      set("cluster-forward-drops", count(cl.forward_drops), cl.forward_drops);
      renderClusterMembers(cl.members || []);
      renderClusterLinks(cl.links || []);
      panel.hidden = false;
    } catch (err) {
      // The next poll tries again; the status poll reports an unreachable server.
    }
  }

  // rowOf makes a table row of [text, class] cells.
  function rowOf(cells) {
    const tr = document.createElement("tr");
    for (const [text, cls] of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    return tr;
  }

  // emptyRow is a table's only row when it has nothing to list.
  function emptyRow(span, text) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = span;
    td.className = "empty";
    td.textContent = text;
    tr.appendChild(td);
    return tr;
  }

  function renderClusterMembers(list) {
    const rows = [];
    for (const m of list) {
      const tr = rowOf([
        [m.name, ""],
        [m.state, m.state === "alive" ? "ok" : m.state === "left" ? "" : "warn"],
        [m.gossip_addr || "\u2013", ""],
        [m.link_addr || "\u2013", ""],
      ]);
      tr.dataset.member = m.name;
      rows.push(tr);
    }
    if (rows.length === 0) rows.push(emptyRow(4, "no members"));
    $("cluster-members-body").replaceChildren(...rows);
  }

  function renderClusterLinks(list) {
    const rows = [];
    for (const l of list) {
      const tr = rowOf([
        [l.node, ""],
        [l.connected ? "up" : "down", l.connected ? "ok" : "warn"],
        [l.addr || "\u2013", ""],
        [count(l.queued), "num"],
        [count(l.unacked), "num"],
        [count(l.sent), "num"],
        [count(l.acked), "num"],
        [count(l.dropped), "num"],
        [count(l.reconnects), "num"],
      ]);
      tr.dataset.peer = l.node;
      rows.push(tr);
    }
    if (rows.length === 0) rows.push(emptyRow(9, "no peers"));
    $("cluster-links-body").replaceChildren(...rows);
  }

  // tick labels an axis value with no more digits than it needs.
  function tick(x) {
    return String(Number(x.toPrecision(3)));
  }

  // niceCeil rounds a chart's maximum up to 1, 2 or 5 times a power of ten.
  function niceCeil(x) {
    if (x <= 1) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(x)));
    for (const m of [1, 2, 5, 10]) {
      if (x <= m * p) return m * p;
    }
    return 10 * p;
  }

  function svg(name, attrs, text) {
    const el = document.createElementNS(SVG_NS, name);
    for (const k of Object.keys(attrs)) el.setAttribute(k, String(attrs[k]));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function drawChart() {
    const chart = $("msg-rate");
    const W = 720, H = 180, left = 48, right = 8, top = 8, bottom = 20;
    const w = W - left - right, h = H - top - bottom;
    let peak = 0;
    for (const p of history) peak = Math.max(peak, p.in, p.out);
    const max = niceCeil(peak);
    const nodes = [];
    for (let i = 0; i <= 4; i++) {
      const y = top + h - (h * i) / 4;
      nodes.push(svg("line", { x1: left, x2: left + w, y1: y, y2: y, class: "grid" }));
      nodes.push(svg("text", { x: left - 6, y: y + 4, class: "axis", "text-anchor": "end" }, tick((max * i) / 4)));
    }
    nodes.push(svg("text", { x: left, y: H - 4, class: "axis" }, "\u22122 min"));
    nodes.push(svg("text", { x: left + w, y: H - 4, class: "axis", "text-anchor": "end" }, "now"));
    const line = (key, cls) => {
      if (history.length < 2) return;
      const pts = [];
      const start = HISTORY - history.length;
      history.forEach((p, i) => {
        const x = left + (w * (start + i)) / (HISTORY - 1);
        const y = top + h - (h * p[key]) / max;
        pts.push(x.toFixed(1) + "," + y.toFixed(1));
      });
      nodes.push(svg("polyline", { points: pts.join(" "), class: "series " + cls }));
    };
    line("in", "in");
    line("out", "out");
    chart.replaceChildren(...nodes);
    chart.dataset.points = String(history.length);
    if (history.length > 0) {
      const p = history[history.length - 1];
      chart.dataset.in = perSecond(p.in);
      chart.dataset.out = perSecond(p.out);
    }
  }

  async function poll() {
    try {
      const res = await fetch("api/v1/status", { cache: "no-store", credentials: "same-origin" });
      if (!res.ok) throw new Error("status request answered " + res.status);
      const st = await res.json();
      render(st, performance.now());
      $("error").hidden = true;
      set("updated", "updated " + new Date().toLocaleTimeString());
      document.body.dataset.state = "ready";
    } catch (err) {
      const e = $("error");
      e.textContent = String(err && err.message ? err.message : err);
      e.hidden = false;
      const health = $("health");
      health.textContent = "unreachable";
      health.className = "badge bad";
      document.body.dataset.state = "error";
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  drawChart();
  poll();
})();
