// The herd status page. Every two seconds it asks the admin listener that
// served it for GET api/herd (this server's status and every other server's,
// read server-side) and redraws the topology, the servers' rates and totals,
// and the map of client locations. The latest updates come live from
// GET api/monitor, a stream of Server-Sent Events. A failed poll leaves the
// last drawing and is retried; the stream reconnects by itself.
//
// Server names and client ids are untrusted: every value from the herd goes
// into the page as text (textContent, setAttribute), never as HTML.
'use strict';

(() => {
  const POLL_MS = 2000;
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const RING = 145; // radius of the topology drawing
  const MAX_UPDATES = 100;
  // A server numbers its changes from a multiple of 2^32 that grows with
  // each start (see herd.Node.FinishRestore): head mod 2^32 is what it
  // stored since it started.
  const RUN = 2 ** 32;

  // el makes an HTML element with the given text and class.
  function el(tag, text, className) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = String(text);
    if (className) e.className = className;
    return e;
  }

  // svg makes an SVG element with the given attributes.
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  function titled(e, text) {
    const t = svg('title');
    t.textContent = text;
    e.appendChild(t);
    return e;
  }

  const byName = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
  const integer = (n) => Math.round(n).toLocaleString('en-US');

  function rateText(r) {
    if (r === undefined) return '–';
    if (r === 0) return '0/s';
    return `${r < 10 ? r.toFixed(1) : integer(r)}/s`;
  }

  // ---- topology ----

  // edgeList returns every link once, as [a, b] with a < b.
  function edgeList(servers) {
    const names = new Set(servers.map((m) => m.name));
    const seen = new Set();
    const edges = [];
    for (const m of servers) {
      for (const n of m.neighbors) {
        if (!names.has(n)) continue;
        const e = [m.name, n].sort(byName);
        const key = JSON.stringify(e);
        if (!seen.has(key)) {
          seen.add(key);
          edges.push(e);
        }
      }
    }
    return edges.sort((x, y) => byName(x[0], y[0]) || byName(x[1], y[1]));
  }

  // cycleOrder returns the servers in the order of the ring they form when
  // every one has exactly two neighbors and they are all connected, so that
  // a ring drawn on a circle crosses no link; otherwise null.
  function cycleOrder(names, adj) {
    if (names.length < 3 || names.some((n) => adj.get(n).length !== 2)) return null;
    const order = [names[0]];
    let prev = null;
    let cur = names[0];
    for (;;) {
      const next = adj.get(cur).filter((n) => n !== prev).sort(byName)[0];
      if (next === names[0]) break;
      if (order.includes(next)) return null;
      order.push(next);
      prev = cur;
      cur = next;
    }
    return order.length === names.length ? order : null;
  }

  // forceLayout places servers by a deterministic spring embedding: links
  // pull their ends together, all servers push each other apart. It starts
  // from the servers on a circle in breadth-first order from the first.
  function forceLayout(names, adj, edges) {
    const order = [];
    for (const start of names) {
      if (order.includes(start)) continue;
      const queue = [start];
      order.push(start);
      while (queue.length) {
        for (const n of adj.get(queue.shift()).slice().sort(byName)) {
          if (!order.includes(n)) {
            order.push(n);
            queue.push(n);
          }
        }
      }
    }
    const pos = new Map(order.map((n, i) => {
      const a = -Math.PI / 2 + (2 * Math.PI * i) / order.length;
      return [n, { x: RING * Math.cos(a), y: RING * Math.sin(a) }];
    }));
    const k = (2 * RING) / Math.sqrt(names.length);
    let temp = RING / 2;
    for (let iter = 0; iter < 300; iter++) {
      const disp = new Map(names.map((n) => [n, { x: 0, y: 0 }]));
      for (let i = 0; i < names.length; i++) {
        for (let j = i + 1; j < names.length; j++) {
          const p = pos.get(names[i]);
          const q = pos.get(names[j]);
          const dx = p.x - q.x || 0.01;
          const dy = p.y - q.y || 0.01;
          const d = Math.hypot(dx, dy);
          const f = (k * k) / d;
          disp.get(names[i]).x += (dx / d) * f;
          disp.get(names[i]).y += (dy / d) * f;
          disp.get(names[j]).x -= (dx / d) * f;
          disp.get(names[j]).y -= (dy / d) * f;
        }
      }
      for (const [a, b] of edges) {
        const p = pos.get(a);
        const q = pos.get(b);
        const dx = p.x - q.x;
        const dy = p.y - q.y;
        const d = Math.hypot(dx, dy) || 0.01;
        const f = (d * d) / k;
        disp.get(a).x -= (dx / d) * f;
        disp.get(a).y -= (dy / d) * f;
        disp.get(b).x += (dx / d) * f;
        disp.get(b).y += (dy / d) * f;
      }
      for (const n of names) {
        const v = disp.get(n);
        const d = Math.hypot(v.x, v.y) || 1;
        const p = pos.get(n);
        p.x += (v.x / d) * Math.min(d, temp);
        p.y += (v.y / d) * Math.min(d, temp);
      }
      temp *= 0.98;
    }
    // Centre and scale into the drawing.
    const xs = names.map((n) => pos.get(n).x);
    const ys = names.map((n) => pos.get(n).y);
    const cx = (Math.max(...xs) + Math.min(...xs)) / 2;
    const cy = (Math.max(...ys) + Math.min(...ys)) / 2;
    const span = Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys), 1);
    for (const p of pos.values()) {
      p.x = ((p.x - cx) / span) * 2 * RING;
      p.y = ((p.y - cy) / span) * 2 * RING;
    }
    return pos;
  }

  let layoutKey = '';
  let layoutPos = new Map();

  // layout places the servers from their links, once per topology.
  function layout(names, edges) {
    const key = JSON.stringify([names, edges]);
    if (key === layoutKey) return layoutPos;
    const adj = new Map(names.map((n) => [n, []]));
    for (const [a, b] of edges) {
      adj.get(a).push(b);
      adj.get(b).push(a);
    }
    const ring = cycleOrder(names, adj);
    if (ring) {
      layoutPos = new Map(ring.map((n, i) => {
        const a = -Math.PI / 2 + (2 * Math.PI * i) / ring.length;
        return [n, { x: RING * Math.cos(a), y: RING * Math.sin(a) }];
      }));
    } else if (names.length === 1) {
      layoutPos = new Map([[names[0], { x: 0, y: 0 }]]);
    } else {
      layoutPos = forceLayout(names, adj, edges);
    }
    layoutKey = key;
    return layoutPos;
  }

  // linkOf returns what server m reports of its link to peer, or null when
  // m did not answer or has no such link.
  function linkOf(m, peer) {
    if (!m || !m.status || !Array.isArray(m.status.links)) return null;
    return m.status.links.find((l) => l.peer === peer) || null;
  }

  const word = (up) => (up ? 'up' : 'down');

  // edgeState decides how the link between servers a and b is drawn. Each
  // direction is reported by both ends (a's "out" is b's "in"). The edge is
  // up only when every report there is says both directions are up, down
  // when one says a direction is down, and unknown when neither end answered.
  function edgeState(a, b) {
    const la = linkOf(a, b.name);
    const lb = linkOf(b, a.name);
    const lines = [];
    if (la) lines.push(`${a.name} reports ${a.name} → ${b.name} ${word(la.out_up)}, ${b.name} → ${a.name} ${word(la.in_up)}`);
    else lines.push(`${a.name}: no report (${a.state})`);
    if (lb) lines.push(`${b.name} reports ${b.name} → ${a.name} ${word(lb.out_up)}, ${a.name} → ${b.name} ${word(lb.in_up)}`);
    else lines.push(`${b.name}: no report (${b.state})`);
    let state = 'unknown';
    if (la || lb) {
      const ok = (l) => !l || (l.out_up && l.in_up);
      state = ok(la) && ok(lb) ? 'up' : 'down';
    }
    return { state, title: `${a.name} — ${b.name}: ${state}\n${lines.join('\n')}` };
  }

  function stateWords(m) {
    switch (m.state) {
      case 'up': return `${integer(m.status.clients)} clients`;
      case 'wrong_server': return 'wrong server answers';
      case 'unknown': return 'no admin address';
      default: return m.state;
    }
  }

  function drawTopology(h, members) {
    const names = h.servers.map((m) => m.name);
    const edges = edgeList(h.servers);
    const pos = layout(names, edges);
    const edgeGroup = svg('g');
    for (const [an, bn] of edges) {
      const a = members.get(an);
      const b = members.get(bn);
      const { state, title } = edgeState(a, b);
      const p = pos.get(an);
      const q = pos.get(bn);
      const line = svg('line', { x1: p.x, y1: p.y, x2: q.x, y2: q.y, 'data-a': an, 'data-b': bn, 'data-state': state });
      edgeGroup.appendChild(titled(line, title));
    }
    const nodeGroup = svg('g');
    for (const n of names) {
      const m = members.get(n);
      const p = pos.get(n);
      const g = svg('g', { 'data-name': n, 'data-state': m.state, 'data-self': n === h.self, 'data-x': p.x, 'data-y': p.y });
      g.appendChild(svg('circle', { cx: p.x, cy: p.y, r: 18 }));
      // Labels go outwards from the centre, so that they clear the links.
      const d = Math.hypot(p.x, p.y);
      const ux = d > 1 ? p.x / d : 0;
      const uy = d > 1 ? p.y / d : -1;
      const anchor = Math.abs(ux) < 0.35 ? 'middle' : ux > 0 ? 'start' : 'end';
      const lx = p.x + 30 * ux;
      const ly = p.y + 30 * uy + (uy < -0.35 ? -10 : uy > 0.35 ? 8 : 0);
      const label = svg('text', { x: lx, y: ly, 'text-anchor': anchor });
      label.textContent = n;
      const detail = svg('text', { x: lx, y: ly + 16, 'text-anchor': anchor, class: 'detail' });
      detail.textContent = stateWords(m);
      g.append(label, detail);
      let title = `${n}: ${m.state}`;
      if (m.error) title += `\n${m.error}`;
      if (m.admin) title += `\nadmin ${m.admin}`;
      nodeGroup.appendChild(titled(g, title));
    }
    document.getElementById('topology').replaceChildren(edgeGroup, nodeGroup);
  }

  // ---- servers table ----

  // previous holds each server's last sample, for rates.
  const previous = new Map();

  // sample reads the values the table shows rates of.
  function sample(st) {
    const c = st.counters;
    return {
      t: Date.parse(st.time) / 1000,
      stored: st.head_seq % RUN,
      iamat: c.iamat,
      whatsat: c.whatsat,
      invalid: c.invalid,
      flood_in: c.flood_in,
      flood_out: c.flood_out,
      flood_dup: c.flood_dup,
      catchup: c.catchup_sent + c.catchup_received,
    };
  }

  function countCell(key, now, before, title) {
    const td = el('td');
    let rate;
    if (before && now.t > before.t && now[key] >= before[key]) rate = (now[key] - before[key]) / (now.t - before.t);
    td.dataset.total = String(now[key]);
    if (rate !== undefined) td.dataset.rate = rate.toFixed(3);
    td.append(el('span', rateText(rate), 'rate'), el('span', integer(now[key]), 'total'));
    if (title) td.title = title;
    return td;
  }

  function drawServers(h) {
    const rows = h.servers.map((m) => {
      const tr = el('tr');
      tr.dataset.name = m.name;
      tr.dataset.self = String(m.name === h.self);
      tr.appendChild(el('td', m.name, 'name'));
      const words = { up: 'up', down: 'down', wrong_server: 'wrong server', unknown: 'unknown' };
      const st = m.status;
      tr.appendChild(el('td', st && !st.ready ? 'up, not ready' : words[m.state] || m.state, `state state-${m.state}`));
      if (!st) {
        previous.delete(m.name);
        const td = el('td', m.error || (m.admin ? '' : 'It has no admin address in the configuration, so it cannot be asked.'), 'message');
        td.colSpan = 11;
        tr.appendChild(td);
        return tr;
      }
      const now = sample(st);
      const before = previous.get(m.name);
      previous.set(m.name, now);
      const run = Math.floor(st.head_seq / RUN);
      tr.appendChild(el('td', integer(st.clients)));
      tr.appendChild(countCell('stored', now, before,
        `change sequence ${st.head_seq}: record ${now.stored} of this run (run ${run}; each start begins at the next multiple of 2^32)`));
      for (const key of ['iamat', 'whatsat', 'invalid', 'flood_in', 'flood_out', 'flood_dup', 'catchup']) {
        tr.appendChild(countCell(key, now, before));
      }
      const c = st.counters;
      const conns = el('td');
      conns.append(el('span', integer(c.conns_open), 'rate'), el('span', `${integer(c.conns_refused)} refused`, 'total'));
      tr.appendChild(conns);
      const out = st.links.filter((l) => l.out_up).length;
      const inn = st.links.filter((l) => l.in_up).length;
      const links = el('td');
      links.append(el('span', `${out}/${inn}`, 'rate'), el('span', `of ${st.links.length}`, 'total'));
      links.title = st.links.map((l) => `${l.peer}: out ${word(l.out_up)}, in ${word(l.in_up)}${l.last_error ? ` (${l.last_error})` : ''}`).join('\n');
      tr.appendChild(links);
      return tr;
    });
    document.querySelector('#servers tbody').replaceChildren(...rows);
  }

  // ---- latest updates ----

  let updates = []; // newest first
  let streamed = false; // the stream has delivered an update

  function addUpdates(list, fresh) {
    const seen = new Set(updates.map((u) => u.seq));
    const added = list.filter((u) => !seen.has(u.seq));
    for (const u of added) u.fresh = fresh;
    updates = added.concat(updates).sort((a, b) => b.seq - a.seq).slice(0, MAX_UPDATES);
    drawUpdates();
  }

  function drawUpdates() {
    const items = updates.map((u) => {
      const li = el('li', undefined, u.fresh ? 'fresh' : undefined);
      u.fresh = false;
      li.dataset.seq = String(u.seq);
      li.append(el('span', u.client, 'client'), el('span', u.from ? ` via ${u.from}` : ' taken here', 'from'));
      // One span per field: a line wraps between fields, never inside one.
      const at = el('span', undefined, 'at');
      u.line.split(' ').forEach((field, i) => {
        if (i > 0) at.append(' ');
        at.appendChild(el('span', field));
      });
      li.appendChild(at);
      return li;
    });
    if (items.length === 0) items.push(el('li', 'no updates yet', 'empty'));
    document.getElementById('updates').replaceChildren(...items);
  }

  const stream = document.getElementById('stream');

  function connectStream() {
    if (!window.EventSource) {
      stream.textContent = 'This browser cannot stream updates; the list follows the polls.';
      return;
    }
    const es = new EventSource('api/monitor');
    let count = 0;
    es.addEventListener('start', () => {
      stream.dataset.state = 'live';
      stream.textContent = 'Live: updates stream from api/monitor.';
    });
    es.addEventListener('update', (ev) => {
      streamed = true;
      count++;
      addUpdates([JSON.parse(ev.data)], true);
      stream.textContent = `Live: ${integer(count)} update${count === 1 ? '' : 's'} streamed from api/monitor.`;
    });
    es.addEventListener('skipped', (ev) => {
      const s = JSON.parse(ev.data);
      stream.textContent = `Live, but behind: updates ${s.from + 1} to ${s.to} were left out.`;
    });
    es.onerror = () => {
      stream.dataset.state = 'error';
      stream.textContent = 'The update stream broke; reconnecting…';
    };
  }

  // ---- map ----

  const map = document.getElementById('map');
  const view = { x: 0, y: 0, k: 1 }; // centre (longitude, -latitude) and zoom
  const MAX_ZOOM = 64;
  let locations = [];
  let clientCount = 0;
  let land = null;

  function viewBox() {
    const w = 360 / view.k;
    const hgt = 180 / view.k;
    view.x = Math.min(180 - w / 2, Math.max(-180 + w / 2, view.x));
    view.y = Math.min(90 - hgt / 2, Math.max(-90 + hgt / 2, view.y));
    return { x: view.x - w / 2, y: view.y - hgt / 2, w, h: hgt };
  }

  // gridStep picks graticule spacing that gives a handful of lines.
  function gridStep(span) {
    for (const s of [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30]) if (span / s <= 12) return s;
    return 30;
  }

  const fmtDeg = (v, pos, neg) => {
    const a = Math.abs(v);
    const t = Number.isInteger(a) ? String(a) : a.toFixed(a < 1 ? 2 : 1).replace(/0+$/, '');
    return v === 0 ? '0°' : `${t}°${v > 0 ? pos : neg}`;
  };

  // density colours a group by how many clients it holds: blue for one,
  // through violet, to red for a thousand and more.
  function density(n) {
    const t = Math.min(1, Math.log10(n) / 3);
    return `hsl(${Math.round(218 + 142 * t)}, 72%, ${Math.round(48 - 6 * t)}%)`;
  }

  function drawMap() {
    const vb = viewBox();
    map.setAttribute('viewBox', `${vb.x} ${vb.y} ${vb.w} ${vb.h}`);
    map.setAttribute('preserveAspectRatio', 'xMidYMid slice');
    map.dataset.zoom = String(view.k);
    const ppd = (map.clientWidth || 720) / vb.w; // pixels per degree
    const px = (n) => n / ppd;
    const parts = [];
    if (land) parts.push(svg('path', { d: land, class: 'land' }));

    const step = gridStep(vb.w);
    const grid = [];
    const labels = [];
    for (let lng = Math.ceil(vb.x / step) * step; lng <= vb.x + vb.w; lng += step) {
      grid.push(`M${lng} ${vb.y}V${vb.y + vb.h}`);
      if (lng < vb.x + px(30)) continue; // the corner is the latitudes'
      const t = svg('text', { x: lng + px(3), y: vb.y + vb.h - px(5), 'font-size': px(10), class: 'axis' });
      t.textContent = fmtDeg(Math.round(lng * 100) / 100, 'E', 'W');
      labels.push(t);
    }
    for (let y = Math.ceil(vb.y / step) * step; y <= vb.y + vb.h; y += step) {
      grid.push(`M${vb.x} ${y}H${vb.x + vb.w}`);
      if (y > vb.y + vb.h - px(20) || y < vb.y + px(14)) continue; // clear of the longitudes and the edge
      const t = svg('text', { x: vb.x + px(4), y: y - px(3), 'font-size': px(10), class: 'axis' });
      t.textContent = fmtDeg(Math.round(-y * 100) / 100, 'N', 'S');
      labels.push(t);
    }
    parts.push(svg('path', { d: grid.join(''), class: 'graticule' }), ...labels);

    // Group each client with the first group whose centre lies within 18
    // pixels, or start a group; a grid of cells that size finds the
    // candidates.
    const reach = px(18);
    const cells = new Map();
    const groups = [];
    for (const [lat, lng] of locations) {
      const x = lng;
      const y = -lat;
      const cx = Math.floor(x / reach);
      const cy = Math.floor(y / reach);
      let found = null;
      for (let dx = -1; dx <= 1 && !found; dx++) {
        for (let dy = -1; dy <= 1 && !found; dy++) {
          for (const g of cells.get(`${cx + dx},${cy + dy}`) || []) {
            if (Math.hypot(g.x / g.n - x, g.y / g.n - y) <= reach) {
              found = g;
              break;
            }
          }
        }
      }
      if (found) {
        found.n++;
        found.x += x;
        found.y += y;
        continue;
      }
      const g = { n: 1, x, y };
      groups.push(g);
      const key = `${cx},${cy}`;
      cells.set(key, (cells.get(key) || []).concat([g]));
    }
    // Small groups last, on top of big ones.
    for (const g of groups.sort((a, b) => b.n - a.n)) {
      const cx = g.x / g.n;
      const cy = g.y / g.n;
      const r = px(4 + 3.5 * Math.log2(g.n));
      const c = svg('circle', { cx, cy, r, fill: density(g.n), class: 'cluster', 'data-count': g.n });
      const where = `${fmtDeg(Math.round(-cy * 100) / 100, 'N', 'S')} ${fmtDeg(Math.round(cx * 100) / 100, 'E', 'W')}`;
      parts.push(titled(c, `${integer(g.n)} client${g.n === 1 ? '' : 's'} around ${where}`));
      if (g.n > 1) {
        const t = svg('text', { x: cx, y: cy, 'font-size': px(g.n >= 100 ? 10 : 11), class: 'count' });
        t.textContent = g.n >= 10000 ? `${Math.round(g.n / 1000)}k` : String(g.n);
        parts.push(t);
      }
    }
    map.replaceChildren(...parts);
    document.getElementById('map-note').textContent =
      `${integer(locations.length)} most recently updated of ${integer(clientCount)} clients known to this server; zoom ×${view.k}`;
  }

  // zoomAt zooms by factor keeping the point under (fx, fy), fractions of
  // the map's width and height, in place.
  function zoomAt(factor, fx, fy) {
    const before = viewBox();
    const wx = before.x + fx * before.w;
    const wy = before.y + fy * before.h;
    view.k = Math.min(MAX_ZOOM, Math.max(1, view.k * factor));
    const w = 360 / view.k;
    const hgt = 180 / view.k;
    view.x = wx - fx * w + w / 2;
    view.y = wy - fy * hgt + hgt / 2;
    drawMap();
  }

  function fraction(ev) {
    const r = map.getBoundingClientRect();
    return [(ev.clientX - r.left) / r.width, (ev.clientY - r.top) / r.height];
  }

  map.addEventListener('wheel', (ev) => {
    ev.preventDefault();
    zoomAt(Math.pow(2, -ev.deltaY / 300), ...fraction(ev));
  }, { passive: false });
  map.addEventListener('dblclick', (ev) => zoomAt(2, ...fraction(ev)));
  document.getElementById('zoom-in').addEventListener('click', () => zoomAt(2, 0.5, 0.5));
  document.getElementById('zoom-out').addEventListener('click', () => zoomAt(0.5, 0.5, 0.5));
  document.getElementById('zoom-reset').addEventListener('click', () => {
    view.x = 0;
    view.y = 0;
    view.k = 1;
    drawMap();
  });
  let drag = null;
  map.addEventListener('pointerdown', (ev) => {
    drag = { x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y };
    map.setPointerCapture(ev.pointerId);
    map.classList.add('dragging');
  });
  map.addEventListener('pointermove', (ev) => {
    if (!drag) return;
    const vb = viewBox();
    const r = map.getBoundingClientRect();
    view.x = drag.vx - ((ev.clientX - drag.x) / r.width) * vb.w;
    view.y = drag.vy - ((ev.clientY - drag.y) / r.height) * vb.h;
    drawMap();
  });
  const endDrag = () => {
    drag = null;
    map.classList.remove('dragging');
  };
  map.addEventListener('pointerup', endDrag);
  map.addEventListener('pointercancel', endDrag);
  window.addEventListener('resize', drawMap);

  async function loadLand() {
    try {
      const resp = await fetch('static/land.json');
      if (!resp.ok) throw new Error(`${resp.status} ${resp.statusText}`);
      land = (await resp.json()).path;
    } catch (err) {
      document.getElementById('map-note').textContent = `The world map did not load (${err.message}).`;
    }
    drawMap();
  }

  // ---- polling ----

  function draw(h) {
    h.servers.sort((a, b) => byName(a.name, b.name));
    const members = new Map(h.servers.map((m) => [m.name, m]));
    const self = members.get(h.self);
    document.getElementById('self').textContent = `— ${h.self}`;
    document.title = `herd: ${h.self}`;
    drawTopology(h, members);
    drawServers(h);
    if (self && self.status) {
      if (!streamed) addUpdates(self.status.recent, false);
      locations = self.status.locations;
      clientCount = self.status.clients;
      drawMap();
    }
  }

  const poll = document.getElementById('poll');

  async function tick() {
    try {
      const resp = await fetch('api/herd', { cache: 'no-store' });
      if (!resp.ok) throw new Error(`${resp.status} ${resp.statusText}`);
      const h = await resp.json();
      draw(h);
      poll.dataset.state = 'ok';
      poll.textContent = `Updated ${new Date(h.time).toLocaleTimeString()}; polling api/herd every ${POLL_MS / 1000} s.`;
    } catch (err) {
      poll.dataset.state = 'error';
      poll.textContent = `Polling api/herd failed (${err.message}); retrying every ${POLL_MS / 1000} s.`;
    } finally {
      setTimeout(tick, POLL_MS);
    }
  }

  drawUpdates();
  loadLand();
  connectStream();
  tick();
})();
