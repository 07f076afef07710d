// Activity: the audit log, newest first, filtered by type / actor / target / time, paged by
// cursor. A live tail: an event on the dashboard socket means new lines, so the newest page
// is read again, at most once per TAIL_MS however many events arrive. Reads GET /api/activity.

import {api} from '../api.js';
import {field, fill, h, status, toast, when} from '../dom.js';

const TAIL_MS = 2000;
const TEXT = {type: 'job.failed,job.dead', actor: 'key id, IP or system', target: 'job, document or key id'};
const TIMES = ['since', 'until'];
const FILTERS = [...Object.keys(TEXT), ...TIMES];
const QUIET = new Set(['connection_ack', 'stats_update', 'pong', 'restarting']);

/** A datetime-local value (the browser's local time, no zone) as ISO 8601 UTC; `until`
 *  takes in its whole minute. */
export function isoOf(local, end = false) {
  if (!local) return '';
  const at = new Date(local);  // a zoneless date-time string is local time
  if (Number.isNaN(at.getTime())) return '';
  return new Date(at.getTime() + (end ? 59999 : 0)).toISOString();
}

export async function mount(ctx) {
  const inputs = Object.fromEntries(FILTERS.map((n) => [n, h('input', {name: n, value: ctx.query.get(n) || '', autocomplete: 'off',
    type: TIMES.includes(n) ? 'datetime-local' : 'text', placeholder: TEXT[n], 'data-search': n === 'type' ? '' : undefined})]));
  const tbody = h('tbody', {});
  const more = h('button', {type: 'button'}, 'Older');
  const live = h('p', {class: 'muted', 'aria-live': 'polite'});
  let cursor = null;
  let paged = false;  // older pages shown: the tail waits until the filter is applied again
  let timer = null;
  const filter = () => Object.fromEntries(FILTERS.map((n) => [n, inputs[n].value.trim()]));
  const query = () => {
    const f = filter();
    return {type: f.type.replace(/\s+/g, ''), actor: f.actor, target: f.target, since: isoOf(f.since), until: isoOf(f.until, true)};
  };
  const load = async (append) => {
    if (!append) { cursor = null; paged = false; ctx.setQuery(filter()); }
    const page = await api('/api/activity', {query: {...query(), cursor, limit: 100}});
    const rows = page.activity.map(row);
    if (append) tbody.append(...rows); else fill(tbody, rows.length ? rows : h('tr', {}, h('td', {colspan: 7, class: 'muted'}, 'No lines match.')));
    cursor = page.next_cursor;
    paged = paged || append;
    more.disabled = !cursor;
    live.textContent = paged ? 'Showing older lines: Filter returns to the live tail.' : `Live · read ${new Date().toLocaleTimeString()}`;
  };
  const report = (e) => toast(e.message, 'error');
  more.addEventListener('click', () => load(true).catch(report));
  ctx.root.append(h('form', {class: 'filters', role: 'search', 'aria-label': 'Filter activity', onsubmit: (e) => { e.preventDefault(); load(false).catch(report); }},
    ...FILTERS.map((n) => field(n, inputs[n])), h('button', {type: 'submit'}, 'Filter')), live,
  h('div', {class: 'table-wrap'}, h('table', {}, h('thead', {}, h('tr', {}, ['When', 'Type', 'Actor', 'Target', 'Outcome', 'Correlation', 'Data'].map((t) => h('th', {scope: 'col'}, t)))), tbody)),
  h('div', {class: 'pager'}, more));
  await load(false);
  return {
    refresh: () => load(false),
    unmount: () => clearTimeout(timer),
    event(msg) {
      if (QUIET.has(msg.type) || paged || timer) return;
      timer = setTimeout(() => { timer = null; if (!paged) load(false).catch(report); }, TAIL_MS);
    },
  };
}

function row(line) {
  const actor = line.actor || {};
  const who = actor.name ? `${actor.name} (${actor.id})` : actor.id;
  return h('tr', {}, h('td', {}, when(line.ts)), h('td', {}, line.type),
    h('td', {class: 'id'}, who || '—', line.ip && line.ip !== actor.id ? ` · ${line.ip}` : ''),
    h('td', {class: 'id'}, line.target || ''), h('td', {}, status(line.outcome)),
    h('td', {class: 'id'}, line.correlation_id || ''), h('td', {class: 'id'}, JSON.stringify(line.data ?? {}).slice(0, 200)));
}
