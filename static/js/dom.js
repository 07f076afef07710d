// Building the page safely: text always goes in as text, never as HTML.

/** An element: h('button', {type: 'button', onclick: f}, 'Retry'). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (name === 'class') el.className = value;
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name in el && typeof value !== 'string') el[name] = value;
    else el.setAttribute(name, value === true ? '' : value);
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Replace everything inside el. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Text with the <mark> spans a search snippet carries, and nothing else of it as HTML. */
export function highlighted(text, open = '<mark>', close = '</mark>') {
  const frag = document.createDocumentFragment();
  let rest = String(text ?? '');
  while (rest) {
    const start = rest.indexOf(open);
    if (start < 0) { frag.append(rest); break; }
    frag.append(rest.slice(0, start));
    const end = rest.indexOf(close, start + open.length);
    const inner = rest.slice(start + open.length, end < 0 ? undefined : end);
    frag.append(h('mark', {}, inner));
    rest = end < 0 ? '' : rest.slice(end + close.length);
  }
  return frag;
}

export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

export function ago(iso) {
  if (!iso) return '—';
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return `${Math.max(s, 0)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function num(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  return Number(n).toLocaleString(undefined, {maximumFractionDigits: digits});
}

export function pct(ratio) {
  return ratio === null || ratio === undefined ? '—' : `${num(ratio * 100, 1)} %`;
}

export function json(value) {
  return h('pre', {class: 'json'}, JSON.stringify(value, null, 2));
}

export function status(s) {
  return h('span', {class: `badge s-${s}`}, String(s ?? '').replace('_', ' '));
}

export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  const el = h('div', {class: `toast ${kind}`, role: kind === 'error' ? 'alert' : undefined}, message);
  box.append(el);
  setTimeout(() => el.remove(), 6000);
}

/** A modal question; resolves true when confirmed. Esc or Cancel resolve false. */
export function confirmDialog(title, message, action = 'Confirm') {
  return new Promise((resolve) => {
    const ok = h('button', {type: 'submit', value: 'ok', class: 'danger'}, action);
    const dialog = h('dialog', {class: 'confirm', 'aria-labelledby': 'confirm-title'},
      h('form', {method: 'dialog'},
        h('h2', {id: 'confirm-title'}, title), h('p', {}, message),
        h('div', {class: 'row'}, ok, h('button', {type: 'submit', value: 'cancel'}, 'Cancel'))));
    dialog.addEventListener('close', () => { resolve(dialog.returnValue === 'ok'); dialog.remove(); });
    document.body.append(dialog);
    dialog.showModal();
    ok.focus();
  });
}

/** A labelled form field. */
export function field(label, input) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h('div', {class: 'field'}, h('label', {for: id}, label), input);
}

/** A side drawer; Esc and the close button close it and give focus back. */
export function drawer(title, ...content) {
  const back = document.activeElement;
  const close = () => { panel.remove(); back?.focus?.(); };
  const panel = h('aside', {class: 'drawer', role: 'dialog', 'aria-modal': 'false', 'aria-label': title},
    h('div', {class: 'drawer-head'}, h('h2', {}, title),
      h('button', {type: 'button', class: 'link', onclick: close, 'aria-label': 'Close'}, 'Close')),
    h('div', {class: 'drawer-body'}, ...content));
  panel.addEventListener('keydown', (e) => { if (e.key === 'Escape') { e.stopPropagation(); close(); } });
  document.querySelectorAll('aside.drawer').forEach((d) => d.remove());
  document.body.append(panel);
  panel.querySelector('button').focus();
  return {panel, close};
}

export function table(headers, rows, caption) {
  return h('div', {class: 'table-wrap'}, h('table', {},
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', {scope: 'col'}, t)))),
    h('tbody', {}, rows)));
}
