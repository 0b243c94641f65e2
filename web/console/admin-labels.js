// Admin → Labels: the shop's labels (a name and a colour; add, rename, recolour, delete).
// Agents put them on conversations (labels.js); the inbox filters by them.
import { h } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { api } from './api.js';
import { loadLabels, state } from './state.js';
import { field, input, run, dangerButton, submitForm } from './forms.js';
import { labelChip } from './labels.js';

export async function labels(body) {
  await loadLabels();
  const list = [...state.labels.values()];
  const name = input({ name: 'name', maxLength: 40, required: true, placeholder: t('labels.name_hint') });
  const color = input({ name: 'color', type: 'color', value: '#2f80ed' });
  const add = submitForm([field(t('labels.name'), name), field(t('labels.color'), color)], t('labels.add'),
    (btn) => run(btn, async () => {
      await api('/labels', { method: 'POST', body: { name: name.value, color: color.value } });
      await labels(body);
    }));
  body.replaceChildren(
    h('h2', { text: t('admin.labels') }),
    h('p', { class: 'muted', text: t('labels.help') }),
    list.length
      ? h('ul', { class: 'cards label-list' }, list.map((l) => h('li', {}, labelCard(l, body))))
      : h('p', { class: 'card muted', text: t('labels.none') }),
    h('h2', { text: t('labels.add') }),
    add);
}

function labelCard(l, body) {
  const name = input({ value: l.name, maxLength: 40, required: true, 'aria-label': t('labels.name') });
  const color = input({ type: 'color', value: l.color, 'aria-label': t('labels.color') });
  const save = h('button', { type: 'button', class: 'btn primary', text: t('common.save') });
  save.onclick = () => run(save, async () => {
    await api(`/labels/${l.id}`, { method: 'PUT', body: { name: name.value, color: color.value } });
    await labels(body);
  });
  const remove = dangerButton(async () => {
    await api(`/labels/${l.id}`, { method: 'DELETE' });
    await labels(body);
  });
  return h('div', { class: 'card label-card', 'data-label': l.name },
    labelChip(l), h('div', { class: 'label-fields' }, name, color), h('div', { class: 'buttons' }, save, remove));
}
