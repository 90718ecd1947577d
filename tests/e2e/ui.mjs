// ui.mjs - the lineage UI in Debian's chromium, driven by playwright-core.
//
//   node tests/e2e/ui.mjs demo    the example graphs (test_ui.sh)
//   node tests/e2e/ui.mjs scale   10,000 generated assets (test_ui_scale.sh)
//   node tests/e2e/ui.mjs zstd    the preview of a ZSTD COG (test_ui.sh; TARGET=ns/name)
//   node tests/e2e/ui.mjs sources an AssetSource as a lineage root (test_ui.sh; SOURCE=name,
//                                 TARGET=name of an asset reading it)
//   node tests/e2e/ui.mjs bench   the strict time bounds beside baselines (bench/bench_ui.sh)
//
// Environment: UI_URL (http://127.0.0.1:PORT), NS, KUBECONFIG, SHOTS (a
// directory for screenshots), EXPECTED (kubectl get am -o json of NS).
// Prints "ok: ..." / "FAIL: ..." lines and figures ("measure: ..."); exits 1
// when a check failed.
import { execFile, execFileSync } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';

const env = (k) => {
  if (!process.env[k]) throw new Error(k + ' is not set');
  return process.env[k];
};
const UI = env('UI_URL'), NS = env('NS'), SHOTS = env('SHOTS');
// The scale checks hold the page to its targets (first paint 2 s, a live
// update 1 s) times UI_TIME_SLACK: 1 for a measurement on a quiet machine,
// more where the machine is shared (test_ui_scale.sh's default, 4); the
// measured figures are printed with the targets either way.
const LIMIT = Number(process.env.UI_TIME_SLACK || 1);
let fails = 0;
const ok = (m) => console.log('ok: ' + m);
const fail = (m) => { console.log('FAIL: ' + m); fails++; };
const check = (c, m, detail) => (c ? ok(m) : fail(m + (detail !== undefined ? ': ' + detail : '')));
const kubectl = (...args) => execFileSync('kubectl', ['--kubeconfig', env('KUBECONFIG'), ...args], { encoding: 'utf8' });

// --- a PNG decoder (8-bit RGB/RGBA, not interlaced: what Chromium writes) -------------------------
function decodePNG(buf) {
  let off = 8, w = 0, h = 0, ctype = 0;
  const idat = [];
  while (off < buf.length) {
    const len = buf.readUInt32BE(off), type = buf.toString('latin1', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      w = data.readUInt32BE(0); h = data.readUInt32BE(4); ctype = data[9];
      if (data[8] !== 8 || data[12] !== 0 || (ctype !== 2 && ctype !== 6)) throw new Error('unsupported PNG');
    } else if (type === 'IDAT') idat.push(data);
    off += 12 + len;
  }
  const bpp = ctype === 6 ? 4 : 3, stride = w * bpp;
  const raw = inflateSync(Buffer.concat(idat));
  const px = Buffer.alloc(h * stride);
  for (let y = 0; y < h; y++) {
    const f = raw[y * (stride + 1)], src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = px.subarray(y * stride, (y + 1) * stride), prev = y ? px.subarray((y - 1) * stride, y * stride) : null;
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? out[i - bpp] : 0, b = prev ? prev[i] : 0, c = prev && i >= bpp ? prev[i - bpp] : 0;
      let v = src[i];
      if (f === 1) v += a;
      else if (f === 2) v += b;
      else if (f === 3) v += (a + b) >> 1;
      else if (f === 4) { const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c); v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c; }
      out[i] = v & 255;
    }
  }
  return { w, h, bpp, px };
}

// Distinct colours and the share of pixels unlike the most common one.
function pixelStats(png) {
  const counts = new Map();
  for (let i = 0; i < png.w * png.h; i++) {
    const o = i * png.bpp, k = (png.px[o] << 16) | (png.px[o + 1] << 8) | png.px[o + 2];
    counts.set(k, (counts.get(k) || 0) + 1);
  }
  const top = Math.max(...counts.values());
  return { colours: counts.size, varied: 1 - top / (png.w * png.h) };
}

async function launch() {
  const dir = mkdtempSync(join(tmpdir(), 'terrane-chromium-'));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return { ctx, close: async () => { await ctx.close(); rmSync(dir, { recursive: true, force: true }); } };
}

function watchPage(page) {
  const problems = [];
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
  return problems;
}

const nodeSel = (id) => `g.node.asset[data-id="${id}"]`;

// --- the example graphs ------------------------------------------------------------------------------
async function demo() {
  const expected = JSON.parse(readFileSync(env('EXPECTED'), 'utf8')).items;
  const wantNodes = expected.map((o) => NS + '/' + o.metadata.name).sort();
  const wantEdges = [];
  for (const o of expected)
    for (const i of o.spec.inputs || []) if (i.from) wantEdges.push(`${NS}/${i.from} -> ${NS}/${o.metadata.name}`);
  wantEdges.sort();

  const { ctx, close } = await launch();
  const page = ctx.pages()[0] || (await ctx.newPage());
  const problems = watchPage(page);
  await page.goto(UI + '/ui/');
  await page.waitForSelector('body[data-painted="1"]', { timeout: 15000 });
  await page.selectOption('#f-ns', NS);
  await page.waitForFunction((n) => document.querySelectorAll('g.node.asset').length === n, wantNodes.length, { timeout: 5000 }).catch(() => {});
  const nodes = (await page.$$eval('g.node.asset', (els) => els.map((e) => e.dataset.id))).sort();
  check(JSON.stringify(nodes) === JSON.stringify(wantNodes), `the graph shows exactly the ${wantNodes.length} assets of ${NS}`, JSON.stringify(nodes));
  const edges = (await page.$$eval('path.edge', (els) => els.map((e) => e.dataset.from + ' -> ' + e.dataset.to))).sort();
  check(JSON.stringify(edges) === JSON.stringify(wantEdges), `with exactly the ${wantEdges.length} lineage edges`, JSON.stringify(edges));
  const phases = await page.$$eval('g.node.asset', (els) => els.map((e) => e.dataset.phase));
  check(phases.every((p) => p === 'Succeeded'), 'every node is coloured Succeeded', phases.join(','));
  const fill = await page.$eval(nodeSel(NS + '/dem-cog') + ' rect.box', (r) => getComputedStyle(r).stroke);
  check(fill === 'rgb(46, 157, 91)', 'a Succeeded node is drawn green', fill);
  const pools = await page.$$eval(nodeSel(NS + '/dem-luref-25m') + ' .badge.pool text', (els) => els.map((e) => e.textContent));
  check(pools.includes('gpu'), 'the gpu asset has a pool badge', pools.join(','));

  // a click: lineage in the graph and the panel, and a map preview
  await page.click(nodeSel(NS + '/dem-slope'));
  await page.waitForSelector('#panel:not([hidden]) h2', { timeout: 5000 });
  check((await page.textContent('#panel h2')) === 'dem-slope', 'a click opens the asset panel');
  const ups = await page.$$eval('#panel [data-up]', (els) => els.map((e) => e.textContent));
  const downs = await page.$$eval('#panel [data-down]', (els) => els.map((e) => e.textContent));
  check(ups.join() === 'dem-cog', 'the panel names the upstream dem-cog', ups.join());
  check(downs.join() === 'slope-by-canton', 'and the downstream slope-by-canton', downs.join());
  const lineage = (await page.$$eval('g.node.lineage', (els) => els.map((e) => e.dataset.id))).sort();
  check(JSON.stringify(lineage) === JSON.stringify([NS + '/dem-cog', NS + '/dem-slope', NS + '/slope-by-canton']),
    'the graph highlights its lineage (dem-cog, dem-slope, slope-by-canton)', lineage.join());
  const panel = await page.textContent('#panel');
  for (const want of ['data version', 'sha256:', 'checksum', '1220', 'STAC Item', 'item.json', 'Conditions', 'Ready', 'Recent Events', 'Spec', '"mode": "slope"'])
    check(panel.includes(want), `the panel shows ${want}`);
  const t0 = Date.now();
  await page.waitForSelector('#preview[data-state="drawn"], #preview[data-state="error"]', { timeout: 20000 }).catch(() => {});
  const state = await page.$eval('#preview', (e) => e.dataset.state).catch(() => 'missing');
  check(state === 'drawn', 'the map preview of the COG is drawn (read from S3 by the browser)', state + ' ' + (await page.textContent('#preview').catch(() => '')));
  console.log(`measure: map preview drawn ${Date.now() - t0} ms after the panel opened`);
  if (state === 'drawn') {
    const shot = await page.locator('#preview canvas.map').screenshot();
    writeFileSync(join(SHOTS, 'ui-preview.png'), shot);
    const st = pixelStats(decodePNG(shot));
    check(st.colours >= 16 && st.varied > 0.3, 'the preview screenshot is not blank', `${st.colours} colours, ${(st.varied * 100).toFixed(0)}% unlike the commonest`);
    const box = await page.locator('#preview canvas.map').boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    const v = await page.textContent('#preview .value');
    check(/^value (-?[0-9.e+-]+|nodata) at /.test(v), 'the value under the cursor is shown', v);
  }
  await page.evaluate(() => { document.getElementById('panel').scrollTop = 0; });
  await page.mouse.move(5, 300);
  await page.screenshot({ path: join(SHOTS, 'ui-demo.png') });
  ok('screenshot ' + join(SHOTS, 'ui-demo.png'));

  // live: patch an upstream, its dependents turn Stale, then Succeeded, without a reload
  await page.evaluate(() => {
    window.__sameDocument = true;
    window.__seen = {};
    new MutationObserver((ms) => {
      for (const m of ms) {
        const e = m.target;
        if (!e.dataset || !e.dataset.id) continue;
        (window.__seen[e.dataset.id] = window.__seen[e.dataset.id] || []).push((e.dataset.stale === 'true' ? 'Stale' : e.dataset.phase));
      }
    }).observe(document.getElementById('nodes'), { subtree: true, attributes: true, attributeFilter: ['data-phase', 'data-stale'] });
  });
  const dependents = ['dem-slope', 'slope-by-canton', 'dem-hillshade', 'elevation-by-canton', 'dem-luref-25m'];
  kubectl('-n', NS, 'patch', 'am', 'dem-cog', '--type', 'merge', '-p', '{"spec":{"params":{"blockSize":512}}}');
  const staleOk = await page.waitForFunction((ids) => ids.every((id) => (window.__seen[id] || []).includes('Stale')),
    dependents.map((d) => NS + '/' + d), { timeout: 120000 }).then(() => true, () => false);
  check(staleOk, 'every dependent of dem-cog turned Stale on the page', JSON.stringify(await page.evaluate(() => window.__seen)));
  const doneOk = await page.waitForFunction((ids) => ids.every((id) => {
    const e = document.querySelector(`g.node.asset[data-id="${id}"]`);
    return e && e.dataset.phase === 'Succeeded' && e.dataset.stale === 'false';
  }), [NS + '/dem-cog', ...dependents.map((d) => NS + '/' + d)], { timeout: 180000 }).then(() => true, () => false);
  check(doneOk, 'then Succeeded and not stale again, on the page', JSON.stringify(await page.evaluate(() => window.__seen)));
  check(await page.evaluate(() => window.__sameDocument === true), 'without a reload');
  const lineageAfter = (await page.$$eval('g.node.lineage', (els) => els.map((e) => e.dataset.id))).sort();
  check(JSON.stringify(lineageAfter) === JSON.stringify([NS + '/dem-cog', NS + '/dem-slope', NS + '/slope-by-canton']),
    "the selected asset's lineage stays marked through the re-drawn nodes", lineageAfter.join());
  const hist = await page.$$eval('#panel h3', (els) => els.map((e) => e.textContent));
  check(hist.includes('Data-version history'), 'the open panel followed along');
  const versions = await page.$$eval('#panel table', (ts) => { const t = ts.find((x) => x.previousElementSibling && x.previousElementSibling.textContent === 'Data-version history'); return t ? t.rows.length - 1 : 0; });
  check(versions >= 2, "dem-slope's data-version history has both versions", versions);

  // hostile strings: params, annotations, status messages
  const XSS1 = '<script>window.__xss=1</script>', XSS2 = '"><img src=x onerror="window.__xss=2">';
  const hostile = {
    apiVersion: 'terrane.io/v1alpha1', kind: 'AssetMaterialization',
    metadata: { name: 'hostile', namespace: NS, annotations: { 'example.com/note': XSS1 + XSS2 } },
    // the pool tag names no pool: the status message quotes it
    spec: { assetKey: 'xss/hostile', operation: 'cog', params: { compression: 'DEFLATE' },
      tags: { 'terrane.io/pool': XSS1 + XSS2 },
      inputs: [{ name: 'dem', from: 'dem-cog' }], output: { uri: 's3://assets' } },
  };
  writeFileSync(join(SHOTS, 'hostile.json'), JSON.stringify(hostile));
  kubectl('apply', '-f', join(SHOTS, 'hostile.json'));
  await page.waitForSelector(nodeSel(NS + '/hostile'), { timeout: 20000 });
  await page.waitForFunction((id) => { const e = document.querySelector(`g.node.asset[data-id="${id}"]`); return e && e.dataset.phase === 'Failed'; }, NS + '/hostile', { timeout: 30000 }).catch(() => {});
  await page.click(nodeSel(NS + '/hostile'));
  await page.waitForFunction(() => document.querySelector('#panel h2') && document.querySelector('#panel h2').textContent === 'hostile', null, { timeout: 5000 });
  await page.waitForFunction(() => document.querySelector('#panel').textContent.includes('Annotations'), null, { timeout: 5000 }).catch(() => {});
  const text = await page.textContent('#panel');
  check(text.includes(XSS1) && text.includes(XSS2), 'hostile params and annotations are shown as text');
  // the controller quotes the unknown pool in the status message (cut at 64 characters)
  await page.waitForFunction((sel) => (document.querySelector(sel) || {}).textContent.includes('unknown pool'), nodeSel(NS + '/hostile') + ' > title', { timeout: 10000 }).catch(() => {});
  const msg = await page.$eval(nodeSel(NS + '/hostile') + ' > title', (t) => t.textContent);
  check(msg.includes(XSS1) && msg.includes('"><img src=x onerror='), 'the status message quoting them is text too (node tooltip)',
    msg + ' / list: ' + JSON.stringify(await page.evaluate(() => fetch('/api/v1/assets').then((r) => r.json()).then((d) => d.assets.find((a) => a.name === 'hostile')))));
  const panelMsg = await page.$$eval('#panel td', (tds) => tds.map((t) => t.textContent).filter((t) => t.includes('onerror')).length);
  check(panelMsg >= 1, 'and in the panel (conditions, Events)', panelMsg);
  const imgs = await page.$$eval('img, script:not([src])', (els) => els.length);
  check(imgs === 0, 'no <img> or inline <script> element was created from them', imgs);
  check(await page.evaluate(() => window.__xss === undefined), 'no injected code ran');
  await page.screenshot({ path: join(SHOTS, 'ui-hostile.png') });

  check(problems.length === 0, 'no page error or console error (CSP violations included)', problems.join(' | '));
  await close();
}

// --- 10,000 assets --------------------------------------------------------------------------------------
async function scale() {
  const want = Number(env('ASSETS'));
  const { ctx, close } = await launch();
  const page = ctx.pages()[0] || (await ctx.newPage());
  const problems = watchPage(page);
  await page.goto(UI + '/ui/');
  await page.waitForSelector('body[data-painted="1"]', { timeout: 30000 });
  const fp = await page.evaluate(() => window.terraneUI.firstPaint);
  console.log('measure: page timings ' + JSON.stringify(await page.evaluate(() => window.terraneUI.marks)));
  const n = Number(await page.getAttribute('body', 'data-assets'));
  check(n === want, `the page holds all ${want} assets`, n);
  console.log(`measure: first paint of the ${n}-asset graph ${fp.toFixed(0)} ms after navigation (target < 2000)`);
  check(fp < LIMIT * 2000, `first paint under ${LIMIT * 2} s (the target, 2 s, times UI_TIME_SLACK)`, fp.toFixed(0) + ' ms');
  const groups = await page.$$eval('g.node.group', (els) => els.map((e) => Number(e.dataset.count)));
  check(groups.length > 0 && groups.reduce((a, b) => a + b, 0) === want, 'grouped by asset-key prefix, every asset in one group', groups.length + ' groups');
  await page.screenshot({ path: join(SHOTS, 'ui-scale.png') });

  // interactive: expand a group, search, select
  let t = Date.now();
  // a group drawn inside the window (a long chain of groups starts at its left end)
  const visible = await page.evaluate(() => {
    const w = document.getElementById('svg').getBoundingClientRect();
    const g = [...document.querySelectorAll('g.node.group')].find((e) => {
      const r = e.getBoundingClientRect();
      return r.left >= w.left && r.right <= w.right && r.top >= w.top && r.bottom <= w.bottom;
    });
    return g ? g.dataset.group : null;
  });
  check(visible !== null, 'a group is drawn inside the window');
  await page.click(`g.node.group[data-group="${visible}"]`);
  await page.waitForFunction(() => document.querySelectorAll('g.node.asset').length > 0, null, { timeout: 5000 });
  const tExpand = Date.now() - t;
  console.log('measure: page timings ' + JSON.stringify(await page.evaluate(() => window.terraneUI.marks)));
  console.log(`measure: expanding a group ${tExpand} ms`);
  check(tExpand < LIMIT * 1500, `expanding a group takes under ${LIMIT * 1.5} s`, tExpand);
  const target = env('TARGET'); // ns/name of one asset
  t = Date.now();
  await page.fill('#f-search', target.split('/')[1]);
  await page.waitForSelector(nodeSel(target), { timeout: 5000 });
  const tSearch = Date.now() - t;
  console.log(`measure: search to the asset ${tSearch} ms`);
  check(tSearch < LIMIT * 1500, `a search finds one asset among them in under ${LIMIT * 1.5} s`, tSearch);
  await page.click(nodeSel(target));
  await page.waitForSelector('#panel:not([hidden]) h2', { timeout: 5000 });
  check((await page.textContent('#panel h2')) === target.split('/')[1], 'and its panel opens');

  // a status write reaches the page in under a second, the whole grouped graph on screen:
  // the search cleared, the asset's group left open by its selection
  await page.fill('#f-search', '');
  const all = `${env('ASSETS')} of ${env('ASSETS')} assets`;
  const whole = await page.waitForFunction((w) => document.getElementById('counts').textContent.startsWith(w), all, { timeout: LIMIT * 2000 }).then(() => true, () => false);
  check(whole, 'the whole graph is shown again when the search is cleared', await page.textContent('#counts'));
  await page.waitForSelector(nodeSel(target), { state: 'attached', timeout: 5000 });
  const [tns, tname] = target.split('/');
  const lat = [];
  for (let k = 0; k < 3; k++) {
    const cur = await page.$eval(nodeSel(target), (e) => e.dataset.phase);
    const phase = ['Running', 'Failed', 'Succeeded'].filter((p) => p !== cur)[k % 2];
    await page.evaluate((id) => {
      window.__changedAt = null;
      const e = document.querySelector(`g.node.asset[data-id="${id}"]`);
      window.__obs && window.__obs.disconnect();
      window.__obs = new MutationObserver(() => { if (window.__changedAt === null) window.__changedAt = Date.now(); });
      window.__obs.observe(e, { attributes: true, attributeFilter: ['data-phase'] });
    }, target);
    // the write as a controller makes it (kubectl's own start-up would come before it)
    const t0 = Date.now();
    await apiPatchStatus(tns, tname, JSON.stringify({ status: { phase } }));
    await page.waitForFunction(() => window.__changedAt !== null, null, { timeout: 5000 }).catch(() => {});
    const at = await page.evaluate(() => window.__changedAt);
    lat.push(at ? at - t0 : Infinity);
  }
  console.log(`measure: status write (PATCH sent) to the page, ${all} shown: ${lat.join(', ')} ms (target < 1000)`);
  check(lat.every((x) => x < LIMIT * 1000), `every live update reached the page under ${LIMIT} s after the status write`, lat.join(','));
  check(problems.length === 0, 'no page error or console error', problems.join(' | '));
  await close();
}

// --- an AssetSource: a root of the graph, its panel, live --------------------------------------------------
async function sources() {
  const srcName = env('SOURCE'), reader = env('TARGET');
  const sid = 'src:' + NS + '/' + srcName, srcSel = `g.node.source[data-id="${sid}"]`;
  const { ctx, close } = await launch();
  const page = ctx.pages()[0] || (await ctx.newPage());
  const problems = watchPage(page);
  await page.goto(UI + '/ui/');
  await page.waitForSelector('body[data-painted="1"]', { timeout: 15000 });
  await page.selectOption('#f-ns', NS);
  await page.waitForSelector(srcSel, { timeout: 10000 }).catch(() => {});
  const node = await page.$(srcSel);
  check(node !== null, 'the source is a node of the graph');
  if (!node) { await close(); return; }
  check((await node.getAttribute('data-phase')) === 'Available', 'coloured Available', await node.getAttribute('data-phase'));
  const ver = await node.getAttribute('data-version');
  check(/^[0-9a-f]{12}$/.test(ver), 'with its data version (12 hex digits)', ver);
  check((await node.getAttribute('data-fresh')) === 'true', 'and fresh', await node.getAttribute('data-fresh'));
  const edges = await page.$$eval('path.edge', (els) => els.map((e) => e.dataset.from + ' -> ' + e.dataset.to));
  check(edges.includes(`${sid} -> ${NS}/${reader}`), 'an edge from the source to the asset reading it', edges.join(' | '));
  const asAsset = await page.$$eval('g.node.asset', (els) => els.map((e) => e.dataset.id));
  check(!asAsset.includes(NS + '/' + srcName), 'the source is not drawn as an asset');

  // the reader's upstream panel links to the source
  await page.click(nodeSel(NS + '/' + reader));
  await page.waitForSelector(`#panel [data-up-source="${srcName}"]`, { timeout: 5000 }).catch(() => {});
  const link = await page.$(`#panel [data-up-source="${srcName}"]`);
  check(link !== null, "the asset's upstream panel names the source as a source");
  if (link) {
    await link.click();
    await page.waitForFunction((n) => document.querySelector('#panel h2') && document.querySelector('#panel h2').textContent === n && document.querySelector('#panel').dataset.id.startsWith('src:'), srcName, { timeout: 5000 }).catch(() => {});
    check((await page.textContent('#panel h2')) === srcName, 'a click on it opens the source panel');
    const text = await page.textContent('#panel');
    for (const want of ['data version', 'sha256:', 'observed at', 'last changed at', 'objects', 'bytes', 'Available', 'Observed', 'Fresh', 'Observations', 'Recent Events', 'SourceChanged', 'Data-version history', reader])
      check(text.includes(want), `the source panel shows ${want}`);
    check(await page.evaluate((id) => document.querySelector('g.node.selected') && document.querySelector('g.node.selected').dataset.id === id, sid), 'and selects its node');
  }
  await page.screenshot({ path: join(SHOTS, 'ui-source.png') });

  // live: an observation on demand changes observedAt on the node and in the panel, no reload
  await page.evaluate(() => { window.__sameDocument = true; });
  const before = await node.getAttribute('data-observed');
  const obsBefore = await page.evaluate(() => [...document.querySelectorAll('#panel dt')].find((d) => d.textContent === 'observation')?.nextElementSibling.textContent);
  kubectl('-n', NS, 'annotate', 'asrc', srcName, 'terrane.io/rerun=ui-' + Date.now(), '--overwrite');
  const moved = await page.waitForFunction(([sel, b]) => { const e = document.querySelector(sel); return e && e.dataset.observed && e.dataset.observed !== b; }, [srcSel, before], { timeout: 60000 }).then(() => true, () => false);
  check(moved, 'a new observation reaches the node without a reload', before + ' -> ' + (await page.getAttribute(srcSel, 'data-observed')));
  const panelMoved = await page.waitForFunction((b) => { const d = [...document.querySelectorAll('#panel dt')].find((x) => x.textContent === 'observation'); return d && d.nextElementSibling.textContent !== b; }, obsBefore, { timeout: 10000 }).then(() => true, () => false);
  check(panelMoved, 'and the open source panel follows', obsBefore);
  check((await page.getAttribute(srcSel, 'data-version')) === ver, 'an unchanged object keeps the data version');
  check(await page.evaluate(() => window.__sameDocument === true), 'without a reload');
  check(problems.length === 0, 'no page error or console error (CSP violations included)', problems.join(' | '));
  await close();
}

// --- a ZSTD-compressed COG: its preview is drawn too ---------------------------------------------------
async function zstd() {
  const target = env('TARGET');
  const { ctx, close } = await launch();
  const page = ctx.pages()[0] || (await ctx.newPage());
  const problems = watchPage(page);
  await page.goto(UI + '/ui/');
  await page.waitForSelector('body[data-painted="1"]', { timeout: 15000 });
  await page.selectOption('#f-ns', NS);
  await page.click(nodeSel(target));
  await page.waitForSelector('#panel:not([hidden]) h2', { timeout: 5000 });
  await page.waitForSelector('#preview[data-state="drawn"], #preview[data-state="error"]', { timeout: 20000 }).catch(() => {});
  const state = await page.$eval('#preview', (e) => e.dataset.state).catch(() => 'missing');
  const compression = await page.$eval('#preview', (e) => e.dataset.compression).catch(() => '');
  check(compression === '50000', 'the COG is ZSTD-compressed (TIFF compression 50000)', compression);
  check(state === 'drawn', 'the map preview of the ZSTD COG is drawn', state + ' ' + (await page.textContent('#preview').catch(() => '')));
  if (state === 'drawn') {
    const shot = await page.locator('#preview canvas.map').screenshot();
    writeFileSync(join(SHOTS, 'ui-preview-zstd.png'), shot);
    const st = pixelStats(decodePNG(shot));
    check(st.colours >= 16 && st.varied > 0.3, 'the ZSTD preview screenshot is not blank', `${st.colours} colours, ${(st.varied * 100).toFixed(0)}% unlike the commonest`);
  }
  // partition progress: a status with partition counts draws n/m and a bar, live
  const [tns, tname] = target.split('/');
  kubectl('-n', tns, 'patch', 'am', tname, '--subresource=status', '--type', 'merge', '-p',
    JSON.stringify({ status: { partitions: { total: 8, succeeded: 2, running: 1, failed: 2, pending: 3, summary: '2/8' } } }));
  const bar = await page.waitForSelector(nodeSel(target) + ' g.partbar', { timeout: 5000 }).catch(() => null);
  check(bar !== null, 'a partitioned status draws a progress bar on the node without a reload');
  if (bar) {
    const done = await bar.getAttribute('data-done'), failed = await bar.getAttribute('data-failed');
    check(done === '0.2500' && failed === '0.2500', 'the bar shows 2 of 8 succeeded and 2 failed', `${done} ${failed}`);
    const badges = await page.$$eval(nodeSel(target) + ' .badge.parts text', (els) => els.map((e) => e.textContent));
    check(badges.join() === '2/8', 'and a 2/8 badge', badges.join());
    await page.locator(nodeSel(target)).screenshot({ path: join(SHOTS, 'ui-partitions.png') });
  }
  check(problems.length === 0, 'no page error or console error (CSP violations included)', problems.join(' | '));
  await close();
}

// --- bench/bench_ui.sh: the strict bounds, each beside a baseline of the same run -----------------------
// Page ready: first paint of the scale namespace's graph against that of a small namespace
// (UI_BASE_URL), each in a fresh browser, alternating which goes first. Live update: status
// write to the page against status write to a plain API watch of the same object (what any
// client of the API server sees at the earliest), both timed from the same patch.
// Beside the wall clock, the renderer's main-thread CPU time up to that paint (Chromium's
// Performance.getMetrics TaskDuration in thread ticks): load on a shared machine stretches
// the first much more than the second.
async function firstPaint(url) {
  const { ctx, close } = await launch();
  const page = ctx.pages()[0] || (await ctx.newPage());
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('Performance.enable', { timeDomain: 'threadTicks' });
  const metrics = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));
  const m0 = await metrics();
  await page.goto(url + '/ui/');
  await page.waitForSelector('body[data-painted="1"]', { timeout: 60000 });
  const [fp, marks] = await page.evaluate(() => [window.terraneUI.firstPaint, window.terraneUI.marks]);
  const m1 = await metrics();
  await close();
  return { fp, marks, main: (m1.TaskDuration - (m0.TaskDuration || 0)) * 1000 };
}

function apiWatch(ns, name, rv, want) {
  const server = apiServer();
  const path = `/apis/terrane.io/v1alpha1/namespaces/${ns}/assetmaterializations?watch=1` +
    `&fieldSelector=metadata.name%3D${name}&resourceVersion=${rv}`;
  return new Promise((resolve, reject) => {
    const req = http.get(server + path, (res) => {
      let buf = '';
      res.on('data', (d) => {
        buf += d;
        for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) {
          const ev = JSON.parse(buf.slice(0, i));
          if (ev.object && ev.object.status && ev.object.status.phase === want) { resolve(Date.now()); req.destroy(); return; }
        }
      });
      res.on('error', reject);
    });
    req.on('error', (e) => { if (e.code !== 'ECONNRESET') reject(e); });
    // a deadline, not an idle timeout: bookmarks keep a watch busy without the change
    setTimeout(() => { req.destroy(); resolve(Infinity); }, 10000);
  });
}

const median = (xs) => { const v = [...xs].sort((a, b) => a - b); return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2; };

async function bench() {
  const reps = Number(process.env.REPS || 3);
  const base = [], big = [], baseMain = [], bigMain = [];
  for (let r = 0; r < reps; r++) {
    const order = r % 2 ? ['big', 'base'] : ['base', 'big'];
    for (const which of order) {
      const { fp, main, marks } = await firstPaint(which === 'big' ? UI : env('UI_BASE_URL'));
      if (which === 'big') console.log(`first paint ${env('ASSETS')}: ${fp.toFixed(0)} ms, the page's marks (ms after navigation): ${JSON.stringify(marks)}`);
      (which === 'big' ? big : base).push(fp);
      (which === 'big' ? bigMain : baseMain).push(main);
    }
  }
  console.log(`first paints ${env('ASSETS')}: ${big.map((x) => x.toFixed(0)).join(', ')} ms; ${env('BASE_ASSETS')}: ${base.map((x) => x.toFixed(0)).join(', ')} ms` +
    ` (load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})`);
  console.log(`main-thread CPU to first paint ${env('ASSETS')}: ${bigMain.map((x) => x.toFixed(0)).join(', ')} ms; ${env('BASE_ASSETS')}: ${baseMain.map((x) => x.toFixed(0)).join(', ')} ms`);
  const { ctx, close } = await launch();
  const page = ctx.pages()[0] || (await ctx.newPage());
  const problems = watchPage(page);
  await page.goto(UI + '/ui/');
  await page.waitForSelector('body[data-painted="1"]', { timeout: 60000 });
  const target = env('TARGET');
  const [ns, name] = target.split('/');
  const n = env('ASSETS'), nb = env('BASE_ASSETS');
  // The whole grouped graph stays on screen, no search: the target's group is opened
  // (a click, as a person would), so its node is drawn beside every other group.
  const key = (await apiGet(`/apis/terrane.io/v1alpha1/namespaces/${ns}/assetmaterializations/${name}`)).spec.assetKey;
  const group = ns + ':' + key.slice(0, key.lastIndexOf('/') + 1);
  // (dispatched: at its readable scale the graph of 10,000 is wider than the window)
  await page.$eval(`g.node.group[data-group="${group}"]`, (e) => e.dispatchEvent(new MouseEvent('click', { bubbles: true })));
  await page.waitForSelector(nodeSel(target), { state: 'attached', timeout: 10000 });
  const shown = await page.evaluate(() => ({ counts: document.getElementById('counts').textContent, groups: document.querySelectorAll('g.node.group').length, assets: document.querySelectorAll('g.node.asset').length }));
  console.log(`on screen during the live updates: ${shown.counts}; ${shown.groups} groups and ${shown.assets} assets drawn`);
  check(shown.counts.startsWith(`${n} of ${n} assets`), `the whole graph of ${n} assets is shown (no filter)`, shown.counts);
  // and zoomed out (the mouse wheel, as a person would) until all of it is in the window
  const box = await page.locator('#svg').boundingBox();
  await page.mouse.move(box.x + 10, box.y + box.height / 2); // the graph starts at its left end
  await page.mouse.wheel(0, 2400);
  await page.waitForTimeout(300);
  const inWindow = await page.evaluate(() => { const r = document.getElementById('viewport').getBoundingClientRect(), w = document.getElementById('svg').getBoundingClientRect(); return r.left >= w.left - 1 && r.right <= w.right + 1; });
  check(inWindow, 'and all of it is inside the window (zoomed out)');
  if (process.env.BENCH_SHOT) await page.screenshot({ path: process.env.BENCH_SHOT });

  // One status write, traced hop by hop on one clock (Date.now() here, in the page and
  // the controller's log timestamps): the write's request, its response (committed),
  // a plain API watch of the object, the controller's change message queued (its debug
  // log, CTL_LOG), the message's arrival in the page, the node re-drawn.
  const write = async (phase, viaKubectl) => {
    await page.evaluate((id) => {
      window.__changedAt = null;
      window.__paintedAt = null;
      const e = document.querySelector(`g.node.asset[data-id="${id}"]`);
      window.__obs && window.__obs.disconnect();
      // a frame requested while this one is drawn runs after its paint
      window.__obs = new MutationObserver(() => {
        if (window.__changedAt !== null) return;
        window.__changedAt = Date.now();
        requestAnimationFrame(() => { window.__paintedAt = Date.now(); });
      });
      window.__obs.observe(e, { attributes: true, attributeFilter: ['data-phase'] });
    }, target);
    const rv = (await apiGet(`/apis/terrane.io/v1alpha1/namespaces/${ns}/assetmaterializations/${name}`)).metadata.resourceVersion;
    const seen = apiWatch(ns, name, rv, phase);
    await new Promise((res) => setTimeout(res, 200)); // the watch is open before the write
    const body = JSON.stringify({ status: { phase } });
    const t0 = Date.now();
    const done = viaKubectl
      ? new Promise((res, rej) => execFile('kubectl', ['--kubeconfig', env('KUBECONFIG'), '-n', ns, 'patch', 'am', name,
        '--subresource=status', '--type', 'merge', '-p', body], (e) => (e ? rej(e) : res(Date.now()))))
      : apiPatchStatus(ns, name, body);
    const [tApi, tResp] = await Promise.all([seen, done.catch((e) => { console.log('status write failed: ' + e.message); return Infinity; })]);
    await page.waitForFunction(() => window.__paintedAt !== null, null, { timeout: 10000 }).catch(() => {});
    const [at, painted, renderMs, msg] = await page.evaluate(() => [window.__changedAt, window.__paintedAt, window.terraneUI.renderMs, window.terraneUI.lastMessage]);
    return { t0, resp: tResp - t0, api: tApi - t0, msg: msg ? msg.at - t0 : Infinity, seq: msg ? msg.seq : -1, node: at ? at - t0 : Infinity, page: painted ? painted - t0 : Infinity, renderMs };
  };
  const writes = [], viaKubectl = [];
  let cur = await page.$eval(nodeSel(target), (e) => e.dataset.phase);
  const nextPhase = () => (cur = ['Running', 'Failed', 'Succeeded'].find((p) => p !== cur));
  for (let k = 0; k < Math.max(5, reps); k++) writes.push(await write(nextPhase(), false));
  for (let k = 0; k < 3; k++) viaKubectl.push(await write(nextPhase(), true));
  await close();
  // the controller's hop, from its debug log: when the message of that seq was queued
  const queued = new Map();
  if (process.env.CTL_LOG)
    for (const line of readFileSync(process.env.CTL_LOG, 'utf8').split('\n')) {
      if (!line.includes('"ui: changes queued"')) continue;
      try { const o = JSON.parse(line); queued.set(o.seq, Date.parse(o.ts)); } catch (e) { /* a torn line */ }
    }
  for (const w of [...writes, ...viaKubectl]) w.ctl = queued.has(w.seq) ? queued.get(w.seq) - w.t0 : NaN;

  const row = (what, xs, bs, target, unit) => {
    const m = median(xs), b = median(bs);
    console.log(`${what.padEnd(38)} ${m.toFixed(0).padStart(7)} ${unit}   baseline ${b.toFixed(0).padStart(6)} ${unit}` +
      `   ratio ${(m / b).toFixed(2).padStart(6)}   target < ${target} ${unit}  ${m < target ? 'ok' : 'OVER'}`);
  };
  const hops = (ws) => {
    const cols = [['response', 'resp'], ['API watch', 'api'], ['controller queued', 'ctl'], ['page received', 'msg'], ['node re-drawn', 'node'], ['painted', 'page']];
    for (const w of ws) console.log('  ' + cols.map(([label, k]) => `${label} +${Number.isFinite(w[k]) ? w[k] : '?'}`).join(', ') + ` ms (seq ${w.seq}, render ${w.renderMs} ms)`);
    console.log('  medians: ' + cols.map(([label, k]) => `${label} +${median(ws.map((w) => w[k])).toFixed(0)}`).join(', ') + ' ms');
  };
  console.log(`load average after the live updates: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  console.log(`status writes (a PATCH of the status subresource), each hop in ms after the request was sent:`);
  hops(writes);
  console.log(`the same through kubectl patch, in ms after kubectl was started:`);
  hops(viaKubectl);
  console.log(`runs: first paint ${reps} each (fresh browser), live updates ${writes.length} + ${viaKubectl.length} through kubectl`);
  row(`page ready, ${n} assets (vs ${nb})`, big, base, 2000, 'ms');
  row('  its main-thread CPU', bigMain, baseMain, 2000, 'ms');
  row('status write -> page (vs API watch)', writes.map((w) => w.page), writes.map((w) => w.api), 1000, 'ms');
  row('kubectl patch started -> page (vs watch)', viaKubectl.map((w) => w.page), viaKubectl.map((w) => w.api), 1000, 'ms');
  console.log(`the UI's own share (page minus API watch, per write): ${writes.map((w) => (Number.isFinite(w.page - w.api) ? w.page - w.api : '?')).join(', ')} ms; ` +
    `kubectl's start-up before its write: ${viaKubectl.map((w) => w.resp).join(', ')} ms to its response`);
  check(problems.length === 0, 'no page error or console error', problems.join(' | '));
}

// A GET of the API server (the kubeconfig's server, no credentials: kubesim's e2e set-up).
function apiServer() {
  return readFileSync(env('KUBECONFIG'), 'utf8').match(/server:\s*(\S+)/)[1];
}

function apiGet(path) {
  return new Promise((resolve, reject) => {
    http.get(apiServer() + path, (res) => {
      let buf = '';
      res.on('data', (d) => { buf += d; });
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(buf)) : reject(new Error(`GET ${path}: ${res.statusCode}`))));
      res.on('error', reject);
    }).on('error', reject);
  });
}

// A merge patch of an AssetMaterialization's status, as a controller writes it; resolves
// with Date.now() when the response has arrived.
function apiPatchStatus(ns, name, body) {
  const url = `${apiServer()}/apis/terrane.io/v1alpha1/namespaces/${ns}/assetmaterializations/${name}/status`;
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'PATCH', headers: { 'Content-Type': 'application/merge-patch+json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(Date.now()) : reject(new Error(`PATCH status: ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const mode = process.argv[2];
try {
  if (mode === 'demo') await demo();
  else if (mode === 'scale') await scale();
  else if (mode === 'bench') await bench();
  else if (mode === 'zstd') await zstd();
  else if (mode === 'sources') await sources();
  else throw new Error('usage: ui.mjs demo|scale|bench|zstd');
} catch (e) {
  fail('unexpected: ' + (e.stack || e));
}
console.log(fails ? `${fails} browser check(s) failed` : 'all browser checks passed');
process.exit(fails ? 1 : 0);
