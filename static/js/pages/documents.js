// Documents: upload with a real progress bar (XMLHttpRequest upload progress), the list, and
// search whose snippets show the server's highlight marks, built as elements, never as HTML.

import {api, upload} from '../api.js';
import {field, fill, h, highlighted, num, status, table, toast, when} from '../dom.js';

export async function mount(ctx) {
  const list = h('div', {});
  const results = h('div', {'aria-live': 'polite'});
  const q = h('input', {type: 'search', name: 'q', value: ctx.query.get('q') || '', 'data-search': '', autocomplete: 'off'});
  const refresh = async () => {
    const page = await api('/api/documents', {query: {limit: 50}});
    fill(list, h('p', {class: 'muted'}, `${num(page.total)} documents`),
      table(['Document', 'Title', 'Format', 'Size', 'Created'], page.documents.map((d) => h('tr', {},
        h('td', {class: 'id'}, d.id), h('td', {}, d.title || '—'), h('td', {}, d.format),
        h('td', {}, `${num(d.size)} B`), h('td', {}, when(d.created_at))))));
  };
  const search = async () => {
    const text = q.value.trim();
    ctx.setQuery({q: text});
    if (!text) { results.replaceChildren(); return; }
    const page = await api('/api/search', {query: {q: text, mode: 'plain', limit: 20}});
    fill(results, h('p', {class: 'muted'}, `${num(page.total)} hit${page.total === 1 ? '' : 's'} in ${num(page.latency_ms, 1)} ms`),
      h('ol', {class: 'hits'}, page.results.map((r) => h('li', {class: 'hit'},
        h('strong', {}, highlighted(r.title_highlighted || r.title)), ' ', h('code', {}, r.id),
        h('div', {class: 'snippet'}, highlighted(r.snippet))))));
  };
  ctx.root.append(h('form', {class: 'filters', role: 'search', 'aria-label': 'Search documents',
    onsubmit: (e) => { e.preventDefault(); search().catch((err) => toast(err.message, 'error')); }},
  field('Search documents (/)', q), h('button', {type: 'submit'}, 'Search')), results);
  if (ctx.can('operator')) ctx.root.append(uploader(refresh));
  ctx.root.append(h('h2', {}, 'Documents'), list);
  await Promise.all([refresh(), search()]);
  return {refresh, event: (msg) => { if (msg.type === 'ingestion_complete') refresh().catch(() => {}); }};
}

function uploader(refresh) {
  const file = h('input', {type: 'file', name: 'file', required: true});
  const bar = h('progress', {max: 100, value: 0, 'aria-label': 'Upload progress'});
  const state = h('p', {class: 'muted', 'aria-live': 'polite'}, 'Choose a file.');
  const jobState = h('div', {});
  const send = async (e) => {
    e.preventDefault();
    const chosen = file.files[0];
    if (!chosen) return;
    const form = new FormData();
    form.append('file', chosen);
    form.append('metadata', JSON.stringify({source: 'dashboard'}));
    bar.value = 0;
    const job = await upload('/api/ingest', form, (done, total) => {
      bar.value = Math.round((done / total) * 100);
      state.textContent = `Uploading: ${num(done)} of ${num(total)} bytes`;
    });
    bar.value = 100;
    state.textContent = `Uploaded; ingesting (job ${job.job_id})…`;
    const ended = await watch(job.job_id);
    fill(jobState, 'Ingestion ', status(ended.status), ended.document_id ? ` → ${ended.document_id}` : '');
    state.textContent = ended.status === 'completed' ? `Done: ${chosen.name} is searchable.` : `Ingestion ${ended.status}.`;
    await refresh();
  };
  return h('div', {class: 'card upload'}, h('h2', {}, 'Upload'),
    h('form', {class: 'filters', onsubmit: (e) => send(e).catch((err) => { state.textContent = err.message; toast(err.message, 'error'); })},
      field('File', file), h('button', {type: 'submit'}, 'Upload')), bar, state, jobState);
}

/** Until the job ends: its status socket pushes each change; no polling. */
export function watch(jobId) {
  return api('/api/auth/ws-token', {method: 'POST'}).then(({token}) => new Promise((resolve, reject) => {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/ws/status/${encodeURIComponent(jobId)}?token=${encodeURIComponent(token)}`);
    let last = null;
    ws.onmessage = (e) => {
      try { const msg = JSON.parse(e.data); last = msg.job || msg; } catch { /* not JSON */ }
      if (['completed', 'partial', 'failed', 'cancelled'].includes(last?.status)) { resolve(last); ws.close(1000); }
    };
    ws.onclose = () => (last ? resolve(last) : reject(new Error('the status socket closed')));
  }));
}
