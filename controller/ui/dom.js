// dom.js - the only way this page puts text on screen: createElement and
// textContent, never HTML parsing, so an asset key, a param or an Event
// message is always shown as the characters it holds.
export const SVG = 'http://www.w3.org/2000/svg';

export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  for (const c of children) append(e, c);
  return e;
}

export function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  setAttrs(e, attrs);
  for (const c of children) append(e, c);
  return e;
}

function setAttrs(e, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = String(v);
    else if (k === 'onclick') e.addEventListener('click', v);
    else e.setAttribute(k, String(v));
  }
}

function append(e, c) {
  if (c === undefined || c === null || c === false) return;
  if (typeof c === 'string' || typeof c === 'number') e.appendChild(document.createTextNode(String(c)));
  else e.appendChild(c);
}

// Only http(s) links leave the page (no javascript: or data: URLs from a status).
export function safeHref(url) {
  try {
    const u = new URL(url, location.href);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch (e) {
    return null;
  }
}

// s3://bucket/key -> the endpoint's path-style URL, or null.
export function s3Http(endpoint, uri) {
  if (!endpoint || typeof uri !== 'string' || !uri.startsWith('s3://')) return null;
  const rest = uri.slice(5);
  const slash = rest.indexOf('/');
  if (slash <= 0) return null;
  const bucket = rest.slice(0, slash);
  const key = rest.slice(slash + 1).split('/').map(encodeURIComponent).join('/');
  return endpoint.replace(/\/+$/, '') + '/' + encodeURIComponent(bucket) + '/' + key;
}
