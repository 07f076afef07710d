// History: find jobs by job id or document id, with a status filter and the detail drawer.

import {api} from '../api.js';
import {field, fill, h, status, table, toast, when} from '../dom.js';
import {openJob} from './job-drawer.js';

export async function mount(ctx) {
  const q = h('input', {type: 'search', name: 'q', value: ctx.query.get('q') || '', 'data-search': '', placeholder: 'job_… or doc_…', autocomplete: 'off'});
  const st = h('select', {name: 'status'}, h('option', {value: ''}, 'Any'),
    ['pending', 'in_progress', 'completed', 'partial', 'failed', 'cancelled'].map((s) => h('option', {value: s, selected: ctx.query.get('status') === s}, s)));
  const out = h('div', {});
  const search = async () => {
    ctx.setQuery({q: q.value.trim(), status: st.value});
    const page = await api('/api/v2/jobs', {query: {q: q.value.trim(), status: st.value, limit: 100}});
    fill(out, h('p', {class: 'muted'}, `${page.total} job${page.total === 1 ? '' : 's'}`),
      table(['Job', 'Document', 'Kind', 'Status', 'Channels', 'Created'], page.jobs.map((j) => h('tr', {},
        h('td', {class: 'id'}, h('button', {type: 'button', class: 'link', onclick: () => openJob(j.job_id, ctx).catch((e) => toast(e.message, 'error'))}, j.job_id)),
        h('td', {class: 'id'}, j.document_id || '—'), h('td', {}, j.kind), h('td', {}, status(j.status)),
        h('td', {}, (j.channels || []).join(', ')), h('td', {}, when(j.created_at))))));
  };
  ctx.root.append(h('form', {class: 'filters', role: 'search', 'aria-label': 'Search history', onsubmit: (e) => { e.preventDefault(); search().catch((err) => toast(err.message, 'error')); }},
    field('Job or document id (/)', q), field('Status', st), h('button', {type: 'submit'}, 'Search')), out);
  await search();
  return {refresh: search};
}
