// preview.js - a map preview of an asset's COG, read by the browser straight
// from S3 with HTTP range requests (geotiff.js reads the header, then only
// the tiles of the overview that fits the canvas), drawn with a colour ramp;
// the value under the cursor comes from the same array. Bundled apart from
// the page's code (window.terranePreview, loaded by panel.js when needed).
import { addDecoder, BaseDecoder, fromUrl } from 'geotiff';
import { decompress } from 'fzstd';
import { el } from './dom.js';

// ZSTD tiles (TIFF compression 50000), decoded in JavaScript (fzstd): geotiff.js's own
// decoder loads WebAssembly from a data: URL, which the page's Content-Security-Policy refuses.
class ZstdDecoder extends BaseDecoder {
  decodeBlock(buffer) {
    const out = decompress(new Uint8Array(buffer));
    return out.byteOffset === 0 && out.byteLength === out.buffer.byteLength ? out.buffer : out.slice().buffer;
  }
}
addDecoder(50000, () => Promise.resolve(ZstdDecoder));

const SIZE = 384;
// viridis, five stops
const RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

function rampColour(t) {
  t = Math.min(1, Math.max(0, t)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(t)), f = t - i;
  const a = RAMP[i], b = RAMP[i + 1];
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

function fmt(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 0.01 || a >= 1e6) ? v.toExponential(3) : Number(v.toFixed(a < 10 ? 3 : 1)).toString();
}

// Renders into container; resolves when drawn. Errors are shown, not thrown.
export async function showPreview(container, url) {
  const canvas = el('canvas', { class: 'map', width: 1, height: 1 });
  const ramp = el('canvas', { class: 'ramp', width: 256, height: 1 });
  const lo = el('span'), hi = el('span');
  const value = el('div', { class: 'value muted', text: 'reading the COG…' });
  container.replaceChildren(canvas, ramp, el('div', { class: 'scale' }, lo, hi), value);
  container.dataset.state = 'loading';
  try {
    const tiff = await fromUrl(url, { allowFullFile: false, cacheSize: 64 });
    const image = await tiff.getImage(0);
    container.dataset.compression = String(image.fileDirectory.getValue('Compression') ?? 1);
    const W = image.getWidth(), H = image.getHeight();
    const scale = Math.min(1, SIZE / Math.max(W, H));
    const w = Math.max(1, Math.round(W * scale)), h = Math.max(1, Math.round(H * scale));
    const rasters = await tiff.readRasters({ samples: [0], width: w, height: h, resampleMethod: 'nearest', interleave: false });
    const data = rasters[0];
    const nodata = image.getGDALNoData();
    const valid = [];
    for (let i = 0; i < data.length; i += Math.max(1, Math.floor(data.length / 20000))) {
      const v = data[i];
      if (Number.isFinite(v) && v !== nodata) valid.push(v);
    }
    valid.sort((a, b) => a - b);
    const min = valid.length ? valid[Math.floor(valid.length * 0.02)] : 0;
    const max = valid.length ? valid[Math.min(valid.length - 1, Math.floor(valid.length * 0.98))] : 1;
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext('2d');
    const img = ctx.createImageData(w, h);
    const span = max > min ? max - min : 1;
    for (let i = 0; i < w * h; i++) {
      const v = data[i];
      const o = i * 4;
      if (!Number.isFinite(v) || v === nodata) { img.data[o + 3] = 0; continue; }
      const c = rampColour((v - min) / span);
      img.data[o] = c[0]; img.data[o + 1] = c[1]; img.data[o + 2] = c[2]; img.data[o + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    const rctx = ramp.getContext('2d');
    const rimg = rctx.createImageData(256, 1);
    for (let i = 0; i < 256; i++) {
      const c = rampColour(i / 255);
      rimg.data.set([c[0], c[1], c[2], 255], i * 4);
    }
    rctx.putImageData(rimg, 0, 0);
    lo.textContent = fmt(min);
    hi.textContent = fmt(max);
    const origin = image.getOrigin(), res = image.getResolution();
    const info = `${W}×${H} px, ${image.getSamplesPerPixel()} band(s), preview ${w}×${h}`;
    value.textContent = info;
    canvas.addEventListener('mousemove', (e) => {
      const r = canvas.getBoundingClientRect();
      const col = Math.floor(((e.clientX - r.left) / r.width) * w), row = Math.floor(((e.clientY - r.top) / r.height) * h);
      if (col < 0 || row < 0 || col >= w || row >= h) return;
      const v = data[row * w + col];
      const X = origin[0] + ((col + 0.5) / w) * W * res[0], Y = origin[1] + ((row + 0.5) / h) * H * res[1];
      value.textContent = `value ${v === nodata ? 'nodata' : fmt(v)} at ${fmt(X)}, ${fmt(Y)}`;
      container.dataset.value = String(v);
    });
    canvas.addEventListener('mouseleave', () => { value.textContent = info; });
    container.dataset.state = 'drawn';
    container.dataset.min = String(min);
    container.dataset.max = String(max);
  } catch (err) {
    value.textContent = 'no preview: ' + (err && err.message ? err.message : String(err));
    value.className = 'value warn';
    container.dataset.state = 'error';
  }
}

window.terranePreview = { showPreview };
