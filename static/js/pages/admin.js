// Admin: API keys (a new key's secret shown once), open connections, queue pause/resume,
// and restart (when the server has it: FEATURES.restart).

import {api} from '../api.js';
import {append, confirmDialog, field, fill, h, num, status, table, toast, when} from '../dom.js';
import {FEATURES} from './registry.js';

export async function mount(ctx) {
  const keysBox = h('div', {});
  const connBox = h('div', {});
  const queueBox = h('div', {class: 'row'});
  const secretBox = h('div', {'aria-live': 'polite'});
  const refresh = async () => {
    const [keys, conns, critical] = await Promise.all([api('/admin/keys'), api('/admin/connections', {query: {limit: 50}}), api('/api/critical/status')]);
    drawKeys(keysBox, keys.keys, refresh);
    fill(connBox, h('p', {class: 'muted'}, `${num(conns.total)} open · ${num(conns.accepted)} accepted · ${num(conns.closed)} closed · limit ${conns.limit_per_ip} per IP`),
      table(['Connection', 'Endpoint', 'IP', 'Key', 'Since'], conns.connections.map((c) => h('tr', {},
        h('td', {class: 'id'}, c.id), h('td', {}, c.endpoint), h('td', {}, c.ip || c.peer?.ip || ''),
        h('td', {class: 'id'}, c.key_id || '—'), h('td', {}, when(c.opened_at || c.since))))));
    const paused = critical.queue.paused;
    fill(queueBox, h('span', {}, 'Queue ', status(paused ? 'paused' : 'running'), ` · ${num(critical.queue.running)} running, ${num(critical.queue.queue_depth)} waiting`),
      h('button', {type: 'button', onclick: () => queue(paused ? 'resume' : 'pause').catch((e) => toast(e.message, 'error'))}, paused ? 'Resume' : 'Pause'));
  };
  const queue = async (verb) => {
    await api(`/admin/queue/${verb}`, {method: 'POST'});
    toast(verb === 'pause' ? 'Queue paused.' : 'Queue resumed.');
    await refresh();
  };
  const name = h('input', {name: 'name', required: true, autocomplete: 'off'});
  const role = h('select', {name: 'role'}, ['viewer', 'operator', 'admin'].map((r) => h('option', {value: r}, r)));
  const create = async (e) => {
    e.preventDefault();
    const made = await api('/admin/keys', {method: 'POST', body: {name: name.value.trim(), role: role.value}});
    name.value = '';
    fill(secretBox, h('div', {class: 'card'}, h('p', {}, `Key ${made.id} (${made.role}) created. Copy its secret now: it is not shown again.`),
      h('p', {class: 'secret'}, made.secret)));
    await refresh();
  };
  append(ctx.root, [h('h2', {}, 'Queue'), queueBox,
    FEATURES.restart ? h('div', {class: 'row'}, h('button', {type: 'button', class: 'danger', onclick: () => restart().catch((e) => toast(e.message, 'error'))}, 'Restart server')) : null,
    h('h2', {}, 'API keys'),
    h('form', {class: 'filters', onsubmit: (e) => create(e).catch((err) => toast(err.message, 'error'))}, field('Name', name), field('Role', role), h('button', {type: 'submit'}, 'Create key')),
    secretBox, keysBox, h('h2', {}, 'Connections'), connBox]);
  await refresh();
  return {refresh, event: (msg) => { if (msg.type === 'ws_connection') return; }};
}

function drawKeys(box, keys, refresh) {
  const revoke = async (key) => {
    if (!await confirmDialog(`Revoke ${key.name}?`, `Key ${key.id} stops working at once; its sockets close.`, 'Revoke')) return;
    await api(`/admin/keys/${encodeURIComponent(key.id)}`, {method: 'DELETE'});
    toast(`Revoked ${key.id}.`);
    await refresh();
  };
  fill(box, table(['Key', 'Name', 'Role', 'Created', 'Last used', 'State', ''], keys.map((k) => h('tr', {},
    h('td', {class: 'id'}, k.id), h('td', {}, k.name), h('td', {}, k.role), h('td', {}, when(k.created_at)),
    h('td', {}, when(k.last_used_at)), h('td', {}, k.revoked_at ? `revoked ${when(k.revoked_at)}` : 'active'),
    h('td', {}, k.revoked_at ? '' : h('button', {type: 'button', class: 'danger', onclick: () => revoke(k).catch((e) => toast(e.message, 'error'))}, 'Revoke'))))));
}

async function restart() {
  if (!await confirmDialog('Restart the server?', 'Running jobs are requeued; this page reconnects by itself.', 'Restart')) return;
  await api('/admin/restart', {method: 'POST'});
  toast('Restarting; the connection comes back by itself.');
}
