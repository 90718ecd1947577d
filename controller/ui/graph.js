// graph.js - the asset graph: which nodes are shown (assets, or groups of
// them by asset-key prefix), their layout (dagre, layered left to right)
// and the SVG. The layout runs only when the set of nodes or edges changes;
// a phase change only re-colours a node.
import dagre from '@dagrejs/dagre';
import { svg } from './dom.js';

const NODE_W = 190, NODE_H = 46, GROUP_H = 52;

// An AssetSource's id is apart from an asset's of the same name.
export const SRC = 'src:';
export const idOf = (a) => (a.kind === 'AssetSource' ? SRC : '') + a.namespace + '/' + a.name;

// Prefixes of an asset key ("a/b/c" -> ["a/", "a/b/"]), namespaced; worked
// out once per summary (a summary object is replaced, never changed, when
// its asset changes) and kept beside it, not on it (a property added to 10,000
// parsed objects costs more than the lookups it saves).
const PREFIXES = new WeakMap();
export function prefixes(a) {
  let out = PREFIXES.get(a);
  if (out) return out;
  const key = a.key || a.name;
  out = [];
  for (let i = key.indexOf('/'); i > 0; i = key.indexOf('/', i + 1)) out.push(a.namespace + ':' + key.slice(0, i + 1));
  PREFIXES.set(a, out);
  return out;
}

// The collapsed prefix that shows asset a (its first not expanded), or null when
// a is shown itself. The prefix is the string kept for a's summary: no new string
// per call (a graph of 10,000 is collected again on every change).
function collapsedPrefix(a, expanded) {
  for (const p of prefixes(a)) if (!expanded.has(p)) return p;
  return null;
}

// The prefix when every asset is shown as the same group, else null; stops at
// the first asset shown as something else.
function soleGroup(assets, expanded) {
  let sole = null;
  for (const a of assets) {
    const p = collapsedPrefix(a, expanded);
    if (p === null || (sole !== null && p !== sole)) return null;
    sole = p;
  }
  return sole;
}

export class Graph {
  constructor(svgEl, onSelect, onExpand) {
    this.svg = svgEl;
    this.vp = svgEl.querySelector('#viewport');
    this.gEdges = svgEl.querySelector('#edges');
    this.gNodes = svgEl.querySelector('#nodes');
    this.onSelect = onSelect;
    this.onExpand = onExpand;
    this.structure = '';
    this.nodes = new Map(); // id -> {el, x, y, w, h, item}
    this.edges = [];
    this.selected = null;
    this.view = { x: 0, y: 0, k: 1 };
    this.fitted = false;
    this.installPanZoom();
  }

  installPanZoom() {
    let drag = null;
    this.svg.addEventListener('mousedown', (e) => {
      if (e.button !== 0) return;
      drag = { x: e.clientX, y: e.clientY, vx: this.view.x, vy: this.view.y, moved: false };
    });
    window.addEventListener('mousemove', (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) { drag.moved = true; this.svg.classList.add('dragging'); }
      this.view.x = drag.vx + dx;
      this.view.y = drag.vy + dy;
      this.applyView();
    });
    window.addEventListener('mouseup', () => {
      if (drag && drag.moved) this.suppressClick = true;
      drag = null;
      this.svg.classList.remove('dragging');
    });
    this.svg.addEventListener('wheel', (e) => {
      e.preventDefault();
      const r = this.svg.getBoundingClientRect();
      const mx = e.clientX - r.left, my = e.clientY - r.top;
      const f = Math.exp(-e.deltaY * 0.0015);
      const k = Math.min(4, Math.max(0.02, this.view.k * f));
      this.view.x = mx - ((mx - this.view.x) * k) / this.view.k;
      this.view.y = my - ((my - this.view.y) * k) / this.view.k;
      this.view.k = k;
      this.applyView();
    }, { passive: false });
  }

  applyView() {
    this.vp.setAttribute('transform', `translate(${this.view.x},${this.view.y}) scale(${this.view.k})`);
  }

  fit() {
    const r = this.svg.getBoundingClientRect();
    if (!this.width || !r.width) return;
    // fit, but never smaller than readable: a long graph starts at its left end
    const k = Math.max(0.35, Math.min(1.5, (r.width - 40) / this.width, (r.height - 40) / this.height));
    this.view.k = k;
    this.view.x = this.width * k > r.width - 20 ? 10 : (r.width - this.width * k) / 2;
    this.view.y = this.height * k > r.height - 20 ? 10 : (r.height - this.height * k) / 2;
    this.applyView();
  }

  // assets: the filtered summaries; all: every summary by id (for edges).
  render(assets, opts) {
    const { grouping, expanded } = opts;
    const t0 = performance.now();
    // one group alone says nothing: open it (a common prefix such as "scale/")
    for (let p; grouping && (p = soleGroup(assets, expanded)); ) expanded.add(p);
    const r = this.collect(assets, grouping, expanded);
    this.collectMs = Math.round(performance.now() - t0);
    return this.show(r.items, r.edges);
  }

  // The shown items (groups, or assets themselves) and the edges between them. An
  // asset's upstream is found by name in its namespace (an AssetMaterialization of
  // that name is what the controller reads, else the AssetSource), item to item:
  // strings are made only for the few items and cross-item edges, not per asset.
  collect(assets, grouping, expanded) {
    const items = new Map(); // shown id -> item
    const groups = new Map(); // prefix -> its item
    const named = new Map(), sources = new Map(); // namespace -> name -> item showing it
    const itemOf = new Array(assets.length);
    for (let i = 0; i < assets.length; i++) {
      const a = assets[i];
      const p = grouping ? collapsedPrefix(a, expanded) : null;
      let it;
      if (p !== null) {
        it = groups.get(p);
        if (!it) {
          it = { id: 'group:' + p, group: true, prefix: p, members: [] };
          groups.set(p, it);
          items.set(it.id, it);
        }
        it.members.push(a);
      } else {
        it = { id: idOf(a), group: false, asset: a };
        items.set(it.id, it);
      }
      itemOf[i] = it;
      const byNs = a.kind === 'AssetSource' ? sources : named;
      let byName = byNs.get(a.namespace);
      if (!byName) byNs.set(a.namespace, (byName = new Map()));
      byName.set(a.name, it);
    }
    const edgeSet = new Set();
    const edges = [];
    for (let i = 0; i < assets.length; i++) {
      const a = assets[i], ups = a.upstreams;
      if (!ups || !ups.length) continue;
      const to = itemOf[i], am = named.get(a.namespace), src = sources.get(a.namespace);
      for (const u of ups) {
        const from = (am && am.get(u)) || (src && src.get(u));
        if (!from || from === to) continue;
        const k = from.id + '\u0000' + to.id;
        if (edgeSet.has(k)) continue;
        edgeSet.add(k);
        edges.push({ from: from.id, to: to.id });
      }
    }
    return { items, edges };
  }

  show(items, edges) {
    // items and edges come in the order of the assets, which is stable
    const structure = [...items.keys()].join('\u0001') + '\u0002' + edges.map((e) => e.from + '\u0000' + e.to).join('\u0001');
    if (structure !== this.structure) {
      this.structure = structure;
      const t0 = performance.now();
      this.layout(items, edges);
      const t1 = performance.now();
      this.draw(items, edges);
      this.timing = { collect: this.collectMs, layout: Math.round(t1 - t0), draw: Math.round(performance.now() - t1), nodes: items.size, edges: edges.length };
      this.highlight(); // new elements; otherwise select() keeps the lineage marked
    } else {
      // a change redraws only the nodes whose assets were replaced (a summary
      // object is replaced, never changed, when its asset changes)
      for (const it of items.values()) {
        const n = this.nodes.get(it.id);
        if (!n || changed(n.item, it)) this.update(it);
      }
    }
    return { nodes: items.size, edges: edges.length };
  }

  layout(items, edges) {
    const g = new dagre.graphlib.Graph({ multigraph: false });
    // collapsed groups rank by longest path: network simplex, dagre's default,
    // costs several times more and a graph of groups gains little from it
    const grouped = [...items.values()].some((it) => it.group);
    g.setGraph({ rankdir: 'LR', nodesep: 14, ranksep: 60, marginx: 10, marginy: 10, ranker: grouped ? 'longest-path' : 'network-simplex' });
    g.setDefaultEdgeLabel(() => ({}));
    for (const it of items.values()) g.setNode(it.id, { width: NODE_W, height: it.group ? GROUP_H : NODE_H });
    for (const e of edges) g.setEdge(e.from, e.to);
    dagre.layout(g);
    this.width = g.graph().width || 0;
    this.height = g.graph().height || 0;
    this.pos = new Map();
    for (const id of g.nodes()) this.pos.set(id, g.node(id));
    this.edgePts = edges.map((e) => g.edge(e.from, e.to).points);
  }

  draw(items, edges) {
    this.gNodes.replaceChildren();
    this.gEdges.replaceChildren();
    this.nodes.clear();
    this.edges = edges;
    edges.forEach((e, i) => {
      const pts = this.edgePts[i] || [];
      const d = pts.map((p, j) => (j ? 'L' : 'M') + p.x.toFixed(1) + ' ' + p.y.toFixed(1)).join('');
      e.el = svg('path', { class: 'edge', d, 'data-from': e.from, 'data-to': e.to });
      this.gEdges.appendChild(e.el);
    });
    for (const it of items.values()) {
      const p = this.pos.get(it.id);
      const h = it.group ? GROUP_H : NODE_H;
      const g = svg('g', { transform: `translate(${(p.x - NODE_W / 2).toFixed(1)},${(p.y - h / 2).toFixed(1)})` });
      g.addEventListener('click', (ev) => {
        ev.stopPropagation();
        if (this.suppressClick) { this.suppressClick = false; return; }
        if (it.group) this.onExpand(it.prefix);
        else this.onSelect(it.id);
      });
      this.nodes.set(it.id, { el: g, item: it });
      this.gNodes.appendChild(g);
      this.update(it);
    }
    if (!this.fitted || this.refit) { this.fit(); this.fitted = true; this.refit = false; }
  }

  // (Re)draws a node's inside: colour by phase, badges. It keeps the node's lineage mark
  // (highlight's, redone only with a new layout).
  update(it) {
    const n = this.nodes.get(it.id);
    if (!n) return;
    n.item = it;
    const lineage = n.el.classList.contains('lineage');
    this.paint(n.el, it);
    if (lineage) n.el.classList.add('lineage');
  }

  paint(g, it) {
    g.replaceChildren();
    const h = it.group ? GROUP_H : NODE_H;
    if (it.group) {
      const counts = {};
      let stale = 0;
      for (const a of it.members) { counts[a.phase || 'Pending'] = (counts[a.phase || 'Pending'] || 0) + 1; if (a.stale) stale++; }
      const worst = counts.Failed ? 'Failed' : counts.Running ? 'Running' : counts.Waiting ? 'Waiting' : counts.Pending ? 'Pending' : 'Succeeded';
      g.setAttribute('class', 'node group phase-' + worst);
      g.setAttribute('data-group', it.prefix);
      g.setAttribute('data-count', it.members.length);
      g.appendChild(svg('rect', { class: 'box', width: NODE_W, height: h }));
      const label = it.prefix.slice(it.prefix.indexOf(':') + 1);
      g.appendChild(svg('text', { x: 8, y: 17, text: clip(label, 26) }));
      g.appendChild(svg('text', { class: 'sub', x: 8, y: 31, text: `${it.members.length} assets · ${counts.Succeeded || 0} succeeded` }));
      // progress bar: share of members succeeded
      const done = (counts.Succeeded || 0) / it.members.length;
      g.appendChild(svg('rect', { x: 8, y: 38, width: NODE_W - 16, height: 5, fill: '#d9dde3' }));
      g.appendChild(svg('rect', { class: 'bar', x: 8, y: 38, width: ((NODE_W - 16) * done).toFixed(1), height: 5 }));
      if (stale) badge(g, NODE_W - 4, -7, stale + ' stale', 'stale');
      return;
    }
    const a = it.asset;
    if (a.kind === 'AssetSource') { this.updateSource(g, it, a, h); return; }
    g.setAttribute('class', 'node asset phase-' + (a.phase || 'Pending') + (a.stale ? ' stale' : '') + (this.selected === it.id ? ' selected' : ''));
    g.setAttribute('data-id', it.id);
    g.setAttribute('data-phase', a.phase || '');
    g.setAttribute('data-stale', a.stale ? 'true' : 'false');
    const title = svg('title', { text: `${a.key || ''}\n${a.phase || 'Pending'}${a.stale ? ' (stale)' : ''}${a.message ? '\n' + a.message : ''}` });
    g.appendChild(title);
    g.appendChild(svg('rect', { class: 'box', width: NODE_W, height: h }));
    g.appendChild(svg('rect', { class: 'bar', x: 0, y: 0, width: 6, height: h }));
    g.appendChild(svg('text', { x: 12, y: 18, class: 'name', text: clip(a.name, 25) }));
    g.appendChild(svg('text', { x: 12, y: 34, class: 'sub', text: clip((a.key || '') + ' · ' + (a.phase || 'Pending'), 30) }));
    let x = NODE_W - 4;
    if (a.pool) x = badge(g, x, -7, a.pool, 'pool') - 4;
    if (a.stale) x = badge(g, x, -7, 'stale', 'stale') - 4;
    // a partitioned asset: n/m materialized as a badge and a bar along the bottom
    const p = a.partitions;
    if (p && p.total > 0) {
      const done = Math.min(1, (p.succeeded || 0) / p.total), failed = Math.min(1 - done, (p.failed || 0) / p.total);
      badge(g, x, -7, `${p.succeeded || 0}/${p.total}`, 'parts');
      const bw = NODE_W - 18, bar = svg('g', { class: 'partbar', 'data-done': done.toFixed(4), 'data-failed': failed.toFixed(4) });
      bar.appendChild(svg('rect', { x: 12, y: h - 7, width: bw, height: 4, fill: '#d9dde3' }));
      bar.appendChild(svg('rect', { class: 'done', x: 12, y: h - 7, width: (bw * done).toFixed(1), height: 4 }));
      bar.appendChild(svg('rect', { class: 'failed', x: (12 + bw * done).toFixed(1), y: h - 7, width: (bw * failed).toFixed(1), height: 4 }));
      g.appendChild(bar);
    }
  }

  // An AssetSource: a root, its version, object count and freshness.
  updateSource(g, it, a, h) {
    g.setAttribute('class', 'node source phase-' + (a.phase || 'Pending') + (a.fresh === false ? ' unfresh' : '') + (this.selected === it.id ? ' selected' : ''));
    g.setAttribute('data-id', it.id);
    g.setAttribute('data-phase', a.phase || '');
    g.setAttribute('data-version', a.version || '');
    g.setAttribute('data-observed', a.observedAt || '');
    g.setAttribute('data-fresh', a.fresh === undefined ? '' : String(a.fresh));
    g.appendChild(svg('title', { text: `source ${a.key || ''}\n${a.phase || 'Pending'}${a.version ? ' · ' + a.version : ''}${a.observedAt ? '\nobserved ' + a.observedAt : ''}${a.message ? '\n' + a.message : ''}` }));
    g.appendChild(svg('rect', { class: 'box', width: NODE_W, height: h }));
    g.appendChild(svg('text', { x: 12, y: 18, class: 'name', text: clip(a.name, 25) }));
    const n = a.objectCount === undefined ? '' : ` · ${a.objectCount} obj`;
    g.appendChild(svg('text', { x: 12, y: 34, class: 'sub', text: clip((a.version || a.phase || 'Pending') + n, 30) }));
    let x = badge(g, NODE_W - 4, -7, 'source', 'src') - 4;
    if (a.fresh === false) badge(g, x, -7, 'not fresh', 'unfresh');
  }

  select(id) {
    const prev = this.selected;
    this.selected = id;
    for (const x of [prev, id]) { const n = x && this.nodes.get(x); if (n) this.update(n.item); }
    this.highlight();
  }

  // The selected asset's lineage: everything upstream and downstream of it.
  highlight() {
    const id = this.selected;
    const root = this.vp;
    for (const e of this.edges) e.el.classList.remove('lineage');
    for (const n of this.nodes.values()) n.el.classList.remove('lineage');
    if (!id || !this.nodes.has(id)) { root.classList.remove('dim'); return; }
    const up = new Map(), down = new Map();
    for (const e of this.edges) {
      (down.get(e.from) || down.set(e.from, []).get(e.from)).push(e);
      (up.get(e.to) || up.set(e.to, []).get(e.to)).push(e);
    }
    const seen = new Set([id]);
    const walk = (start, adj, next) => {
      const stack = [start];
      while (stack.length) {
        const x = stack.pop();
        for (const e of adj.get(x) || []) {
          e.el.classList.add('lineage');
          const y = next(e);
          if (!seen.has(y)) { seen.add(y); stack.push(y); }
        }
      }
    };
    walk(id, up, (e) => e.from);
    walk(id, down, (e) => e.to);
    for (const x of seen) { const n = this.nodes.get(x); if (n) n.el.classList.add('lineage'); }
    root.classList.add('dim');
  }
}

function changed(was, it) {
  if (!it.group) return was.asset !== it.asset;
  const a = was.members, b = it.members;
  if (!a || a.length !== b.length) return true;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return true;
  return false;
}

function clip(s, n) {
  s = String(s || '');
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

// A badge right-aligned at x; returns its left edge.
function badge(g, x, y, text, cls) {
  const w = 8 + 6 * Math.min(String(text).length, 18);
  const b = svg('g', { class: 'badge ' + cls, transform: `translate(${x - w},${y})` });
  b.appendChild(svg('rect', { width: w, height: 14 }));
  b.appendChild(svg('text', { x: 4, y: 10.5, text: clip(text, 18) }));
  g.appendChild(b);
  return x - w;
}
