// The shell: sign-in, navigation, the router (pages live in the URL fragment, their filters
// in its query so a view can be shared) and the live connection's state.

import {api, key, onUnauthorized} from './api.js';
import {fill, h, toast} from './dom.js';
import {Live} from './live.js';
import {PAGES, allows} from './pages/registry.js';

const $ = (id) => document.getElementById(id);
const live = new Live((state) => { const el = $('conn'); el.dataset.state = state; el.textContent = state; });
let me = null;
let current = null;  // {page, view}

function parseRoute() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [id, qs = ''] = hash.split('?');
  return {id: id || 'dashboard', query: new URLSearchParams(qs)};
}

/** Sign-in links carry the key in the fragment (#key=…), which no server ever sees. */
function takeKeyFromFragment() {
  const match = location.hash.match(/^#key=([^&]+)/);
  if (!match) return;
  key.set(decodeURIComponent(match[1]));
  history.replaceState(null, '', `${location.pathname}#/dashboard`);
}

function showSignIn(message) {
  unmount();
  live.close();
  me = null;
  $('page').replaceChildren();
  $('nav-list').replaceChildren();
  $('who').hidden = true;
  $('sign-out').hidden = true;
  $('signin').hidden = false;
  const error = $('signin-error');
  error.hidden = !message;
  error.textContent = message || '';
  $('signin-key').focus();
  document.documentElement.dataset.ready = 'signin';
}

async function signIn() {
  try {
    me = await api('/api/auth/whoami');
  } catch (err) {
    showSignIn(err.status === 401 ? `That key was refused: ${err.message}` : `The server did not answer: ${err.message}`);
    return;
  }
  $('signin').hidden = true;
  $('who').hidden = false;
  $('who').textContent = `${me.name} · ${me.role}`;
  $('sign-out').hidden = false;
  document.documentElement.dataset.role = me.role;
  renderNav();
  await route();
}

function visiblePages() {
  return PAGES.filter((p) => p.enabled && allows(me.role, p.role));
}

function renderNav() {
  fill($('nav-list'), visiblePages().map((p) => h('li', {}, h('a', {href: `#/${p.id}`, dataset: {page: p.id}}, p.title))));
}

function unmount() {
  document.querySelectorAll('aside.drawer').forEach((d) => d.remove());
  current?.view?.unmount?.();
  current = null;
}

async function route() {
  if (!me) return;
  const {id, query} = parseRoute();
  const page = visiblePages().find((p) => p.id === id) || visiblePages()[0];
  if (current?.page === page) { current.view?.query?.(query); return; }
  unmount();
  const mine = current = {page, view: null};
  document.documentElement.dataset.ready = '';
  for (const a of document.querySelectorAll('#nav-list a')) {
    if (a.dataset.page === page.id) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  document.title = `${page.title} · Toombos Edge`;
  const root = h('section', {class: 'page', 'aria-labelledby': 'page-title'}, h('h1', {id: 'page-title'}, page.title));
  fill($('page'), root);
  const module = await page.load();
  if (current !== mine) return;
  const ctx = {root, role: me.role, query, can: (need) => allows(me.role, need), setQuery, live};
  mine.view = await module.mount(ctx);
  if (current !== mine) { mine.view?.unmount?.(); return; }
  if (page.socket) {
    live.open(page.socket, {message: (msg) => mine.view?.event?.(msg), caughtUp: () => mine.view?.refresh?.()});
  } else {
    live.close();
  }
  document.documentElement.dataset.ready = page.id;
  if (!performance.getEntriesByName('edge-ready').length) performance.mark('edge-ready');
}

/** Keep a page's filters in the URL (replaceState: filtering is not navigation). */
function setQuery(params) {
  const {id} = parseRoute();
  const qs = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== '' && v != null)).toString();
  history.replaceState(null, '', `${location.pathname}#/${id}${qs ? `?${qs}` : ''}`);
}

function keyboard(e) {
  const typing = e.target.closest?.('input, textarea, select, [contenteditable]');
  if (e.key === '/' && !typing) {
    const search = document.querySelector('#page [data-search]');
    if (search) { e.preventDefault(); search.focus(); }
  } else if (e.key === 'Escape') {
    const open = document.querySelector('aside.drawer');
    if (open) open.querySelector('.drawer-head button').click();
  }
}

function boot() {
  takeKeyFromFragment();
  onUnauthorized((message) => { key.clear(); showSignIn(`Signed out: ${message}`); });
  $('signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const value = $('signin-key').value.trim();
    if (!value) return;
    key.set(value);
    $('signin-key').value = '';
    signIn();
  });
  $('sign-out').addEventListener('click', () => { key.clear(); showSignIn('Signed out.'); });
  $('menu-toggle').addEventListener('click', (e) => {
    const open = document.body.classList.toggle('nav-open');
    e.currentTarget.setAttribute('aria-expanded', String(open));
  });
  $('nav').addEventListener('click', (e) => { if (e.target.closest('a')) document.body.classList.remove('nav-open'); });
  window.addEventListener('hashchange', () => { takeKeyFromFragment(); route().catch(report); });
  document.addEventListener('keydown', keyboard);
  if (key.get()) signIn().catch(report); else showSignIn();
}

function report(err) {
  if (err?.status === 401) return;
  toast(err?.message || String(err), 'error');
}

window.addEventListener('unhandledrejection', (e) => { report(e.reason); e.preventDefault(); });
boot();
