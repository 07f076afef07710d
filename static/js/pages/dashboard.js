// Dashboard: health and its checks, metric tiles (live from stats_update), recent jobs and a
// live event feed. One refresh of health and recent jobs per interval; tiles need no request.

import {api} from '../api.js';
import {ago, append, fill, h, num, pct, status, table} from '../dom.js';
import {FEATURES} from './registry.js';

export const REFRESH_MS = 30000;
const FEED_MAX = 50;

export async function mount(ctx) {
  const healthBox = h('div', {class: 'card', 'aria-live': 'polite'});
  const tiles = h('div', {class: 'tiles'});
  const metricTiles = h('div', {class: 'tiles'});
  const recent = h('div', {});
  const feed = h('ul', {class: 'feed', 'aria-label': 'Live events'});
  append(ctx.root, [
    h('h2', {}, 'Health'), healthBox,
    h('h2', {}, 'Jobs'), tiles,
    FEATURES.metrics ? [h('h2', {}, 'Requests'), metricTiles] : null,
    h('div', {class: 'grid2'},
      h('div', {}, h('h2', {}, 'Recent jobs'), recent),
      h('div', {}, h('h2', {}, 'Live events'), feed))]);

  const drawTiles = (stats) => {
    const counts = stats.counts || {};
    const since = stats.since_start || {};
    const rates = stats.rates || {};
    const ended = (since.completed || 0) + (since.failed || 0) + (since.partial || 0);
    fill(tiles, ...[
      ...['pending', 'in_progress', 'completed', 'partial', 'failed', 'cancelled'].map((s) => tile(s.replace('_', ' '), num(counts[s] ?? 0), s)),
      tile('throughput', `${num(rates.completed ?? 0, 1)}/s`),
      tile('error rate', ended ? pct((since.failed || 0) / ended) : '—'),
      tile('queue backlog', num(stats.queue_depth ?? 0)),
      tile('queue', stats.paused ? 'paused' : 'running'),
    ]);
  };
  // Health and recent jobs once per interval; the tiles come over the socket (stats_update).
  const refresh = async () => {
    const [health, jobs] = await Promise.all([
      api('/health/detailed'),
      api('/api/v2/jobs', {query: {limit: 8, fields: 'job_id,kind,status,created_at'}}),
      FEATURES.metrics ? api('/api/metrics').then((m) => drawMetrics(metricTiles, m)) : null,
    ]);
    drawHealth(healthBox, health);
    fill(recent, jobs.jobs.length ? table(['Job', 'Kind', 'Status', 'Created'], jobs.jobs.map((j) => h('tr', {},
      h('td', {class: 'id'}, h('a', {href: `#/jobs?q=${j.job_id}`}, j.job_id)), h('td', {}, j.kind),
      h('td', {}, status(j.status)), h('td', {}, ago(j.created_at))))) : h('p', {class: 'muted'}, 'No jobs yet.'));
  };
  const [critical] = await Promise.all([api('/api/critical/status'), refresh()]);
  drawTiles(critical.queue);  // until the first stats_update
  const timer = setInterval(() => refresh().catch(() => {}), REFRESH_MS);
  return {
    refresh,
    unmount: () => clearInterval(timer),
    event(msg) {
      if (msg.type === 'stats_update') { drawTiles(msg.data?.jobs || msg.data); return; }
      if (msg.type === 'connection_ack' || msg.type === 'pong') return;
      const job = msg.job;
      const what = job ? `${job.job_id} ${job.kind} → ${job.status}` : JSON.stringify(msg.data ?? {}).slice(0, 140);
      feed.prepend(h('li', {}, h('span', {class: 'muted'}, new Date(msg.timestamp || Date.now()).toLocaleTimeString()), ' ',
        h('strong', {}, msg.type), ' ', what));
      while (feed.children.length > FEED_MAX) feed.lastElementChild.remove();
    },
  };
}

function tile(label, value, state) {
  return h('div', {class: 'tile'}, h('div', {class: 'label'}, label), h('div', {class: `value${state ? ` s-${state}` : ''}`}, value));
}

function drawHealth(box, health) {
  const checks = Object.entries(health.checks || {});
  fill(box, h('p', {}, 'Server ', status(health.status), ` · version ${health.version} · up ${num(health.uptime, 0)} s`),
    table(['Check', 'Status', 'Message', 'Latency'], checks.map(([name, c]) => h('tr', {},
      h('td', {}, name), h('td', {}, status(c.status)), h('td', {}, c.message || ''), h('td', {}, `${num(c.latency_ms, 1)} ms`)))));
}

export function drawMetrics(box, m) {
  fill(box, tile('requests', num(m.requests_total)), tile('requests/s', num(m.requests_per_second, 1)),
    tile('avg response', `${num(m.avg_response_time_ms, 1)} ms`), tile('error rate', pct(m.error_rate)),
    tile('cache hit rate', pct(m.cache_hit_rate)), tile('active jobs', num(m.active_jobs)), tile('queue size', num(m.queue_size)));
}
