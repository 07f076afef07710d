// Generate: a form with a live preview (GET /api/v1/preview), then the job, watched live.

import {api} from '../api.js';
import {field, fill, h, status, toast} from '../dom.js';
import {watch} from './documents.js';

const CHANNELS = ['email', 'website', 'social_twitter', 'social_linkedin', 'social_facebook'];
const PREVIEW_DELAY_MS = 400;  // typing settles before one preview request

export async function mount(ctx) {
  const docs = await api('/api/documents', {query: {limit: 100}});
  const doc = h('select', {name: 'document_id'}, h('option', {value: ''}, '(inline text below)'),
    docs.documents.map((d) => h('option', {value: d.id, selected: ctx.query.get('document_id') === d.id}, `${d.title || d.id}`)));
  const title = h('input', {name: 'title', autocomplete: 'off'});
  const text = h('textarea', {name: 'text'});
  const style = h('select', {name: 'template_style'}, ['modern', 'classic', 'minimal'].map((s) => h('option', {value: s}, s)));
  const boxes = CHANNELS.map((c) => h('input', {type: 'checkbox', name: 'channels', value: c, checked: c === 'email' || c === 'website'}));
  const channelSet = h('fieldset', {class: 'row'}, h('legend', {}, 'Channels'),
    CHANNELS.map((c, i) => h('label', {}, boxes[i], ` ${c}`)));
  const preview = h('div', {'aria-live': 'polite'}, h('p', {class: 'muted'}, 'Pick a document or type a text to see a preview.'));
  const jobBox = h('div', {'aria-live': 'polite'});
  const body = () => ({
    document_id: doc.value || undefined, title: doc.value ? undefined : title.value || undefined,
    text: doc.value ? undefined : text.value || undefined, template_style: style.value,
    channels: boxes.filter((b) => b.checked).map((b) => b.value),
  });
  let timer = 0;
  let asked = 0;
  const showPreview = async () => {
    const b = body();
    if (!b.channels.length || (!b.document_id && !b.text)) return;
    const mine = ++asked;
    const p = await api('/api/v1/preview', {query: {...b, channels: b.channels.join(',')}});
    if (mine !== asked) return;  // a newer preview is on its way
    fill(preview, ...Object.entries(p.previews || {}).map(([channel, v]) => h('div', {class: 'card'},
      h('h3', {}, channel), v.subject ? h('p', {}, h('strong', {}, v.subject)) : null,
      h('pre', {class: 'text'}, v.text || (v.posts || []).map((x) => x.text || x).join('\n\n') || JSON.stringify(v, null, 2)))));
  };
  const schedule = () => { clearTimeout(timer); timer = setTimeout(() => showPreview().catch((e) => toast(e.message, 'error')), PREVIEW_DELAY_MS); };
  for (const el of [doc, title, text, style, ...boxes]) el.addEventListener(el.tagName === 'TEXTAREA' || el.type === 'text' ? 'input' : 'change', schedule);
  title.addEventListener('input', schedule);
  const submit = async (e) => {
    e.preventDefault();
    const job = await api('/api/v2/content/generate', {method: 'POST', body: body()});
    fill(jobBox, h('p', {}, 'Job ', h('a', {href: `#/jobs?q=${job.job_id}`}, job.job_id), ' ', status(job.status)));
    const ended = await watch(job.job_id);
    fill(jobBox, h('p', {}, 'Job ', h('a', {href: `#/jobs?q=${job.job_id}`}, job.job_id), ' ', status(ended.status)),
      h('p', {}, h('a', {href: `#/content?job_id=${job.job_id}`}, 'See the content it made')));
  };
  ctx.root.append(h('div', {class: 'grid2'},
    h('form', {class: 'card', onsubmit: (e) => submit(e).catch((err) => toast(err.message, 'error'))},
      field('Document', doc), field('Title', title), field('Text', text), field('Style', style), channelSet,
      h('div', {class: 'row'}, h('button', {type: 'submit'}, 'Generate')), jobBox),
    h('div', {}, h('h2', {}, 'Preview'), preview)));
  if (doc.value) await showPreview();
  return {unmount: () => clearTimeout(timer)};
}
