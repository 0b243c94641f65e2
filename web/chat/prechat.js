// The pre-chat form: the customer's name and a phone or e-mail, as the shop set it up
// (GET /api/v1/widget/info → prechat {mode, required}):
// - mode "before": before the first message a form takes the composer's place; with
//   required=false it has a Skip button, with required=true it wants a name and a phone or
//   e-mail before the composer shows. The values wait in localStorage until the first message
//   is acknowledged (kefud keeps a profile only for a customer who wrote), then go to
//   POST /api/v1/visitor/profile.
// - mode "during": once a message is acknowledged, a card at the end of the thread offers the
//   same form (dismissable unless required); it is sent at once.
// - mode "off": no form.
// Done (sent, skipped or dismissed) is remembered per customer (visitor id or signed user), so
// the form is not offered again. A signed identity's name and e-mail are vouched for by the
// shop: the form does not ask for them, and they are recorded on the contact after the first
// acknowledged message whatever the mode (kefud takes the shop's word over the form's).
import { h, store } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { visitorPost } from './api.js';

const DEFAULT = { mode: 'during', required: false };
const MODES = ['off', 'before', 'during'];
const SAVED_NOTE_MS = 5000;

/** The shop's setting from widget/info, the default where it is missing or unknown. */
export function prechatConfig(info) {
  const p = info?.prechat;
  if (!p || !MODES.includes(p.mode)) return { ...DEFAULT };
  return { mode: p.mode, required: Boolean(p.required) };
}

const PHONE = /^[0-9 +\-().]{1,40}$/;

/**
 * What is wrong with the form's values, as i18n keys by field (name, phone, email, contact
 * for "a phone or an e-mail"); empty when they can be sent. Mirrors kefud's own checks, which
 * still have the last word. `vouched` holds the signed identity's name and e-mail.
 */
export function checkProfile(values, { required = false, vouched = {} } = {}) {
  const name = (values.name || '').trim();
  const phone = (values.phone || '').trim();
  const email = (values.email || '').trim();
  const errors = {};
  if ([...name].length > 100 || /\p{Cc}/u.test(name)) errors.name = 'chat.prechat.bad_name';
  if (phone && !(PHONE.test(phone) && /\d/.test(phone))) errors.phone = 'chat.prechat.bad_phone';
  if (email && !(email.length <= 200 && /^[^\s@]+@[^\s@]*\.[^\s@]*$/.test(email) && !/\p{Cc}/u.test(email))) {
    errors.email = 'chat.prechat.bad_email';
  }
  if (required) {
    if (!name && !vouched.name) errors.name = 'chat.prechat.need_name';
    if (!phone && !email && !vouched.email) errors.contact = 'chat.prechat.need_contact';
  }
  return errors;
}

/**
 * ctx: { log, composer, input, credentials(), scope(), identity(), notice(text) } from the
 * chat page. Answers the hooks the page calls: configure(info), settled(hasHistory), acked(),
 * reset(), stop().
 */
export function createPrechat(ctx) {
  let cfg = { ...DEFAULT };
  let history = null;     // after the connection settled: whether the customer has a thread
  let before = null;      // the form in the composer's place
  let card = null;        // the form in the thread
  let sending = false;
  let stopped = false;
  let wrote = false;      // a message was acknowledged on this page (e.g. a left message)

  const stateKey = () => `kefud.prechat.${ctx.scope()}`;
  const signedKey = () => `kefud.prechat.signed.${ctx.scope()}`;
  const state = () => (ctx.scope() ? store.get(stateKey()) : null);
  const vouched = () => ({ name: ctx.identity()?.name || '', email: ctx.identity()?.email || '' });
  const wanted = () => ({ name: !vouched().name, phone: true, email: !vouched().email });
  // With the shop vouching for the name and the e-mail, there is nothing worth a form.
  const needed = () => cfg.mode !== 'off' && (wanted().name || wanted().email);

  function configure(info) {
    cfg = prechatConfig(info);
    if (!needed()) removeBefore();
    maybeBefore();
  }

  function settled(hasHistory) {
    history = hasHistory;
    maybeBefore();
  }

  function maybeBefore() {
    if (stopped || before || history !== false || cfg.mode !== 'before' || !needed() || state()) return;
    before = form('before', async (values) => {
      store.set(stateKey(), { state: 'pending', values });
      removeBefore();
      ctx.input.focus();
      // Already written (the leave-a-message form): no ack to wait for.
      if (wrote) acked();
    }, cfg.required ? null : () => {
      store.set(stateKey(), { state: 'done' });
      removeBefore();
      ctx.input.focus();
    });
    before.classList.add('prechat-before');
    ctx.composer.before(before);
    ctx.composer.hidden = true;
    before.querySelector('input')?.focus();
  }

  function removeBefore() {
    if (!before) return;
    before.remove();
    before = null;
    ctx.composer.hidden = false;
  }

  async function acked() {
    wrote = true;
    if (stopped || sending || !ctx.scope()) return;
    const st = state();
    if (st?.state === 'pending') {
      await send(st.values, null);
      return;
    }
    const id = ctx.identity();
    if (id && store.get(signedKey()) !== `${id.name}\n${id.email}`) await send({}, null);
    if (!state() && needed() && !card && !before) showCard();
  }

  function showCard() {
    card = h('li', { class: 'card prechat-card' });
    const f = form('during', (values) => send(values, f), cfg.required ? null : () => {
      store.set(stateKey(), { state: 'done' });
      dropCard();
    });
    card.append(f);
    ctx.log.append(card);
    ctx.log.scrollTop = ctx.log.scrollHeight;
  }

  function dropCard() {
    card?.remove();
    card = null;
  }

  /** Sends the values; the form they came from (null for the "before" form's) shows errors. */
  async function send(values, from) {
    const empty = !values.name && !values.phone && !values.email;
    sending = true;
    from?.setBusy(true);
    let res;
    try {
      res = await visitorPost('/visitor/profile', ctx.credentials(), values);
    } catch {
      res = null;
    } finally {
      sending = false;
      from?.setBusy(false);
    }
    if (res?.status === 200) {
      const id = ctx.identity();
      if (id) store.set(signedKey(), `${id.name}\n${id.email}`);
      if (empty) return;
      store.set(stateKey(), { state: 'done' });
      if (from) {
        from.replaceChildren(h('p', { class: 'prechat-saved', role: 'status', text: t('chat.prechat.saved') }));
        const shown = card;
        setTimeout(() => { if (card === shown) dropCard(); }, SAVED_NOTE_MS);
      }
      return;
    }
    if (empty) return;
    // 404: kefud has no contact yet (no message acknowledged): kept for the next ack.
    if (res?.status === 404 && !from) return;
    const message = res?.body?.message || t('chat.prechat.unavailable');
    if (res?.status === 400) {
      // Refused as given: the form comes back, filled in, with kefud's reason.
      store.set(stateKey(), null);
      if (!from) {
        if (!card) showCard();
        card.querySelector('form').fill(values);
      }
      (from || card.querySelector('form')).fail(t('chat.prechat.failed', { message }));
    } else if (from) {
      from.fail(t('chat.prechat.failed', { message }));
    }
  }

  /** The form; onSubmit(values) once they pass the checks, onSkip null when required. */
  function form(variant, onSubmit, onSkip) {
    const id = (name) => `prechat-${variant}-${name}`;
    const want = wanted();
    const required = cfg.required;
    const field = (name, type, autocomplete) => want[name] && h('label', { class: 'field' },
      h('span', null, t(`chat.prechat.${name}`),
        required ? null : h('span', { class: 'muted', text: ` ${t('chat.prechat.optional')}` })),
      h('input', {
        class: 'input', id: id(name), name, type, autocomplete, maxlength: name === 'email' ? 200 : name === 'phone' ? 40 : 100,
        'aria-required': required && name === 'name' ? 'true' : null,
        'aria-describedby': id(`${name}-error`),
      }),
      h('p', { class: 'error', id: id(`${name}-error`) }));
    // In the thread, an optional form starts folded: a line and two buttons, not three fields
    // pushing the conversation up.
    const folded = variant === 'during' && !required;
    const fields = h('div', { class: 'prechat-fields', hidden: folded },
      field('name', 'text', 'name'),
      field('phone', 'tel', 'tel'),
      field('email', 'email', 'email'),
      h('p', { class: 'error', id: id('contact-error') }));
    const submit = h('button', {
      type: 'submit', class: 'btn primary', hidden: folded, text: t(variant === 'before' ? 'chat.prechat.start' : 'chat.prechat.save'),
    });
    const unfold = folded && h('button', {
      type: 'button', class: 'btn primary', text: t('chat.prechat.open'), onclick: () => reveal(true),
    });
    const el = h('form', { class: 'prechat', novalidate: true, 'aria-labelledby': id('title') },
      h('h2', { id: id('title'), text: t('chat.prechat.title') }),
      h('p', { class: 'muted small', text: t(required ? 'chat.prechat.intro_required' : 'chat.prechat.intro') }),
      fields,
      h('p', { class: 'error', id: id('error'), role: 'alert' }),
      h('div', { class: 'prechat-actions' },
        onSkip && h('button', { type: 'button', class: 'btn ghost', text: t(variant === 'before' ? 'chat.prechat.skip' : 'chat.prechat.dismiss'), onclick: onSkip }),
        unfold, submit));
    const input = (name) => el.querySelector(`#${id(name)}`);
    function reveal(focus) {
      if (!fields.hidden) return;
      fields.hidden = false;
      submit.hidden = false;
      if (unfold) unfold.remove();
      if (focus) el.querySelector('.prechat-fields input')?.focus();
      ctx.log.scrollTop = ctx.log.scrollHeight;
    }
    const values = () => Object.fromEntries(['name', 'phone', 'email']
      .filter((n) => want[n]).map((n) => [n, input(n).value.trim()]));

    el.fill = (v) => {
      reveal(false);
      for (const n of ['name', 'phone', 'email']) if (want[n] && v[n] != null) input(n).value = v[n];
    };
    el.fail = (message) => {
      el.querySelector(`#${id('error')}`).textContent = message;
    };
    el.setBusy = (busy) => {
      for (const b of el.querySelectorAll('button')) b.disabled = busy;
    };
    el.addEventListener('submit', (e) => {
      e.preventDefault();
      const v = values();
      const errors = checkProfile(v, { required, vouched: vouched() });
      for (const n of ['name', 'phone', 'email', 'contact']) {
        const msg = el.querySelector(`#${id(`${n}-error`)}`);
        if (msg) msg.textContent = errors[n] ? t(errors[n]) : '';
        const box = n === 'contact' ? null : input(n);
        if (box) box.setAttribute('aria-invalid', String(Boolean(errors[n] || (n !== 'name' && errors.contact))));
      }
      for (const n of ['phone', 'email']) {
        if (input(n)) input(n).setAttribute('aria-describedby', `${id(`${n}-error`)} ${id('contact-error')}`);
      }
      el.fail('');
      const first = Object.keys(errors)[0];
      if (first) {
        (input(first === 'contact' ? (want.phone ? 'phone' : 'email') : first))?.focus();
        return;
      }
      if (!required && !v.name && !v.phone && !v.email) {
        if (onSkip) onSkip();
        return;
      }
      onSubmit(v);
    });
    return el;
  }

  /** Another customer (a new signed identity): everything starts over for them. */
  function reset() {
    removeBefore();
    dropCard();
    history = null;
    wrote = false;
    stopped = false;
  }

  /** The chat cannot be used (kefud refused the identity): no form either. */
  function stop() {
    stopped = true;
    removeBefore();
    dropCard();
  }

  return { configure, settled, acked, reset, stop };
}
