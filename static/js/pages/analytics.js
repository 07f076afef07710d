// Analytics: 24h / 7d / 30d of jobs (created over time, by status, by channel), and request
// latency percentiles. One read of GET /api/v2/analytics, whose job_analytics is the same
// answer as /api/v2/analytics/jobs. Rates come as percents (0..100). The chart library
// (uPlot, vendored) loads only on this page.

import {api} from '../api.js';
import {fill, h, num, pct, status, table} from '../dom.js';

const RANGES = {'24h': [1, 'hour'], '7d': [7, 'hour'], '30d': [30, 'day']};
const STATUSES = ['pending', 'in_progress', 'completed', 'partial', 'failed', 'cancelled'];
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
  const chart = h('div', {class: 'chart', role: 'img', 'aria-label': 'Jobs created over time'});
  const channels = h('div', {});
  const byStatus = h('div', {});
  const created = h('p', {class: 'muted'});
  ctx.root.append(h('div', {class: 'row', role: 'group', 'aria-label': 'Range'}, buttons), tiles, created,
    h('h2', {}, 'Jobs created over time'), chart, h('div', {class: 'grid2'},
      h('div', {}, h('h2', {}, 'By status'), byStatus), h('div', {}, h('h2', {}, 'Channels'), channels)));
  let plot = null;
  const refresh = async () => {
    ctx.setQuery({range});
    buttons.forEach((b) => b.setAttribute('aria-pressed', String(b.textContent === range)));
    const [days, granularity] = RANGES[range];
    const end = new Date();
    const start = new Date(end.getTime() - days * 86400000);
    const query = {start_date: start.toISOString(), end_date: end.toISOString(), granularity};
    const [overview, UPlot] = await Promise.all([api('/api/v2/analytics', {query}), loadUplot()]);
    const jobs = overview.job_analytics;
    const perf = overview.performance_metrics;
    const percent = (v) => pct(v / 100);
    fill(tiles, ...[['jobs', num(jobs.total_jobs)], ['success rate', percent(jobs.success_rate)],
      ['avg run', `${num(jobs.avg_processing_time_seconds, 2)} s`], ['request avg', `${num(perf.avg_response_time_ms, 1)} ms`],
      ['p95', `${num(perf.p95_response_time_ms, 1)} ms`], ['p99', `${num(perf.p99_response_time_ms, 1)} ms`], ['error rate', percent(perf.error_rate)]]
      .map(([l, v]) => h('div', {class: 'tile'}, h('div', {class: 'label'}, l), h('div', {class: 'value'}, v))));
    const points = jobs.jobs_over_time;
    plot?.destroy();
    chart.replaceChildren();
    plot = new UPlot({width: Math.max(280, chart.clientWidth), height: 240, series: [{}, {label: 'jobs created', stroke: '#2563eb', width: 2}]},
      [points.map((p) => Date.parse(p.timestamp) / 1000), points.map((p) => p.count)], chart);
    fill(byStatus, table(['Status', 'Jobs'], STATUSES.map((s) => h('tr', {}, h('td', {}, status(s)), h('td', {}, num(jobs.jobs_by_status[s] ?? 0))))));
    fill(channels, table(['Channel', 'Jobs', 'Success rate', 'Avg seconds'], Object.entries(overview.channel_performance).map(([c, v]) =>
      h('tr', {}, h('td', {}, c), h('td', {}, num(v.total_jobs)), h('td', {}, percent(v.success_rate)), h('td', {}, num(v.avg_processing_time_seconds, 2))))));
    const recent = overview.recent_activity;
    fill(created, `Jobs created: ${num(recent.last_24h)} in 24 h · ${num(recent.last_7d)} in 7 days · ${num(recent.last_30d)} in 30 days`);
  };
  await refresh();
  return {refresh, unmount: () => plot?.destroy()};
}
