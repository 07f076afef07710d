// Activity: the log, newest first, filtered by type / actor / target / time, paged by cursor,
// with new lines arriving live over the dashboard socket. Reads GET /api/activity.

import {api} from '../api.js';
import {field, fill, h, table, toast, when} from '../dom.js';

const FILTERS = ['type', 'actor', 'target', 'since', 'until'];

export async function mount(ctx) {
  const inputs = Object.fromEntries(FILTERS.map((n) => [n, h('input', {name: n, value: ctx.query.get(n) || '', autocomplete: 'off',
    type: n === 'since' || n === 'until' ? 'datetime-local' : 'text', 'data-search': n === 'type' ? '' : undefined})]));
  const tbody = h('tbody', {});
  const more = h('button', {type: 'button'}, 'Older');
  let cursor = null;
  const filter = () => Object.fromEntries(FILTERS.map((n) => [n, inputs[n].value.trim()]));
  const row = (e) => h('tr', {}, h('td', {}, when(e.ts || e.timestamp)), h('td', {}, e.type), h('td', {class: 'id'}, e.actor || '—'),
    h('td', {class: 'id'}, e.target || ''), h('td', {class: 'id'}, JSON.stringify(e.data ?? {}).slice(0, 200)));
  const load = async (append) => {
    if (!append) { cursor = null; ctx.setQuery(filter()); }
    const page = await api('/api/activity', {query: {...filter(), cursor, limit: 100}});
    const items = page.activity || page.events || page.items || [];
    if (append) tbody.append(...items.map(row)); else fill(tbody, items.map(row));
    cursor = page.next_cursor || null;
    more.disabled = !cursor;
  };
  more.addEventListener('click', () => load(true).catch((e) => toast(e.message, 'error')));
  ctx.root.append(h('form', {class: 'filters', role: 'search', 'aria-label': 'Filter activity', onsubmit: (e) => { e.preventDefault(); load(false).catch((err) => toast(err.message, 'error')); }},
    ...FILTERS.map((n) => field(n, inputs[n])), h('button', {type: 'submit'}, 'Filter')),
  h('div', {class: 'table-wrap'}, h('table', {}, h('thead', {}, h('tr', {}, ['When', 'Type', 'Actor', 'Target', 'Data'].map((t) => h('th', {scope: 'col'}, t)))), tbody)),
  h('div', {class: 'pager'}, more));
  await load(false);
  return {
    refresh: () => load(false),
    event(msg) {  // the live tail: only on the newest page, only what the type filter lets in
      const f = filter();
      if (['connection_ack', 'stats_update', 'pong'].includes(msg.type)) return;
      if (f.type && f.type !== msg.type) return;
      if (f.actor || f.target || f.until) return;
      tbody.prepend(row({ts: msg.timestamp, type: msg.type, data: msg.data ?? msg.job}));
      while (tbody.rows.length > 200) tbody.lastElementChild.remove();
    },
  };
}
