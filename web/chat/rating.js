// The rating card: once the customer's conversation is resolved (the WebSocket's "resolved"
// frame, or on (re)connect GET /api/v1/visitor/conversation says resolved or idle with no
// rating), a card at the end of the thread asks "How did we do?" with 1 to 5 stars (buttons;
// arrow keys move between them) and an optional comment, and POSTs /api/v1/visitor/rating.
// A rated or dismissed conversation is remembered (its id, in localStorage) and never asked
// about again; a new message from the customer (the conversation goes on, or a new one starts)
// takes the card away.
import { h, store } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { visitorGet, visitorPost } from './api.js';

const KEY = 'kefud.chat.rated';
const REMEMBERED = 50;
const MAX_COMMENT = 1000;
const THANKS_MS = 6000;

/**
 * Whether kefud's answer about the newest conversation calls for the card. `resolved` is the
 * conversation a "resolved" frame named: kefud sends that frame as it decides, so its own
 * answer may still show the conversation open for a moment; the frame is believed then.
 */
export function wantsRating(conv, asked, resolved = null) {
  if (!conv) return false;
  const id = conv.conversation_id;
  if (asked.includes(id)) return false;
  if (['resolved', 'idle'].includes(conv.status)) return conv.rating == null;
  return id === resolved;
}

/**
 * ctx: { log, credentials() } from the chat page. Hooks: check(resolved) (after a reconnect,
 * or with the id a "resolved" frame named), hide(), reset().
 */
export function createRating(ctx) {
  let card = null;
  let checking = 0;

  const asked = () => store.get(KEY, []);
  const remember = (id) => store.set(KEY, [...asked().filter((x) => x !== id), id].slice(-REMEMBERED));

  /** Asks kefud about the customer's newest conversation; shows the card when it is due. */
  async function check(resolved = null) {
    const mine = ++checking;
    let res;
    try {
      res = await visitorGet('/visitor/conversation', ctx.credentials());
    } catch {
      return;
    }
    if (mine !== checking || res.status !== 200) return;
    if (!wantsRating(res.body, asked(), resolved)) {
      if (card && card.dataset.conversation === String(res.body?.conversation_id) && card.dataset.state !== 'thanks') hide();
      return;
    }
    if (card?.dataset.conversation === String(res.body.conversation_id)) return;
    show(res.body.conversation_id);
  }

  function show(conversation) {
    hide();
    let score = 0;
    const stars = [1, 2, 3, 4, 5].map((n) => h('button', {
      type: 'button', class: 'star', 'data-score': n,
      'aria-label': t(n === 1 ? 'chat.rating.star' : 'chat.rating.stars_n', { n }),
      'aria-pressed': 'false',
      text: '★',
    }));
    const paint = () => stars.forEach((b, i) => {
      b.classList.toggle('on', i < score);
      b.setAttribute('aria-pressed', String(i + 1 === score));
    });
    const pick = (n) => {
      score = n;
      paint();
      error.textContent = '';
    };
    const row = h('div', { class: 'stars', role: 'group', 'aria-label': t('chat.rating.your') }, stars);
    row.addEventListener('click', (e) => {
      const b = e.target.closest('.star');
      if (b) pick(Number(b.dataset.score));
    });
    row.addEventListener('keydown', (e) => {
      const at = stars.indexOf(document.activeElement);
      if (at < 0) return;
      const step = { ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1 }[e.key];
      if (!step) return;
      e.preventDefault();
      const next = Math.min(4, Math.max(0, at + step));
      stars[next].focus();
      pick(next + 1);
    });
    const comment = h('textarea', {
      class: 'input', rows: 2, maxlength: MAX_COMMENT, 'aria-label': t('chat.rating.comment'), placeholder: t('chat.rating.comment'),
    });
    const error = h('p', { class: 'error', role: 'alert' });
    const submit = h('button', { type: 'submit', class: 'btn primary', text: t('chat.rating.send') });
    const later = h('button', {
      type: 'button', class: 'btn ghost', text: t('chat.rating.later'),
      onclick: () => {
        remember(conversation);
        hide();
      },
    });
    const form = h('form', { class: 'rating', 'aria-labelledby': `rating-title-${conversation}` },
      h('h2', { id: `rating-title-${conversation}`, text: t('chat.rating.title') }),
      row, comment, error,
      h('div', { class: 'rating-actions' }, later, submit));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!score) {
        error.textContent = t('chat.rating.pick');
        stars[0].focus();
        return;
      }
      submit.disabled = true;
      later.disabled = true;
      let res;
      try {
        res = await visitorPost('/visitor/rating', ctx.credentials(), {
          conversation_id: conversation, score, comment: comment.value.trim(),
        });
      } catch {
        res = null;
      }
      submit.disabled = false;
      later.disabled = false;
      if (res?.status === 201) {
        remember(conversation);
        thank();
      } else if (res?.body?.code === 'not_resolved') {
        error.textContent = t('chat.rating.reopened');
      } else {
        error.textContent = t('chat.rating.failed', { message: res?.body?.message || t('chat.rating.unavailable') });
      }
    });
    card = h('li', { class: 'card rating-card', 'data-conversation': conversation }, form);
    ctx.log.append(card);
    ctx.log.scrollTop = ctx.log.scrollHeight;
  }

  function thank() {
    const done = card;
    done.dataset.state = 'thanks';
    done.replaceChildren(h('p', { class: 'rating-thanks', role: 'status', text: t('chat.rating.thanks') }));
    setTimeout(() => { if (card === done) hide(); }, THANKS_MS);
  }

  function hide() {
    card?.remove();
    card = null;
  }

  /** Another customer on this page: forget what was on screen (not what was rated). */
  function reset() {
    checking += 1;
    hide();
  }

  return { check, hide, reset };
}
