// Every call to the server: the key on each, errors as ApiError, a 401 signs out.

const KEY = 'toombos_edge_key';
let unauthorized = () => {};

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export const key = {
  get: () => localStorage.getItem(KEY),
  set: (value) => localStorage.setItem(KEY, value),
  clear: () => localStorage.removeItem(KEY),
};

/** What to do when the server says the key is not (or no longer) good. */
export function onUnauthorized(handler) { unauthorized = handler; }

export function url(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === '') continue;
    for (const v of Array.isArray(value) ? value : [value]) params.append(name, v);
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

function headers(extra = {}) {
  const h = {...extra};
  const k = key.get();
  if (k) h.Authorization = `Bearer ${k}`;
  return h;
}

async function failure(res) {
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  const message = body?.detail || body?.error?.message || `${res.status} ${res.statusText}`;
  if (res.status === 401) unauthorized(message);
  return new ApiError(res.status, message, body);
}

/** JSON in, JSON out. */
export async function api(path, {method = 'GET', body, query, signal} = {}) {
  const init = {method, headers: headers(), signal};
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(url(path, query), init);
  if (!res.ok) throw await failure(res);
  return res.status === 204 ? null : res.json();
}

/** A file download of an authenticated GET (the key cannot ride in a link). */
export async function download(path, query, filename) {
  const res = await fetch(url(path, query), {headers: headers()});
  if (!res.ok) throw await failure(res);
  const blob = await res.blob();
  const href = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = href;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10000);
  return blob.size;
}

/** A multipart upload with real progress (fetch cannot report upload progress). */
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    for (const [name, value] of Object.entries(headers())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener('progress', (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); });
    xhr.addEventListener('load', () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) { resolve(body); return; }
      const message = body?.detail || `${xhr.status} ${xhr.statusText}`;
      if (xhr.status === 401) unauthorized(message);
      reject(new ApiError(xhr.status, message, body));
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, 'the upload failed (network)')));
    xhr.send(form);
  });
}
