// The herd status page. Every second it asks the admin listener that served
// it for GET api/herd (this server's status and every other server's, read
// server-side) and redraws the topology, the counters, the latest updates
// and the scatter of client locations. A failed poll leaves the last drawing
// and is retried a second later.
//
// Server names and client ids are untrusted: every value from the herd goes
// into the page as text (textContent, setAttribute), never as HTML.
'use strict';

(() => {
  const POLL_MS = 1000;
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const RING = 150; // radius of the circle the servers sit on

  // el makes an HTML element with the given text.
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

  function drawTopology(h, byName) {
    const names = h.servers.map((m) => m.name);
    const pos = new Map();
    names.forEach((n, i) => {
      const angle = -Math.PI / 2 + (2 * Math.PI * i) / names.length;
      pos.set(n, { x: RING * Math.cos(angle), y: RING * Math.sin(angle), angle });
    });
    const edges = svg('g');
    const nodes = svg('g');
    const drawn = new Set();
    for (const m of h.servers) {
      for (const n of m.neighbors) {
        const key = JSON.stringify([m.name, n].sort());
        if (drawn.has(key) || !byName.has(n)) continue;
        drawn.add(key);
        const [a, b] = [m.name, n].sort().map((x) => byName.get(x));
        const { state, title } = edgeState(a, b);
        const p = pos.get(a.name);
        const q = pos.get(b.name);
        const line = svg('line', { x1: p.x, y1: p.y, x2: q.x, y2: q.y, 'data-a': a.name, 'data-b': b.name, 'data-state': state });
        edges.appendChild(titled(line, title));
      }
    }
    for (const n of names) {
      const m = byName.get(n);
      const p = pos.get(n);
      const g = svg('g', { 'data-name': n, 'data-state': m.state, 'data-self': n === h.self });
      g.appendChild(svg('circle', { cx: p.x, cy: p.y, r: 16 }));
      const cos = Math.cos(p.angle);
      const label = svg('text', {
        x: p.x + 28 * cos,
        y: p.y + 28 * Math.sin(p.angle),
        'text-anchor': Math.abs(cos) < 0.3 ? 'middle' : cos > 0 ? 'start' : 'end',
      });
      label.textContent = n;
      g.appendChild(label);
      let title = `${n}: ${m.state}`;
      if (m.error) title += `\n${m.error}`;
      if (m.admin) title += `\nadmin ${m.admin}`;
      nodes.appendChild(titled(g, title));
    }
    document.getElementById('topology').replaceChildren(edges, nodes);
  }

  function drawServers(h) {
    const rows = h.servers.map((m) => {
      const tr = el('tr');
      tr.dataset.name = m.name;
      tr.appendChild(el('td', m.name));
      tr.appendChild(el('td', m.state, `state-${m.state}`));
      const st = m.status;
      if (!st) {
        const td = el('td', m.error || (m.admin ? '' : 'no admin address'), 'text');
        td.colSpan = 15;
        tr.appendChild(td);
        return tr;
      }
      const c = st.counters;
      const out = st.links.filter((l) => l.out_up).length;
      const inn = st.links.filter((l) => l.in_up).length;
      for (const v of [st.ready ? 'yes' : 'no', st.clients, st.head_seq, c.iamat, c.whatsat, c.invalid,
        c.flood_in, c.flood_out, c.flood_dup, c.catchup_sent, c.catchup_received,
        c.conns_open, c.conns_refused, c.places_errors, `${out}/${inn} of ${st.links.length}`]) {
        tr.appendChild(el('td', v));
      }
      return tr;
    });
    document.querySelector('#servers tbody').replaceChildren(...rows);
  }

  function drawUpdates(st) {
    const items = (st ? st.recent : []).map((u) => {
      const li = el('li');
      li.appendChild(el('span', u.client, 'client'));
      li.appendChild(el('span', u.from ? ` from ${u.from}` : ' taken here', 'from'));
      li.appendChild(el('code', u.line));
      return li;
    });
    if (items.length === 0) items.push(el('li', 'no clients yet', 'from'));
    document.getElementById('updates').replaceChildren(...items);
  }

  function drawScatter(st) {
    const locs = st ? st.locations : [];
    const parts = [
      svg('line', { x1: -180, y1: 0, x2: 180, y2: 0, class: 'grid' }),
      svg('line', { x1: 0, y1: -90, x2: 0, y2: 90, class: 'grid' }),
    ];
    for (const [lat, lng] of locs) parts.push(svg('circle', { cx: lng, cy: -lat, r: 1.5 }));
    document.getElementById('scatter').replaceChildren(...parts);
    document.getElementById('scatter-note').textContent =
      `${locs.length} most recently updated of ${st ? st.clients : 0} clients`;
  }

  function draw(h) {
    h.servers.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const byName = new Map(h.servers.map((m) => [m.name, m]));
    const self = byName.get(h.self);
    document.getElementById('self').textContent = `— ${h.self}`;
    document.title = `herd: ${h.self}`;
    drawTopology(h, byName);
    drawServers(h);
    drawUpdates(self && self.status);
    drawScatter(self && self.status);
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

  tick();
})();
