// main.js - the lineage UI: state, the change stream, filters.
//
// The list (GET /api/v1/assets) and the websocket start together. The
// stream's first message after its hello has seq hello+1, so a list with a
// seq below the hello's missed something and is fetched again; a change
// message is applied only when its seq is above the list's, so nothing is
// lost or applied twice. Messages that arrive while a list is under way wait
// for it.
import { el } from './dom.js';
import { Graph, SRC, idOf } from './graph.js';
import { renderPanel, renderSourcePanel } from './panel.js';

const AUTO_GROUP = 300; // more assets than this: start grouped by prefix

const state = {
  cfg: {},
  assets: new Map(),
  seq: -1,
  helloSeq: null,
  listing: false,
  buffered: [],
  expanded: new Set(),
  grouping: false,
  groupingChosen: false,
  selected: null,
  ws: null,
  renderQueued: false,
};

const $ = (id) => document.getElementById(id);
// lastMessage: the latest change message, its seq and when it arrived (Date.now(), the
// clock the tests time a status write with)
const stats = { firstPaint: null, renders: 0, lastChangeAt: null, lastMessage: null, marks: {} };
const mark = (k) => { stats.marks[k] = Math.round(performance.now()); };
mark('script');
window.terraneUI = stats; // read by the tests

const graph = new Graph($('svg'), select, expand);

function setLive(on, text) {
  const l = $('live');
  l.className = 'live ' + (on ? 'on' : 'off');
  l.textContent = text;
}

// The first list is the one index.html preloads (its request starts with the
// page's, before this script has even been parsed): the same URL, mode and
// credentials, and no cache mode, or the browser would not take it.
let preloaded = true;

async function getJSON(path) {
  const first = preloaded && path === '/api/v1/assets';
  if (first) preloaded = false;
  const r = await fetch(path, first ? { mode: 'cors', credentials: 'same-origin' } : { headers: { Accept: 'application/json' }, cache: 'no-store' });
  if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
  return r.json();
}

async function list() {
  if (state.listing) return;
  state.listing = true;
  state.seq = -1; // buffer what arrives meanwhile
  mark('list-request');
  let doc;
  try {
    doc = await getJSON('/api/v1/assets');
  } finally {
    state.listing = false;
  }
  mark('list-parsed');
  state.assets = new Map(doc.assets.map((a) => [idOf(a), a]));
  state.seq = doc.seq;
  if (!state.groupingChosen) {
    state.grouping = doc.assets.length > AUTO_GROUP;
    $('f-group').checked = state.grouping;
  }
  const pending = state.buffered;
  state.buffered = [];
  for (const m of pending) apply(m);
  refreshFilters();
  scheduleRender();
  if (state.helloSeq !== null && state.seq < state.helloSeq) relist();
}

function relist() {
  list().catch((e) => setLive(false, 'list failed: ' + e.message));
}

function apply(m) {
  if (m.seq <= state.seq) return;
  state.seq = m.seq;
  if (m.type === 'resync') { relist(); return; }
  if (m.type !== 'changes') return;
  let newPool = false;
  for (const a of m.assets) {
    const id = idOf(a);
    const old = state.assets.get(id);
    if (!old && !seenNs.has(a.namespace)) newPool = true;
    if (a.pool && !seenPools.has(a.pool)) newPool = true;
    state.assets.set(id, a);
  }
  for (const d of m.deleted) state.assets.delete(idOf(d));
  if (newPool) refreshFilters();
  stats.lastChangeAt = performance.now();
  const sel = state.selected;
  if (sel && (m.assets.some((a) => idOf(a) === sel) || m.touched.some((t) => idOf(t) === sel) || m.deleted.some((t) => idOf(t) === sel)))
    loadPanel(sel);
  scheduleRender();
}

function connect() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(proto + '//' + location.host + '/api/v1/watch', 'terrane-ui.v1');
  state.ws = ws;
  ws.onmessage = (ev) => {
    let m;
    const at = Date.now();
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    if (m.type !== 'hello') stats.lastMessage = { seq: m.seq, at, parsedMs: Date.now() - at };
    if (m.type === 'hello') {
      mark('hello');
      setLive(true, 'live');
      state.helloSeq = m.seq;
      // a list older than the stream's start missed changes
      if (!state.listing && state.seq < m.seq) relist();
      return;
    }
    if (state.seq < 0) state.buffered.push(m);
    else apply(m);
  };
  ws.onclose = () => {
    setLive(false, 'reconnecting');
    state.helloSeq = null;
    setTimeout(connect, 1000);
  };
}

// --- filters -------------------------------------------------------------------------------

const seenNs = new Set(), seenPools = new Set();

function refreshFilters() {
  for (const a of state.assets.values()) {
    seenNs.add(a.namespace);
    if (a.pool) seenPools.add(a.pool);
  }
  fillSelect($('f-ns'), seenNs, 'all');
  fillSelect($('f-pool'), seenPools, 'any');
}

function fillSelect(sel, values, anyText) {
  const cur = sel.value;
  const opts = [el('option', { value: '', text: anyText })];
  for (const v of [...values].sort()) opts.push(el('option', { value: v, text: v }));
  sel.replaceChildren(...opts);
  sel.value = cur;
}

function filtered() {
  const ns = $('f-ns').value, q = $('f-search').value.trim().toLowerCase(), phase = $('f-phase').value, pool = $('f-pool').value;
  const out = [];
  for (const a of state.assets.values()) {
    if (ns && a.namespace !== ns) continue;
    if (pool && a.pool !== pool) continue;
    const src = a.kind === 'AssetSource';
    if (phase === 'stale' ? !a.stale : phase === 'sources' ? !src : phase === 'unfresh' ? a.fresh !== false : phase && a.phase !== phase) continue;
    if (q && !(String(a.key || '').toLowerCase().includes(q) || a.name.toLowerCase().includes(q))) continue;
    out.push(a);
  }
  return out;
}

// A search or filter shows whatever matches as assets, not groups, when few enough.
function groupingFor(list) {
  const narrowed = $('f-search').value.trim() || $('f-phase').value || $('f-pool').value;
  return state.grouping && !(narrowed && list.length <= AUTO_GROUP);
}

function scheduleRender() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  requestAnimationFrame(() => {
    state.renderQueued = false;
    render();
  });
}

function render() {
  mark('render-start');
  const list = filtered();
  const r = graph.render(list, { grouping: groupingFor(list), expanded: state.expanded });
  mark('render-end');
  stats.renderMs = stats.marks['render-end'] - stats.marks['render-start'];
  stats.marks.graph = graph.timing;
  $('counts').textContent = `${list.length} of ${state.assets.size} assets · ${r.nodes} nodes · ${r.edges} edges`;
  document.body.dataset.assets = String(state.assets.size);
  document.body.dataset.nodes = String(r.nodes);
  document.body.dataset.seq = String(state.seq);
  stats.renders++;
  if (stats.firstPaint === null && state.seq >= 0) {
    // after the browser has painted this frame
    requestAnimationFrame(() => { if (stats.firstPaint === null) { stats.firstPaint = performance.now(); document.body.dataset.painted = '1'; } });
  }
}

function expand(prefix) {
  state.expanded.add(prefix);
  graph.refit = true;
  scheduleRender();
}

// --- the panel -------------------------------------------------------------------------------

let panelSeq = 0;
async function loadPanel(id) {
  const mine = ++panelSeq;
  const isSrc = id.startsWith(SRC), ref = isSrc ? id.slice(SRC.length) : id;
  const [ns, name] = [ref.slice(0, ref.indexOf('/')), ref.slice(ref.indexOf('/') + 1)];
  try {
    const doc = await getJSON('/api/v1/namespaces/' + encodeURIComponent(ns) + (isSrc ? '/sources/' : '/assets/') + encodeURIComponent(name));
    if (mine !== panelSeq || state.selected !== id) return;
    const panel = $('panel');
    const opening = panel.hidden, other = panel.dataset.id !== id;
    (isSrc ? renderSourcePanel : renderPanel)(panel, doc, state.cfg, select, () => select(null));
    if (other) panel.scrollTop = 0;
    if (opening) graph.fit(); // the graph just got narrower
  } catch (e) {
    if (mine !== panelSeq) return;
    $('panel').replaceChildren(el('div', { class: 'warn', text: e.message }));
  }
}

function select(id) {
  state.selected = id;
  if (id) {
    // make the asset visible: expand its groups
    const a = state.assets.get(id);
    if (a && state.grouping) {
      const segs = (a.key || a.name).split('/');
      for (let i = 1; i < segs.length; i++) state.expanded.add(a.namespace + ':' + segs.slice(0, i).join('/') + '/');
      render();
    }
    graph.select(id);
    loadPanel(id);
  } else {
    graph.select(null);
    $('panel').hidden = true;
    $('panel').replaceChildren();
  }
}

for (const id of ['f-ns', 'f-phase', 'f-pool']) $(id).addEventListener('change', () => { graph.refit = true; scheduleRender(); });
$('f-search').addEventListener('input', () => { graph.refit = true; scheduleRender(); });
$('f-group').addEventListener('change', () => {
  state.grouping = $('f-group').checked;
  state.groupingChosen = true;
  graph.refit = true;
  scheduleRender();
});
$('b-fit').addEventListener('click', () => graph.fit());
$('svg').addEventListener('click', () => { if (!graph.suppressClick) select(null); graph.suppressClick = false; });
window.addEventListener('resize', () => graph.fit());

getJSON('/api/v1/config').then((c) => { state.cfg = c; }).catch(() => {});
connect();
relist();
