// Small form helpers the admin pages share: labelled fields, inputs, checkboxes, a button
// that runs an API call (disabled meanwhile, errors as a toast), a delete that asks for a
// second click, and a form with one submit button.
import { h } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { errText } from './api.js';
import { toast } from './state.js';

export const field = (label, control, cls = '') => h('label', { class: `field ${cls}` }, h('span', { text: label }), control);
export const input = (props) => h('input', { class: 'input', ...props });
export const area = (props) => h('textarea', { class: 'input', rows: 3, ...props });
export const check = (label, checked, disabled) => {
  const box = h('input', { type: 'checkbox', checked, disabled });
  return [h('label', { class: 'check' }, box, h('span', { text: label })), box];
};

/** Runs an API call from a button: disabled while it runs, errors as a toast. */
export async function run(btn, fn, done = t('common.saved')) {
  btn.disabled = true;
  try {
    await fn();
    if (done) toast(done);
    return true;
  } catch (e) {
    if (e.status !== 401) toast(errText(e));
    return false;
  } finally {
    btn.disabled = false;
  }
}

/** A button for what cannot be undone (a delete by default) that asks for a second click
 * instead of a dialog. */
export function dangerButton(onConfirm, label = t('common.delete'), confirmLabel = t('common.confirm_delete'),
  done = t('common.deleted')) {
  let armed = 0;
  const btn = h('button', {
    type: 'button', class: 'btn danger', text: label,
    onclick: () => {
      if (armed) {
        clearTimeout(armed);
        armed = 0;
        btn.textContent = label;
        run(btn, onConfirm, done);
        return;
      }
      btn.textContent = confirmLabel;
      armed = setTimeout(() => { armed = 0; btn.textContent = label; }, 4000);
    },
  });
  return btn;
}

export function submitForm(children, label, onSubmit, cls = 'card form') {
  const btn = h('button', { type: 'submit', class: 'btn primary', text: label });
  const form = h('form', {
    class: cls,
    onsubmit: async (e) => {
      e.preventDefault();
      await onSubmit(btn, form);
    },
  }, children, h('div', { class: 'buttons' }, btn));
  return form;
}
