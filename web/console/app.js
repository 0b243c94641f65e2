// Console entry point: first-run setup, login and logout (the session survives reloads; an
// expired one goes back to the login and drafts stay in localStorage), the shell (top bar,
// navigation, presence, language, connection state, toasts), the hash routes (#/, #/c/ID,
// #/search?q=, #/admin/PAGE, #/help), the new-message alerts (notify.js) and the installed
// app (pwa.js).
import { h, store } from '../shared/dom.js';
import { t, lang, setLang } from '../shared/i18n.js';
import { api, errText, session, setToken } from './api.js';
import {
  state, on, emit, unread, loadAgents, loadConversations, loadLabels, preview,
} from './state.js';
import { startFeed, stopFeed } from './feed.js';
import { loadClusterAgents } from './holders.js';
import { mountInbox, contactName } from './inbox.js';
import { mountThread, showThread, hideThread } from './thread.js';
import { showSearch } from './search.js';
import { showAdmin } from './admin.js';
import { showHelp } from './help.js';
import { unlock, beep, notify, alertButtons } from './notify.js';
import { startPwa, setBadge } from './pwa.js';

const root = document.getElementById('app');
let started = false;

session.onExpired = () => {
  stopFeed();
  showLogin(t('login.expired'));
};
for (const evt of ['pointerdown', 'keydown']) addEventListener(evt, unlock, { once: true });
startPwa((hash) => {
  window.focus();
  location.hash = hash;
});
boot();

async function boot() {
  if (session.token) {
    try {
      state.me = await api('/me');
      startApp();
    } catch (e) {
      if (e.status !== 401) showUnreachable();
    }
    return;
  }
  let needed = false;
  try {
    ({ needed } = await api('/setup'));
  } catch (e) {
    if (e.status === 0) return showUnreachable();
  }
  if (needed) showSetup();
  else showLogin();
}

function showUnreachable() {
  root.replaceChildren(h('main', { class: 'auth' }, h('div', { class: 'auth-card' },
    h('h1', { text: t('app.unreachable') }), h('p', { class: 'muted', text: t('app.retrying') }))));
  setTimeout(boot, 3000);
}

// ---- setup and login ---------------------------------------------------------------------

function labeled(key, props) {
  const control = h('input', { class: 'input', id: `f-${key}`, name: key, required: true, ...props });
  return [h('label', { class: 'field' }, h('span', { text: t(key) }), control), control];
}

function authCard(title, intro, fields, submitText, onSubmit) {
  const error = h('p', { class: 'error', role: 'alert' });
  const btn = h('button', { type: 'submit', class: 'btn primary wide', text: submitText });
  const form = h('form', {
    class: 'auth-card',
    onsubmit: async (e) => {
      e.preventDefault();
      error.textContent = '';
      btn.disabled = true;
      try {
        await onSubmit();
      } catch (err) {
        error.textContent = errText(err);
      } finally {
        btn.disabled = false;
      }
    },
  },
  h('div', { class: 'brand big' }, h('span', { class: 'logo', 'aria-hidden': 'true' }, '客'), h('span', { text: 'kefud' })),
  h('h1', { text: title }),
  intro ? h('p', { class: 'muted', text: intro }) : null,
  fields, error, btn, langButton());
  root.replaceChildren(h('main', { class: 'auth' }, form));
  form.querySelector('input').focus();
}

function showSetup() {
  const [shopL, shop] = labeled('setup.shop_name', { autocomplete: 'organization', maxLength: 100 });
  const [userL, user] = labeled('setup.username', {
    autocomplete: 'username', autocapitalize: 'none', pattern: '[a-z0-9_.\\-]{1,32}', title: t('setup.username_hint'),
  });
  const [nameL, name] = labeled('setup.display_name', { autocomplete: 'name' });
  const [passL, pass] = labeled('setup.password', { type: 'password', minLength: 8, autocomplete: 'new-password' });
  const [confL, conf] = labeled('setup.confirm', { type: 'password', minLength: 8, autocomplete: 'new-password' });
  authCard(t('setup.title'), t('setup.intro'),
    [shopL, userL, h('p', { class: 'muted small', text: t('setup.username_hint') }), nameL, passL, confL],
    t('setup.submit'), async () => {
      if (pass.value !== conf.value) throw { code: 'password_mismatch' };
      signedIn(await api('/setup', {
        method: 'POST',
        body: {
          shop_name: shop.value.trim(), username: user.value.trim(),
          display_name: name.value.trim(), password: pass.value,
        },
      }));
    });
}

function showLogin(notice) {
  const [userL, user] = labeled('login.username', { autocomplete: 'username', autocapitalize: 'none' });
  const [passL, pass] = labeled('login.password', { type: 'password', autocomplete: 'current-password' });
  authCard(t('login.title'), notice, [userL, passL], t('login.submit'), async () => {
    const username = user.value.trim();
    // A device proof from an earlier login here lets this browser in while someone else's
    // failed guesses block the account or the shop's address.
    const device = localStorage.getItem(deviceKey(username)) || undefined;
    signedIn(await api('/login', { method: 'POST', body: { username, password: pass.value, device } }));
  });
}

function deviceKey(username) {
  return 'kefud.device.' + username.toLowerCase();
}

function signedIn(r) {
  setToken(r.token);
  if (r.device) localStorage.setItem(deviceKey(r.agent.username), r.device);
  state.me = r.agent;
  unlock();
  // A second login in this page (after a logout or expiry) starts from a clean page.
  if (started) location.reload();
  else startApp();
}

function langButton() {
  const other = lang === 'zh' ? 'en' : 'zh';
  return h('button', {
    type: 'button', class: 'btn ghost lang', lang: other, title: t('app.language'),
    text: other === 'zh' ? '中文' : 'English', onclick: () => setLang(other),
  });
}

// ---- the shell -------------------------------------------------------------------------------

async function startApp() {
  started = true;
  const shop = h('span', { class: 'shop', text: 'kefud' });
  const badge = h('span', { class: 'badge', hidden: true });
  const conn = h('span', { class: 'conn', role: 'status', hidden: true, text: t('app.reconnecting') });
  // The box's clock is not set yet (no time server reached since it booted): times shown may
  // be wrong until it is; kefud corrects the stored ones then.
  const clockWarn = h('span', { class: 'conn clock-warn', role: 'status', hidden: true, text: t('app.clock_unsynced'), title: t('app.clock_unsynced_title') });
  const toastEl = h('div', { class: 'toast', role: 'status', 'aria-live': 'polite', hidden: true });
  const links = [
    ['#/', 'nav.inbox', badge],
    ['#/search', 'nav.search'],
    state.me.is_admin ? ['#/admin/agents', 'nav.admin'] : null,
    ['#/help', 'nav.help'],
  ].filter(Boolean).map(([href, key, extra]) => h('a', { href, class: 'nav-link', 'data-section': href.split('/')[1] || 'inbox' }, t(key), extra));
  const listPane = h('aside', { class: 'pane-list', 'aria-label': t('inbox.title') });
  const threadPane = h('div', { class: 'pane-thread' });
  const contactPane = h('aside', { class: 'pane-contact', 'aria-label': t('contact.title') });
  const layout = h('div', { class: 'layout' }, listPane, threadPane, contactPane);
  const page = h('div', { class: 'page-wrap', hidden: true });

  root.replaceChildren(
    h('header', { class: 'topbar' },
      h('a', { href: '#/', class: 'brand' }, h('span', { class: 'logo', 'aria-hidden': 'true' }, '客'), shop),
      h('nav', { class: 'nav', 'aria-label': t('nav.main') }, links),
      h('div', { class: 'tools' }, clockWarn, conn, alertButtons((text) => emit('toast', text)), presenceButton(), langButton(),
        h('button', { type: 'button', class: 'btn ghost', text: t('app.logout'), title: state.me.display_name, onclick: logout }))),
    h('main', { class: 'main' }, layout, page),
    toastEl);

  mountInbox(listPane);
  mountThread(threadPane, contactPane);

  let toastTimer = 0;
  on('toast', (text) => {
    toastEl.textContent = text;
    toastEl.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toastEl.hidden = true; }, 4000);
  });
  on('feed', (up) => { conn.hidden = up; });
  const checkClock = () => api('/clock').then((c) => { clockWarn.hidden = c.synchronized; }, () => {});
  checkClock();
  setInterval(checkClock, 60_000);
  on('shop', () => {
    shop.textContent = state.shop || 'kefud';
    emit('convs');
  });
  on('convs', () => {
    let n = 0;
    for (const c of state.convs.values()) if (c.assignee == null || c.assignee === state.me.id) n += unread(c);
    badge.textContent = String(n);
    badge.hidden = !n;
    setBadge(n);
    document.title = `${n ? `(${n}) ` : ''}${state.shop || 'kefud'}`;
  });
  on('message', alertNew);
  addEventListener('keydown', (e) => {
    if (e.key === 'Escape') document.body.classList.remove('contact-open');
  });

  const route = () => {
    const [path, query] = location.hash.slice(1).split('?');
    const parts = path.split('/').filter(Boolean);
    const section = ['search', 'admin', 'help'].includes(parts[0]) ? parts[0] : 'inbox';
    for (const a of links) {
      if (a.dataset.section === section) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    layout.hidden = section !== 'inbox';
    page.hidden = section === 'inbox';
    if (section === 'inbox') {
      page.replaceChildren();
      const id = parts[0] === 'c' ? Number(parts[1]) : 0;
      if (id > 0) showThread(id);
      else hideThread();
    } else {
      hideThread();
      if (section === 'search') showSearch(page, new URLSearchParams(query).get('q') ?? '');
      else if (section === 'help') showHelp(page);
      else showAdmin(page, parts[1]);
    }
    emit('convs');
  };
  addEventListener('hashchange', route);
  route();
  await loadData();
}

/** Loads what the views need, then opens the feed from the newest message loaded. */
async function loadData() {
  try {
    await Promise.all([
      loadConversations(),
      loadAgents(),
      loadLabels(),
      loadClusterAgents(),
      api('/settings').then((s) => { state.shop = s.shop_name; emit('shop'); }, () => {}),
      api('/canned').then((r) => { state.canned = r.canned; }, () => {}),
    ]);
  } catch (e) {
    if (e.status === 401) return;
    emit('toast', errText(e));
    setTimeout(loadData, 3000);
    return;
  }
  startFeed();
}

function presenceButton() {
  let status = store.get('kefud.presence', 'online');
  const btn = h('button', { type: 'button', class: 'btn ghost presence', title: t('presence.toggle') });
  const paint = () => {
    btn.replaceChildren(h('span', { class: `dot p-${status}`, 'aria-hidden': 'true' }), t(`presence.${status}`));
    btn.setAttribute('aria-label', `${t('presence.label')}: ${t(`presence.${status}`)}`);
  };
  const send = () => api('/me/presence', { method: 'POST', body: { status } }).catch(() => {});
  btn.onclick = () => {
    status = status === 'online' ? 'away' : 'online';
    store.set('kefud.presence', status);
    paint();
    send();
  };
  on('feed', (up) => { if (up && status === 'away') send(); });
  paint();
  return btn;
}

async function logout() {
  await api('/logout', { method: 'POST' }).catch(() => {});
  setToken(null);
  stopFeed();
  showLogin();
}

/**
 * Beep, and a system notification while hidden, for a customer message that is mine or
 * unassigned: "New customer" for a conversation's first message, "New message" after it.
 */
function alertNew(m) {
  if (m.sender !== 'visitor') return;
  const c = state.convs.get(m.conversation_id);
  if (!c || !(c.assignee == null || c.assignee === state.me.id)) return;
  if (document.visibilityState === 'visible' && state.openId === c.id) return;
  beep();
  const hash = `#/c/${c.id}`;
  const title = c.message_count <= 1 ? 'notify.new_customer' : 'notify.title';
  notify(t(title, { name: contactName(c) }), preview(m), `kefud-conversation-${c.id}`, hash, () => { location.hash = hash; });
}
