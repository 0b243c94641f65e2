// Labels in the console: a label's chip (its colour set through the CSSOM, which the page's
// CSP allows, never an inline style attribute), a conversation's chips, and the editor in the
// thread's header (a checkbox per label; each change is saved at once and journaled).
import { h } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { api, errText } from './api.js';
import { state, toast, applyLabels } from './state.js';

/** The chip of one label. */
export function labelChip(label) {
  const chip = h('span', { class: 'label-chip', text: label.name, title: label.name });
  chip.style.setProperty('--label', label.color);
  return chip;
}

/** The chips of a conversation's labels (those still defined), or null when it has none. */
export function labelChips(c) {
  const known = (c.labels ?? []).map((id) => state.labels.get(id)).filter(Boolean);
  return known.length ? h('span', { class: 'label-chips' }, known.map(labelChip)) : null;
}

/** The thread header's labels button and its panel of checkboxes. */
export function labelEditor(c) {
  if (!state.labels.size) return null;
  const panel = h('div', { class: 'label-panel card', hidden: true, role: 'group', 'aria-label': t('labels.edit') });
  const toggle = h('button', {
    type: 'button', class: 'btn', 'aria-expanded': 'false', 'data-action': 'labels',
    onclick: () => {
      panel.hidden = !panel.hidden;
      toggle.setAttribute('aria-expanded', String(!panel.hidden));
      if (!panel.hidden) draw();
    },
  }, t('labels.button'));
  const draw = () => {
    const on = new Set(c.labels ?? []);
    panel.replaceChildren(...[...state.labels.values()].map((l) => h('label', { class: 'label-option' },
      h('input', {
        type: 'checkbox', checked: on.has(l.id), value: String(l.id),
        onchange: (e) => save(e.target),
      }),
      labelChip(l))));
  };
  const save = async (box) => {
    const ids = [...panel.querySelectorAll('input:checked')].map((i) => Number(i.value));
    panel.setAttribute('aria-busy', 'true');
    try {
      const r = await api(`/conversations/${c.id}/labels`, { method: 'PUT', body: { labels: ids } });
      applyLabels({ conversation_id: c.id, labels: r.labels });
    } catch (e) {
      box.checked = !box.checked;
      toast(errText(e));
    } finally {
      panel.removeAttribute('aria-busy');
    }
  };
  return h('span', { class: 'label-editor' }, toggle, panel);
}
