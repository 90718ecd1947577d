// panel.js - one asset in detail: spec, data version, output, lineage,
// attempts (pods and nodes), conditions, Events, data-version history and
// the map preview. Built from /api/v1/namespaces/NS/assets/NAME.
import { el, safeHref, s3Http } from './dom.js';

// The preview's code (geotiff.js and its decoders, four fifths of the
// JavaScript) is a bundle of its own, preview.js, loaded when a preview is
// first drawn: the graph's first paint does not wait for it.
let previewCode = null;
function loadPreview() {
  if (!previewCode) {
    previewCode = new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = 'preview.js';
      s.onload = () => (window.terranePreview ? resolve(window.terranePreview) : reject(new Error('preview.js loaded nothing')));
      s.onerror = () => { previewCode = null; reject(new Error('cannot load preview.js')); };
      document.head.appendChild(s);
    });
  }
  return previewCode;
}

function row(dl, k, v) {
  if (v === undefined || v === null || v === '') return;
  dl.append(el('dt', { text: k }), el('dd', null, v instanceof Node ? v : String(v)));
}

function table(cols, rows) {
  const t = el('table');
  t.appendChild(el('tr', null, ...cols.map((c) => el('th', { text: c }))));
  for (const r of rows) t.appendChild(el('tr', null, ...r.map((v) => el('td', null, v instanceof Node ? v : String(v ?? '')))));
  return t;
}

function link(text, href) {
  const h = safeHref(href);
  return h ? el('a', { href: h, target: '_blank', rel: 'noopener noreferrer', text }) : el('span', { text });
}

export function renderPanel(panel, doc, cfg, onSelect, onClose) {
  const a = doc.asset, st = doc.status || {}, out = st.output || {};
  const keep = panel.querySelector('#preview');
  const sameCog = keep && keep.dataset.uri === out.uri && keep.dataset.state === 'drawn';
  const close = el('button', { class: 'close', type: 'button', text: '×', title: 'close', onclick: onClose });
  const head = el('div', null, close, el('h2', { text: a.name }), el('div', { class: 'key', text: a.namespace + ' · ' + (a.key || '') }));
  const pills = el('div', null, el('span', { class: 'pill phase-' + (a.phase || 'Pending'), id: 'p-phase', text: a.phase || 'Pending' }));
  if (a.stale) pills.append(' ', el('span', { class: 'pill stale', id: 'p-stale', text: 'Stale' }));
  if (a.pool) pills.append(' ', el('span', { class: 'pill', text: 'pool ' + a.pool }));
  const parts = [head, pills];
  if (a.message) parts.push(el('div', { class: 'muted', text: a.message }));

  const dl = el('dl');
  row(dl, 'operation', a.operation);
  row(dl, 'data version', st.dataVersion);
  row(dl, 'output', out.uri ? link(out.uri, s3Http(cfg.s3Endpoint, out.uri) || '') : '');
  row(dl, 'checksum', out.checksum);
  row(dl, 'size', out.sizeBytes !== undefined ? out.sizeBytes + ' bytes' : '');
  if (out.stacItem) row(dl, 'STAC Item', link(out.stacItem, s3Http(cfg.s3Endpoint, out.stacItem) || ''));
  row(dl, 'cache hit', out.cacheHit === undefined ? '' : String(out.cacheHit));
  row(dl, 'attempts', st.attempts);
  row(dl, 'node', st.node);
  row(dl, 'started', st.startedAt);
  row(dl, 'finished', st.finishedAt);
  row(dl, 'generation', `${a.generation} (observed ${a.observedGeneration ?? '–'})`);
  parts.push(dl);

  parts.push(el('h3', { text: 'Map preview' }));
  let preview = keep;
  const url = s3Http(cfg.s3Endpoint, out.uri);
  if (!sameCog) {
    preview = el('div', { id: 'preview' });
    if (url && a.phase === 'Succeeded' && /\.tiff?$/i.test(out.uri)) {
      preview.dataset.uri = out.uri;
      loadPreview().then((p) => p.showPreview(preview, url)).catch((e) => {
        preview.dataset.state = 'error';
        preview.replaceChildren(el('div', { class: 'warn', text: e.message }));
      });
    } else {
      preview.appendChild(el('div', { class: 'muted', text: !cfg.s3Endpoint ? 'no S3 endpoint configured (--ui-s3-endpoint)' : out.uri ? 'no raster output' : 'not materialized yet' }));
    }
  }
  parts.push(preview);

  parts.push(el('h3', { text: 'Lineage' }));
  const ups = el('div', null, el('span', { class: 'muted', text: 'upstream: ' }));
  const srcs = new Set(a.upstreamSources || []);
  for (const u of a.upstreams || []) {
    if (srcs.has(u)) ups.append(el('a', { class: 'asset source', 'data-up': u, 'data-up-source': u, text: 'source ' + u, onclick: () => onSelect('src:' + a.namespace + '/' + u) }));
    else ups.append(el('a', { class: 'asset', 'data-up': u, text: u, onclick: () => onSelect(a.namespace + '/' + u) }));
  }
  for (const s of a.sources || []) ups.append(el('span', { class: 'muted', text: s + '  ' }));
  if (!(a.upstreams || []).length && !(a.sources || []).length) ups.append('none');
  const downs = el('div', null, el('span', { class: 'muted', text: 'downstream: ' }));
  for (const d of doc.downstream || []) downs.append(el('a', { class: 'asset', 'data-down': d, text: d, onclick: () => onSelect(a.namespace + '/' + d) }));
  if (!(doc.downstream || []).length) downs.append('none');
  parts.push(ups, downs);
  if ((st.lineage || []).length)
    parts.push(table(['input', 'from', 'data version'], st.lineage.map((l) => [l.input || '', l.from || l.uri || '', (l.dataVersion || '').slice(0, 19)])));

  parts.push(el('h3', { text: 'Attempts' }));
  const pods = (doc.pods || []).slice().sort((x, y) => String(x.created || '').localeCompare(String(y.created || '')));
  parts.push(pods.length ? table(['pod', 'attempt', 'pool', 'node', 'phase', 'exit'], pods.map((p) => [p.name, p.attempt, p.pool, p.node || p.unschedulable || '', p.phase + (p.terminatedReason ? ' (' + p.terminatedReason + ')' : p.waitingReason ? ' (' + p.waitingReason + ')' : ''), p.exitCode ?? ''])) : el('div', { class: 'muted', text: 'no pods cached (finished pods are garbage-collected)' }));

  parts.push(el('h3', { text: 'Conditions' }));
  parts.push(table(['type', 'status', 'reason', 'message'], (st.conditions || []).map((c) => [c.type, c.status, c.reason, c.message])));

  parts.push(el('h3', { text: 'Recent Events' }));
  parts.push((doc.events || []).length ? table(['time', 'type', 'reason', 'message'], doc.events.map((e) => [(e.time || '').replace('T', ' ').replace('Z', ''), e.type, e.reason, (e.kind === 'Pod' ? e.object + ': ' : '') + (e.message || '')])) : el('div', { class: 'muted', text: 'none' }));

  parts.push(el('h3', { text: 'Data-version history' }));
  parts.push((doc.history || []).length ? table(['data version', 'finished', 'cache hit'], doc.history.map((h) => [(h.dataVersion || '').slice(0, 23), h.finishedAt, h.cacheHit === undefined ? '' : String(h.cacheHit)])) : el('div', { class: 'muted', text: 'none seen yet' }));

  parts.push(el('h3', { text: 'Spec' }));
  parts.push(el('pre', { text: JSON.stringify(doc.spec, null, 2) }));
  if (doc.metadata && doc.metadata.annotations && Object.keys(doc.metadata.annotations).length) {
    parts.push(el('h3', { text: 'Annotations' }));
    parts.push(table(['key', 'value'], Object.entries(doc.metadata.annotations)));
  }
  panel.replaceChildren(...parts);
  panel.hidden = false;
  panel.dataset.id = a.namespace + '/' + a.name;
}

// One AssetSource: what was observed (data version, when, how many objects),
// its schedule's next time, freshness, conditions, observation pods, Events,
// the versions seen, and the assets that read it.
export function renderSourcePanel(panel, doc, cfg, onSelect, onClose) {
  const a = doc.source, st = doc.status || {}, obj = st.object || {};
  const close = el('button', { class: 'close', type: 'button', text: '×', title: 'close', onclick: onClose });
  const parts = [el('div', null, close, el('h2', { text: a.name }), el('div', { class: 'key', text: a.namespace + ' · source · ' + (a.key || '') }))];
  const pills = el('div', null, el('span', { class: 'pill phase-' + (a.phase || 'Pending'), id: 'p-phase', text: a.phase || 'Pending' }));
  if (a.fresh !== undefined) pills.append(' ', el('span', { class: 'pill ' + (a.fresh ? 'phase-Available' : 'stale'), id: 'p-fresh', text: a.fresh ? 'Fresh' : 'not fresh' }));
  parts.push(pills);
  if (a.message) parts.push(el('div', { class: 'muted', text: a.message }));
  const dl = el('dl');
  row(dl, 'uri', a.uri);
  row(dl, 'data version', st.dataVersion);
  row(dl, 'observed at', st.observedAt);
  row(dl, 'last changed at', st.lastChangedAt);
  row(dl, 'objects', st.objectCount);
  row(dl, 'bytes', st.bytes);
  row(dl, 'listing', st.listing ? link(st.listing, s3Http(cfg.s3Endpoint, st.listing) || '') : '');
  row(dl, 'etag', obj.etag);
  row(dl, 'version id', obj.versionId);
  row(dl, 'observation', st.observation === undefined ? '' : `${st.observation} (finished ${st.finishedObservation ?? '–'})`);
  row(dl, 'next observation', st.nextObservationAt);
  row(dl, 'failures in a row', st.consecutiveFailures);
  row(dl, 'freshness', a.freshness);
  row(dl, 'generation', `${a.generation} (observed ${a.observedGeneration ?? '–'})`);
  parts.push(dl);

  parts.push(el('h3', { text: 'Lineage' }));
  parts.push(el('div', null, el('span', { class: 'muted', text: 'upstream: ' }), 'none (a source is a root)'));
  const downs = el('div', null, el('span', { class: 'muted', text: 'downstream: ' }));
  for (const d of doc.downstream || []) downs.append(el('a', { class: 'asset', 'data-down': d, text: d, onclick: () => onSelect(a.namespace + '/' + d) }));
  if (!(doc.downstream || []).length) downs.append('none');
  parts.push(downs);

  parts.push(el('h3', { text: 'Observations' }));
  const pods = (doc.pods || []).slice().sort((x, y) => String(x.created || '').localeCompare(String(y.created || '')));
  parts.push(pods.length ? table(['pod', 'node', 'phase', 'exit'], pods.map((p) => [p.name, p.node || p.unschedulable || '', p.phase + (p.terminatedReason ? ' (' + p.terminatedReason + ')' : ''), p.exitCode ?? ''])) : el('div', { class: 'muted', text: 'no observation pods cached' }));

  parts.push(el('h3', { text: 'Conditions' }));
  parts.push(table(['type', 'status', 'reason', 'message'], (st.conditions || []).map((c) => [c.type, c.status, c.reason, c.message])));

  parts.push(el('h3', { text: 'Recent Events' }));
  parts.push((doc.events || []).length ? table(['time', 'type', 'reason', 'message'], doc.events.map((e) => [(e.time || '').replace('T', ' ').replace('Z', ''), e.type, e.reason, (e.kind === 'Pod' ? e.object + ': ' : '') + (e.message || '')])) : el('div', { class: 'muted', text: 'none' }));

  parts.push(el('h3', { text: 'Data-version history' }));
  parts.push((doc.history || []).length ? table(['data version', 'changed', 'objects', 'bytes'], doc.history.map((h) => [(h.dataVersion || '').slice(0, 23), h.lastChangedAt, h.objectCount, h.bytes])) : el('div', { class: 'muted', text: 'none seen yet' }));

  parts.push(el('h3', { text: 'Spec' }));
  parts.push(el('pre', { text: JSON.stringify(doc.spec, null, 2) }));
  panel.replaceChildren(...parts);
  panel.hidden = false;
  panel.dataset.id = 'src:' + a.namespace + '/' + a.name;
}
