// Content: items, their versions, a line diff between two versions, rollback.

import {api} from '../api.js';
import {confirmDialog, drawer, field, fill, h, status, table, toast, when} from '../dom.js';

export async function mount(ctx) {
  const jobId = h('input', {name: 'job_id', value: ctx.query.get('job_id') || '', 'data-search': '', autocomplete: 'off', placeholder: 'job_…'});
  const list = h('div', {});
  const refresh = async () => {
    ctx.setQuery({job_id: jobId.value.trim()});
    const page = await api('/api/v2/content', {query: {job_id: jobId.value.trim(), limit: 50}});
    fill(list, h('p', {class: 'muted'}, `${page.total} item${page.total === 1 ? '' : 's'}`),
      table(['Content', 'Channel', 'Version', 'Status', 'Updated'], page.content.map((c) => h('tr', {},
        h('td', {class: 'id'}, h('button', {type: 'button', class: 'link', onclick: () => openItem(c, ctx).catch((e) => toast(e.message, 'error'))}, c.content_id)),
        h('td', {}, c.channel), h('td', {}, `v${c.version}`), h('td', {}, status(c.status)), h('td', {}, when(c.updated_at))))));
  };
  ctx.root.append(h('form', {class: 'filters', role: 'search', 'aria-label': 'Filter content', onsubmit: (e) => { e.preventDefault(); refresh().catch((err) => toast(err.message, 'error')); }},
    field('Job id (/)', jobId), h('button', {type: 'submit'}, 'Show')), list);
  await refresh();
  return {refresh};
}

async function openItem(item, ctx) {
  const {versions} = await api(`/api/v2/content/${encodeURIComponent(item.content_id)}/versions`);
  const a = h('select', {}, versions.map((v, i) => h('option', {value: v.version, selected: i === 1}, `v${v.version}`)));
  const b = h('select', {}, versions.map((v, i) => h('option', {value: v.version, selected: i === 0}, `v${v.version}${v.current ? ' (current)' : ''}`)));
  const out = h('div', {class: 'diff'});
  const byVersion = new Map(versions.map((v) => [String(v.version), v]));
  const show = () => fill(out, diffView(text(byVersion.get(a.value)?.body), text(byVersion.get(b.value)?.body)));
  a.addEventListener('change', show);
  b.addEventListener('change', show);
  const rollback = async () => {
    const to = Number(a.value);
    if (!await confirmDialog(`Roll back to v${to}?`, `The current version is kept; v${to}'s body becomes a new version.`, 'Roll back')) return;
    await api('/api/critical/rollback', {method: 'POST', body: {content_id: item.content_id, to_version: to, republish: false}});
    toast(`Rolled back ${item.content_id} to v${to}.`);
    close();
  };
  const {close} = drawer(`Content ${item.content_id}`,
    h('p', {}, `${item.channel} · v${versions[0]?.version ?? item.version} · `, status(item.status)),
    h('table', {}, h('tbody', {}, versions.map((v) => h('tr', {}, h('td', {}, `v${v.version}`), h('td', {}, v.current ? 'current' : ''), h('td', {}, when(v.created_at || v.updated_at)))))),
    versions.length > 1 ? h('div', {class: 'row'}, field('From', a), field('To', b),
      ctx.can('admin') ? h('button', {type: 'button', onclick: () => rollback().catch((e) => toast(e.message, 'error'))}, 'Roll back to “From”') : null) : h('p', {class: 'muted'}, 'Only one version.'),
    out);
  if (versions.length > 1) show();
}

function text(body) {
  if (!body) return '';
  const copy = {...body};
  delete copy.html;  // the rendered HTML repeats the text; the diff reads better without it
  return JSON.stringify(copy, null, 2);
}

/** A line diff (longest common subsequence); big inputs fall back to before/after. */
export function diffLines(before, after) {
  const x = before.split('\n');
  const y = after.split('\n');
  if (x.length * y.length > 4e6) return [...x.map((l) => ['del', l]), ...y.map((l) => ['add', l])];
  const n = x.length, m = y.length;
  const lcs = Array.from({length: n + 1}, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) {
    lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  }
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push(['same', x[i]]); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push(['del', x[i++]]);
    else out.push(['add', y[j++]]);
  }
  while (i < n) out.push(['del', x[i++]]);
  while (j < m) out.push(['add', y[j++]]);
  return out;
}

function diffView(before, after) {
  const lines = diffLines(before, after);
  const changed = lines.filter(([k]) => k !== 'same').length;
  return [h('p', {class: 'muted'}, changed ? `${changed} changed line${changed === 1 ? '' : 's'}` : 'No difference.'),
    h('pre', {class: 'text', 'aria-label': 'Differences'}, lines.map(([kind, line]) =>
      h('span', {class: kind}, `${kind === 'add' ? '+ ' : kind === 'del' ? '- ' : '  '}${line}\n`)))];
}
