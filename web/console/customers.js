// Admin → Customers: how the widget learns who its customers are. The pre-chat form's setting
// (GET|PUT /settings/prechat: off, before the first message, or once the customer wrote;
// required or not) and the identity secret a shop's website signs its logged-in customers with
// (GET /settings/identity-secret, POST for a new one, which makes every older signature
// invalid: asked twice). The page's texts are the feature's help; README "Customers with
// names" has the website's side in full.
import { h } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { api, errText } from './api.js';
import { toast } from './state.js';

const MODES = ['off', 'before', 'during'];

export async function customers(body) {
  const [prechat, { secret }] = await Promise.all([api('/settings/prechat'), api('/settings/identity-secret')]);
  body.replaceChildren(prechatForm(prechat), ...identityCard(secret));
}

function prechatForm(prechat) {
  const mode = h('select', { class: 'input', id: 'prechat-mode' },
    MODES.map((m) => h('option', { value: m, selected: m === prechat.mode, text: t(`customers.mode.${m}`) })));
  const required = h('input', { type: 'checkbox', id: 'prechat-required', checked: prechat.required });
  const sync = () => { required.disabled = mode.value === 'off'; };
  mode.addEventListener('change', sync);
  sync();
  const save = h('button', { type: 'submit', class: 'btn primary', text: t('common.save') });
  return h('form', {
    class: 'card form',
    onsubmit: async (e) => {
      e.preventDefault();
      save.disabled = true;
      try {
        await api('/settings/prechat', { method: 'PUT', body: { mode: mode.value, required: required.checked } });
        toast(t('common.saved'));
      } catch (err) {
        if (err.status !== 401) toast(errText(err));
      } finally {
        save.disabled = false;
      }
    },
  },
  h('h2', { text: t('customers.prechat') }),
  h('p', { class: 'muted', text: t('customers.prechat_help') }),
  h('label', { class: 'field' }, h('span', { text: t('customers.mode') }), mode),
  h('label', { class: 'check' }, required, h('span', { text: t('customers.required') })),
  h('div', { class: 'buttons' }, save));
}

function identityCard(initial) {
  let secret = initial;
  const shown = h('input', { class: 'input code', readOnly: true, id: 'identity-secret', 'aria-label': t('customers.secret') });
  const copy = h('button', {
    type: 'button', class: 'btn', text: t('channel.copy'),
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(secret);
      } catch {
        shown.select();
        document.execCommand('copy');
      }
      toast(t('channel.copied'));
    },
  });
  let armed = 0;
  const make = h('button', {
    type: 'button', class: 'btn',
    onclick: async () => {
      // Replacing a secret logs every signed customer out of the chat: a second click.
      if (secret && !armed) {
        make.textContent = t('customers.confirm_new');
        armed = setTimeout(() => { armed = 0; paint(); }, 4000);
        return;
      }
      clearTimeout(armed);
      armed = 0;
      make.disabled = true;
      try {
        secret = (await api('/settings/identity-secret', { method: 'POST' })).secret;
        toast(t('customers.secret_made'));
      } catch (err) {
        if (err.status !== 401) toast(errText(err));
      } finally {
        make.disabled = false;
        paint();
      }
    },
  });
  const none = h('p', { class: 'muted', text: t('customers.no_secret') });
  const box = h('div', { class: 'field' }, h('span', { text: t('customers.secret') }), shown);
  function paint() {
    shown.value = secret || '';
    box.hidden = !secret;
    copy.hidden = !secret;
    none.hidden = Boolean(secret);
    make.textContent = t(secret ? 'customers.new_secret' : 'customers.make_secret');
  }
  paint();
  return [h('div', { class: 'card form' },
    h('h2', { text: t('customers.identity') }),
    h('p', { class: 'muted', text: t('customers.identity_help') }),
    h('p', { class: 'code text', text: 'signature = hex(HMAC-SHA256(secret, user_id + "\\n" + name + "\\n" + email))' }),
    h('p', { class: 'muted small', text: t('customers.identity_widget') }),
    none, box,
    h('div', { class: 'buttons' }, copy, make))];
}
