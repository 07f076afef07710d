// Jobs: a live table over /ws/jobs, filters in the URL, cursor paging, batch actions, export.

import {api, download} from '../api.js';
import {confirmDialog, field, fill, h, num, status, toast, when} from '../dom.js';
import {openJob} from './job-drawer.js';

const STATUSES = ['pending', 'in_progress', 'completed', 'partial', 'failed', 'cancelled'];
const PAGE_SIZE = 50;
const FIELDS = 'job_id,kind,status,progress,attempts,max_attempts,created_at,updated_at,document_id';
const JOB_EVENTS = new Set(['job_created', 'job_update', 'job_status_change', 'job_completed', 'job_failed', 'job_cancelled']);

export async function mount(ctx) {
  const page = new JobsPage(ctx);
  await page.load();
  return page;
}

class JobsPage {
  constructor(ctx) {
    this.ctx = ctx;
    this.filter = readFilter(ctx.query);
    this.cursors = [null];  // the cursor of each page visited; the last is the current one
    this.rows = new Map();  // job_id → {tr, cells}
    this.selected = new Set();
    this.pending = new Map();  // job_id → [type, job]: updates waiting for the next frame
    this.frame = 0;
    this.total = 0;
    this.build();
  }

  build() {
    const f = this.filter;
    this.inputs = {
      status: h('select', {name: 'status'}, h('option', {value: ''}, 'Any'), STATUSES.map((s) => h('option', {value: s, selected: f.status === s}, s.replace('_', ' ')))),
      kind: h('input', {name: 'kind', value: f.kind, size: 10, autocomplete: 'off'}),
      q: h('input', {name: 'q', type: 'search', value: f.q, placeholder: 'job, document or correlation id', 'data-search': '', autocomplete: 'off'}),
      from: h('input', {name: 'from', type: 'date', value: f.from}),
      to: h('input', {name: 'to', type: 'date', value: f.to}),
    };
    const form = h('form', {class: 'filters', role: 'search', 'aria-label': 'Filter jobs', onsubmit: (e) => { e.preventDefault(); this.applyFilter(); }},
      field('Status', this.inputs.status), field('Kind', this.inputs.kind), field('Search (/)', this.inputs.q),
      field('From', this.inputs.from), field('To', this.inputs.to), h('button', {type: 'submit'}, 'Filter'));
    for (const name of ['status', 'from', 'to']) this.inputs[name].addEventListener('change', () => this.applyFilter());
    const op = this.ctx.can('operator');
    this.count = h('span', {class: 'muted', 'aria-live': 'polite'});
    const actions = h('div', {class: 'row'},
      op ? h('button', {type: 'button', onclick: () => this.batchSelected('retry')}, 'Retry selected') : null,
      op ? h('button', {type: 'button', onclick: () => this.batchSelected('cancel')}, 'Cancel selected') : null,
      op ? h('button', {type: 'button', onclick: () => this.batchFilter('retry')}, 'Retry all matching') : null,
      op ? h('button', {type: 'button', class: 'danger', onclick: () => this.batchFilter('cancel')}, 'Cancel all matching') : null,
      h('button', {type: 'button', onclick: () => this.export('csv')}, 'Export CSV'),
      h('button', {type: 'button', onclick: () => this.export('json')}, 'Export JSON'));
    this.tbody = h('tbody', {});
    this.all = h('input', {type: 'checkbox', 'aria-label': 'Select all jobs on this page', onchange: (e) => this.selectAll(e.target.checked)});
    const table = h('div', {class: 'table-wrap'}, h('table', {class: 'jobs'},
      h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, this.all), ...['Job', 'Kind', 'Status', 'Progress', 'Attempts', 'Created', 'Updated'].map((t, i) =>
        h('th', {scope: 'col', class: i > 4 ? 'hide-narrow' : undefined}, t)))),
      this.tbody));
    this.newer = h('button', {type: 'button', onclick: () => this.page(-1)}, 'Newer');
    this.older = h('button', {type: 'button', onclick: () => this.page(1)}, 'Older');
    this.ctx.root.append(form, actions, h('div', {class: 'pager'}, this.count), table, h('div', {class: 'pager'}, this.newer, this.older));
    this.tbody.addEventListener('click', (e) => {
      const btn = e.target.closest('button[data-job]');
      if (btn) openJob(btn.dataset.job, this.ctx).catch((err) => toast(err.message, 'error'));
    });
    this.tbody.addEventListener('change', (e) => {
      const id = e.target.dataset?.select;
      if (!id) return;
      if (e.target.checked) this.selected.add(id); else this.selected.delete(id);
    });
  }

  query(query) {  // the URL changed under the page (back, a shared link)
    this.filter = readFilter(query);
    for (const [name, input] of Object.entries(this.inputs)) input.value = this.filter[name];
    this.cursors = [null];
    this.load();
  }

  applyFilter() {
    this.filter = Object.fromEntries(Object.entries(this.inputs).map(([n, i]) => [n, i.value.trim()]));
    this.ctx.setQuery(this.filter);
    this.cursors = [null];
    this.load();
  }

  async load() {
    const cursor = this.cursors[this.cursors.length - 1];
    const page = await api('/api/v2/jobs', {query: {...this.filter, limit: PAGE_SIZE, cursor, fields: FIELDS}});
    this.next = page.next_cursor;
    this.total = page.total;
    this.exact = page.total_exact !== false;
    this.rows.clear();
    this.selected.clear();
    this.all.checked = false;
    fill(this.tbody, page.jobs.map((job) => this.row(job)));
    this.renderCount();
  }

  refresh() { return this.load(); }

  page(step) {
    if (step > 0 && this.next) this.cursors.push(this.next);
    else if (step < 0 && this.cursors.length > 1) this.cursors.pop();
    else return;
    this.load().catch((err) => toast(err.message, 'error'));
  }

  renderCount() {
    const first = this.cursors.length === 1;
    this.count.textContent = `${num(this.total)}${this.exact ? '' : '+'} matching · page ${this.cursors.length}`;
    this.newer.disabled = first;
    this.older.disabled = !this.next;
  }

  row(job) {
    const cells = {
      status: h('td', {}, status(job.status)),
      progress: h('progress', {max: 100, value: percent(job), 'aria-label': `Progress of ${job.job_id}`}),
      attempts: h('td', {}, `${job.attempts}/${job.max_attempts}`),
      updated: h('td', {class: 'hide-narrow'}, when(job.updated_at)),
    };
    const tr = h('tr', {dataset: {job: job.job_id, status: job.status, created: job.created_at || ''}},
      h('td', {}, h('input', {type: 'checkbox', dataset: {select: job.job_id}, 'aria-label': `Select ${job.job_id}`})),
      h('td', {class: 'id'}, h('button', {type: 'button', class: 'link', dataset: {job: job.job_id}}, job.job_id)),
      h('td', {}, job.kind), cells.status, h('td', {}, cells.progress), cells.attempts,
      h('td', {class: 'hide-narrow'}, when(job.created_at)), cells.updated);
    this.rows.set(job.job_id, {tr, cells});
    return tr;
  }

  /** A job event: kept (the newest per job wins), drawn on the next animation frame. */
  event(msg) {
    if (!JOB_EVENTS.has(msg.type) || !msg.job) return;
    // The newest state wins, but a job created in this frame stays "created" (a new row).
    const created = msg.type === 'job_created' || this.pending.get(msg.job.job_id)?.[0] === 'job_created';
    this.pending.set(msg.job.job_id, [created ? 'job_created' : msg.type, msg.job]);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = 0;
    const fresh = [];
    for (const [type, job] of this.pending.values()) {
      const known = this.rows.get(job.job_id);
      if (known) this.update(known, job);
      else if (this.isNew(type, job)) fresh.push(job);
      // /ws/jobs carries the whole job: an open drawer follows it without a request.
      const open = document.querySelector(`aside.drawer[data-job-id="${job.job_id}"]`);
      if (open?.jobUpdate) open.jobUpdate(job);
    }
    this.pending.clear();
    if (fresh.length) this.prepend(fresh);
  }

  update({tr, cells}, job) {
    if (tr.dataset.status !== job.status) {
      tr.dataset.status = job.status;
      fill(cells.status, status(job.status));
    }
    cells.progress.value = percent(job);
    cells.attempts.textContent = `${job.attempts}/${job.max_attempts}`;
    cells.updated.textContent = when(job.updated_at);
  }

  prepend(jobs) {
    jobs.reverse();  // newest first
    const rows = jobs.map((job) => { const tr = this.row(job); tr.classList.add('fresh'); return tr; });
    this.tbody.prepend(...rows);
    this.total += jobs.length;
    while (this.tbody.rows.length > PAGE_SIZE) {
      const last = this.tbody.lastElementChild;
      this.rows.delete(last.dataset.job);
      last.remove();
    }
    this.renderCount();
  }

  /** A row to add: on the first page, matching the filter, and created now or after the
   * newest row shown (its created event came before the page's read, or while offline). */
  isNew(type, job) {
    if (this.cursors.length !== 1 || !this.matches(job)) return false;
    const newest = this.tbody.firstElementChild?.dataset.created || '';
    return type === 'job_created' || (job.created_at || '') > newest;
  }

  matches(job) {
    const f = this.filter;
    if (f.q) return false;  // the server's text match decides; the next read shows it
    if (f.status && f.status !== job.status) return false;
    if (f.kind && f.kind !== job.kind) return false;
    const day = (job.created_at || '').slice(0, 10);
    return !(f.from && day < f.from) && !(f.to && day > f.to);
  }

  selectAll(on) {
    for (const box of this.tbody.querySelectorAll('input[data-select]')) {
      box.checked = on;
      if (on) this.selected.add(box.dataset.select); else this.selected.delete(box.dataset.select);
    }
  }

  async batchSelected(verb) {
    const ids = [...this.selected];
    if (!ids.length) { toast('Select jobs first.'); return; }
    if (!await confirmDialog(`${cap(verb)} ${ids.length} selected job${ids.length === 1 ? '' : 's'}?`,
      `This will ${verb} exactly ${ids.length} job${ids.length === 1 ? '' : 's'}.`, cap(verb))) return;
    this.report(verb, await api(`/api/jobs/batch/${verb}`, {method: 'POST', body: {job_ids: ids}}));
  }

  async batchFilter(verb) {
    const {total} = await api('/api/v2/jobs', {query: {...this.filter, limit: 1, fields: 'job_id'}});
    const described = describe(this.filter);
    if (!await confirmDialog(`${cap(verb)} ${num(total)} matching job${total === 1 ? '' : 's'}?`,
      `This will ${verb} every job matching ${described}: ${num(total)} job${total === 1 ? '' : 's'} now. Jobs it cannot ${verb} are left as they are.`,
      `${cap(verb)} ${num(total)}`)) return;
    this.report(verb, await api(`/api/jobs/batch/${verb}`, {method: 'POST', body: {filter: cleaned(this.filter)}}));
  }

  report(verb, tally) {
    toast(`${cap(verb)}: ${num(tally.touched)} done, ${num(tally.refused)} left as they were.`);
    this.selected.clear();
  }

  async export(format) {
    const bytes = await download('/api/jobs/export', {...this.filter, format}, `jobs.${format}`);
    toast(`Exported ${num(bytes)} bytes as ${format.toUpperCase()}.`);
  }

  unmount() { cancelAnimationFrame(this.frame); }
}

function readFilter(query) {
  const get = (n) => query.get(n) || '';
  return {status: get('status'), kind: get('kind'), q: get('q'), from: get('from'), to: get('to')};
}

function cleaned(filter) {
  return Object.fromEntries(Object.entries(filter).filter(([, v]) => v));
}

function describe(filter) {
  const parts = Object.entries(cleaned(filter)).map(([k, v]) => `${k} = ${v}`);
  return parts.length ? parts.join(', ') : 'no filter (all jobs)';
}

function percent(job) {
  if (job.status === 'completed') return 100;
  return Math.max(0, Math.min(100, job.progress?.percent ?? 0));
}

function cap(s) { return s[0].toUpperCase() + s.slice(1); }
