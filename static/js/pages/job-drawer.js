// A job's detail drawer: params, results per channel, errors, attempts; retry and cancel.

import {api} from '../api.js';
import {drawer, fill, h, json, status, table, toast, when} from '../dom.js';

const ACTIVE = new Set(['pending', 'in_progress']);
const RETRYABLE = new Set(['failed', 'partial', 'cancelled']);

export async function openJob(jobId, ctx) {
  const job = await api(`/api/v2/jobs/${encodeURIComponent(jobId)}`);
  const {panel, close} = drawer(`Job ${job.job_id}`, h('div', {class: 'job-detail'}));
  const body = panel.querySelector('.job-detail');
  const render = (j) => fill(body, detail(j, ctx, close));
  render(job);
  panel.dataset.jobId = job.job_id;
  panel.jobUpdate = render;  // the Jobs page feeds it live events
  return panel;
}

function detail(job, ctx, close) {
  const act = async (verb) => {
    try {
      const updated = await api(`/api/v2/jobs/${encodeURIComponent(job.job_id)}/${verb}`, {method: 'POST'});
      toast(`${verb === 'retry' ? 'Retrying' : 'Cancelled'} ${updated.job_id}`);
    } catch (err) { toast(err.message, 'error'); }
  };
  const actions = ctx.can('operator') ? h('div', {class: 'row'},
    RETRYABLE.has(job.status) ? h('button', {type: 'button', onclick: () => act('retry')}, 'Retry') : null,
    ACTIVE.has(job.status) ? h('button', {type: 'button', class: 'danger', onclick: () => act('cancel')}, 'Cancel') : null,
    h('button', {type: 'button', onclick: close}, 'Close')) : null;
  const results = Object.entries(job.results || {});
  return [
    h('p', {}, status(job.status), ' ', job.kind, ' · ',
      h('progress', {max: 100, value: job.progress?.percent ?? 0, 'aria-label': 'Progress'}), ' ',
      `${Math.round(job.progress?.percent ?? 0)} %`, job.progress?.message ? ` — ${job.progress.message}` : ''),
    h('p', {class: 'muted'}, `Attempt ${job.attempts} of ${job.max_attempts} · created ${when(job.created_at)}`,
      job.started_at ? ` · started ${when(job.started_at)}` : '',
      job.completed_at ? ` · ended ${when(job.completed_at)}` : ''),
    actions,
    job.document_id ? h('p', {}, 'Document ', h('code', {}, job.document_id)) : null,
    h('h3', {}, 'Results per channel'),
    results.length ? table(['Channel', 'Status', 'Detail'], results.map(([channel, r]) => h('tr', {},
      h('td', {}, channel), h('td', {}, status(r?.status ?? 'unknown')),
      h('td', {class: 'id'}, r?.error || r?.url || r?.content_id || (r ? JSON.stringify(r).slice(0, 160) : ''))))) :
      h('p', {class: 'muted'}, 'No results yet.'),
    h('h3', {}, 'Errors'),
    job.errors?.length ? h('ol', {}, job.errors.map((e) => h('li', {}, typeof e === 'string' ? e : JSON.stringify(e)))) :
      h('p', {class: 'muted'}, job.last_error || 'None.'),
    h('h3', {}, 'Params'), json(job.params),
    h('h3', {}, 'Metadata'), json(job.metadata),
  ];
}
