// One WebSocket at a time, opened with a short-lived token (never the API key), reconnected
// with capped exponential backoff and full jitter. On every reconnect the page re-reads what
// it shows, so nothing missed while offline stays missing.

import {api} from './api.js';

const BASE_MS = 500;
const CAP_MS = 15000;
const OFFLINE_AFTER = 5;  // failed tries in a row before "offline" (it keeps trying)

export class Live {
  constructor(onState) {
    this.onState = onState;
    this.socket = null;
    this.path = null;
    this.handlers = null;
    this.failures = 0;
    this.timer = null;
    this.generation = 0;
    this.state = 'offline';
    window.addEventListener('online', () => { if (this.path && this.state !== 'live') this.retryNow(); });
    window.addEventListener('offline', () => this.setState('offline'));
  }

  /** Listen to `path` (e.g. /ws/jobs); handlers: {message(msg), caughtUp()}. */
  open(path, handlers) {
    this.handlers = handlers;
    if (path === this.path && this.socket) return;
    this.close();
    this.path = path;
    this.failures = 0;
    this.connect(false);
  }

  close() {
    this.generation += 1;
    clearTimeout(this.timer);
    this.path = null;
    if (this.socket) { this.socket.onclose = null; this.socket.close(1000); this.socket = null; }
    this.setState('offline');
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onState(state);
  }

  retryNow() {
    clearTimeout(this.timer);
    this.connect(true);
  }

  async connect(again) {
    const generation = this.generation;
    if (!navigator.onLine) { this.setState('offline'); return; }  // 'online' brings it back
    this.setState(again ? 'reconnecting' : 'connecting');
    let token;
    try {
      token = (await api('/api/auth/ws-token', {method: 'POST'})).token;
    } catch (err) {
      if (err.status === 401) return;  // signed out; nothing to reconnect to
      this.scheduleRetry(generation);
      return;
    }
    if (generation !== this.generation) return;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(`${scheme}//${location.host}${this.path}?token=${encodeURIComponent(token)}`);
    this.socket = socket;
    socket.onopen = () => {
      this.failures = 0;
      this.setState('live');
      if (again) this.handlers?.caughtUp?.();
    };
    socket.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      if (msg.type === 'restarting') this.setState('reconnecting');
      this.handlers?.message?.(msg);
    };
    socket.onclose = () => {
      if (generation !== this.generation) return;
      this.socket = null;
      this.scheduleRetry(generation);
    };
  }

  scheduleRetry(generation) {
    if (generation !== this.generation) return;
    this.failures += 1;
    const offline = !navigator.onLine || this.failures > OFFLINE_AFTER;
    this.setState(offline ? 'offline' : 'reconnecting');
    const ceiling = Math.min(CAP_MS, BASE_MS * 2 ** (this.failures - 1));
    const delay = 100 + Math.random() * ceiling;  // full jitter: clients spread out
    this.timer = setTimeout(() => this.connect(true), delay);
  }
}
