// Admin pages about customers: the shop's labels (name and colour; add, edit, delete) and the
// customers' side of the widget: whether and when it asks for a name and a phone or e-mail,
// and the secret a shop's website signs its logged-in customers' identities with.
import { h } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { api } from './api.js';
import { loadLabels, state } from './state.js';
import { field, input, check, run, dangerButton, submitForm } from './forms.js';
import { labelChip } from './labels.js';

// ---- labels --------------------------------------------------------------------------------

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

// ---- customers: the widget's form and signed identities -------------------------------------

export async function customers(body) {
  const [prechat, secret] = await Promise.all([
    api('/settings/prechat'),
    api('/settings/identity-secret'),
  ]);
  const mode = h('select', { class: 'input', name: 'mode' },
    ['off', 'before', 'during'].map((m) => h('option', { value: m, text: t(`prechat.${m}`), selected: m === prechat.mode })));
  const [requiredLabel, required] = check(t('prechat.required'), prechat.required, false);
  const form = submitForm([field(t('prechat.mode'), mode), requiredLabel], t('common.save'),
    (btn) => run(btn, () => api('/settings/prechat', {
      method: 'PUT', body: { mode: mode.value, required: required.checked },
    })));

  const shown = h('code', { class: 'secret', text: secret.secret ?? t('identity.none') });
  const makeSecret = async () => {
    const r = await api('/settings/identity-secret', { method: 'POST' });
    shown.textContent = r.secret;
  };
  // A new secret stops every identity the website signed with the old one: two clicks.
  const make = secret.secret
    ? dangerButton(makeSecret, t('identity.rotate'), t('identity.rotate_confirm'), t('common.saved'))
    : h('button', { type: 'button', class: 'btn', text: t('identity.make') });
  if (!secret.secret) make.onclick = () => run(make, async () => { await makeSecret(); await customers(body); });
  body.replaceChildren(
    h('h2', { text: t('prechat.title') }),
    h('p', { class: 'muted', text: t('prechat.help') }),
    form,
    h('h2', { text: t('identity.title') }),
    h('div', { class: 'card' },
      h('p', { class: 'muted', text: t('identity.help') }),
      h('p', {}, shown),
      h('pre', { class: 'snippet', text: t('identity.recipe') }),
      h('div', { class: 'buttons' }, make)));
}
