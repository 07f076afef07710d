// Analytics: 24h / 7d / 30d charts of jobs by status, and latency percentiles.
// Reads GET /api/v2/analytics and /api/v2/analytics/jobs (the client contract's shapes).
// The chart library (uPlot, vendored) loads only on this page.

import {api} from '../api.js';
import {fill, h, num, pct, table} from '../dom.js';

const RANGES = {'24h': [1, 'hour'], '7d': [7, 'hour'], '30d': [30, 'day']};
const STATUSES = ['completed', 'failed', 'partial', 'cancelled', 'pending', 'in_progress'];
const COLORS = ['#16a34a', '#dc2626', '#d97706', '#6b7280', '#2563eb', '#7c3aed'];
let uplot = null;

function loadUplot() {
  if (uplot) return uplot;
  const base = new URL('../../vendor/uplot-1.6.32/', import.meta.url);
  document.head.append(h('link', {rel: 'stylesheet', href: new URL('uPlot.min.css', base).href}));
  uplot = new Promise((resolve, reject) => {
    const s = h('script', {src: new URL('uPlot.iife.min.js', base).href});
    s.addEventListener('load', () => resolve(window.uPlot));
    s.addEventListener('error', () => reject(new Error('the chart library did not load')));
    document.head.append(s);
  });
  return uplot;
}

export async function mount(ctx) {
  let range = RANGES[ctx.query.get('range')] ? ctx.query.get('range') : '24h';
  const buttons = Object.keys(RANGES).map((r) => h('button', {type: 'button', 'aria-pressed': String(r === range), onclick: () => { range = r; refresh(); }}, r));
  const tiles = h('div', {class: 'tiles'});
  const chart = h('div', {class: 'chart', role: 'img', 'aria-label': 'Jobs over time by status'});
  const channels = h('div', {});
  ctx.root.append(h('div', {class: 'row', role: 'group', 'aria-label': 'Range'}, buttons), tiles, h('h2', {}, 'Jobs over time'), chart, h('h2', {}, 'Channels'), channels);
  let plot = null;
  const refresh = async () => {
    ctx.setQuery({range});
    buttons.forEach((b) => b.setAttribute('aria-pressed', String(b.textContent === range)));
    const [days, granularity] = RANGES[range];
    const end = new Date();
    const start = new Date(end.getTime() - days * 86400000);
    const query = {start_date: start.toISOString(), end_date: end.toISOString(), granularity};
    const [overview, jobs, UPlot] = await Promise.all([api('/api/v2/analytics', {query}), api('/api/v2/analytics/jobs', {query}), loadUplot()]);
    const perf = overview.performance_metrics || {};
    fill(tiles, ...[['jobs', num(jobs.total_jobs)], ['success rate', pct(jobs.success_rate)], ['avg', `${num(perf.avg_response_time_ms, 1)} ms`],
      ['p95', `${num(perf.p95_response_time_ms, 1)} ms`], ['p99', `${num(perf.p99_response_time_ms, 1)} ms`], ['error rate', pct(perf.error_rate)]]
      .map(([l, v]) => h('div', {class: 'tile'}, h('div', {class: 'label'}, l), h('div', {class: 'value'}, v))));
    const data = series(jobs.jobs_over_time || []);
    plot?.destroy();
    chart.replaceChildren();
    plot = new UPlot({width: Math.max(280, chart.clientWidth), height: 240,
      series: [{}, ...STATUSES.map((s, i) => ({label: s, stroke: COLORS[i], width: 2}))]}, data, chart);
    fill(channels, table(['Channel', 'Jobs', 'Success rate', 'Avg seconds'], Object.entries(overview.channel_performance || {}).map(([c, v]) =>
      h('tr', {}, h('td', {}, c), h('td', {}, num(v.total_jobs)), h('td', {}, pct(v.success_rate)), h('td', {}, num(v.avg_processing_time_seconds, 2))))));
  };
  await refresh();
  return {refresh, unmount: () => plot?.destroy()};
}

/** [{timestamp, count, status?}] → uPlot's columns: times, then one count column per status. */
function series(points) {
  const times = [...new Set(points.map((p) => Date.parse(p.timestamp) / 1000))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const columns = STATUSES.map(() => times.map(() => 0));
  for (const p of points) {
    const col = STATUSES.indexOf(p.status || 'completed');
    if (col >= 0) columns[col][index.get(Date.parse(p.timestamp) / 1000)] += p.count;
  }
  return [times, ...columns];
}
