// Cache: statistics, invalidation by keys / pattern / tags, clear, and the history of both.

import {api} from '../api.js';
import {confirmDialog, field, fill, h, num, pct, table, toast, when} from '../dom.js';

export async function mount(ctx) {
  const statsBox = h('div', {class: 'tiles'});
  const historyBox = h('div', {});
  let lastRead = 0;
  const refresh = async () => {
    lastRead = Date.now();
    const [s, hist] = await Promise.all([api('/api/v2/cache/stats'), api('/api/v2/cache/history', {query: {limit: 20}})]);
    fill(statsBox, ...[['keys', num(s.total_keys)], ['hit rate', pct(s.hit_rate)], ['hits', num(s.hits)], ['misses', num(s.misses)],
      ['evictions', num(s.evictions)], ['size', `${num(s.memory_usage_mb, 2)} MB`], ['oldest key', `${num(s.oldest_key_age_seconds)} s`]]
      .map(([l, v]) => h('div', {class: 'tile'}, h('div', {class: 'label'}, l), h('div', {class: 'value'}, v))));
    fill(historyBox, hist.history.length ? table(['When', 'Action', 'Removed', 'By'], hist.history.map((e) => h('tr', {},
      h('td', {}, when(e.timestamp)), h('td', {}, action(e)), h('td', {}, num(e.invalidated ?? 0)),
      h('td', {class: 'id'}, e.actor || '—')))) : h('p', {class: 'muted'}, 'Nothing invalidated yet.'));
  };
  ctx.root.append(statsBox);
  if (ctx.can('admin')) {
    const pattern = h('input', {name: 'pattern', placeholder: 'render:*', autocomplete: 'off'});
    const tags = h('input', {name: 'tags', placeholder: 'doc_…, email', autocomplete: 'off'});
    const invalidate = async (e) => {
      e.preventDefault();
      const body = {pattern: pattern.value.trim() || undefined, tags: tags.value.split(',').map((t) => t.trim()).filter(Boolean)};
      if (!body.pattern && !body.tags.length) { toast('Give a pattern or tags.'); return; }
      const r = await api('/api/v2/cache/invalidate', {method: 'POST', body});
      toast(`Invalidated ${num(r.invalidated)} entries.`);
      await refresh();
    };
    const clear = async () => {
      if (!await confirmDialog('Clear the cache?', 'Every cached render is removed; the next ones are rendered again.', 'Clear')) return;
      await api('/api/v2/cache/clear', {method: 'POST'});
      toast('Cache cleared.');
      await refresh();
    };
    ctx.root.append(h('h2', {}, 'Invalidate'), h('form', {class: 'filters', onsubmit: (e) => invalidate(e).catch((err) => toast(err.message, 'error'))},
      field('Key pattern (glob)', pattern), field('Tags (comma-separated)', tags), h('button', {type: 'submit'}, 'Invalidate'),
      h('button', {type: 'button', class: 'danger', onclick: () => clear().catch((err) => toast(err.message, 'error'))}, 'Clear all')));
  }
  ctx.root.append(h('h2', {}, 'History'), historyBox);
  await refresh();
  // Someone else's invalidation; this page's own actions read again already.
  const event = (msg) => { if (msg.type === 'cache_invalidated' && Date.now() - lastRead > 1000) refresh().catch(() => {}); };
  return {refresh, event};
}

function action(e) {
  if (e.cleared) return 'clear';
  if (e.pattern) return `pattern ${e.pattern}`;
  if (e.tags?.length) return `tags ${e.tags.join(', ')}`;
  return `${e.cache_keys?.length ?? 0} keys`;
}
