// The customer's chat: a full page at /chat, or inside widget.js's iframe at /chat?embed=1.
// History and live messages over /ws/visitor (after=0 on load, after=<last message_id seen> on
// every reconnect, 0.5 s doubling to 10 s); an outbox of unacknowledged messages kept in
// localStorage, each with its client_id, resent after every reconnect and shown as sending
// until acked; nothing shown twice (by message_id and client_id); typing both ways; images;
// a leave-a-message form while no agent is online or the shop is closed (business hours, with
// the shop's away message); the unread count for widget.js's badge.
// A customer is an anonymous visitor id or a signed identity from the shop (identity.js: the
// outbox and read mark are kept per signed user); the pre-chat form (prechat.js) and the
// rating card (rating.js) hook into the connection's welcome, acks and the resolved frame.
import { h, store, fmtTime, uuid, wsUrl } from '../shared/dom.js';
import { t, translate } from '../shared/i18n.js';
import * as who from './identity.js';
import { createPrechat } from './prechat.js';
import { createRating } from './rating.js';

const KEYS = { visitor: 'kefud.visitor', read: 'kefud.chat.read', outbox: 'kefud.chat.outbox' };
// How long the history replay may pause before the thread counts as complete (the pre-chat
// form wants to know whether the customer ever wrote; the rating card asks kefud only then).
const SETTLE_MS = 400;
const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];
const MAX_IMAGE = 5 * 1024 * 1024;
const RETRY_CODES = ['rate_limited', 'unavailable', 'internal'];
const embed = new URLSearchParams(location.search).has('embed');
const $ = (id) => document.getElementById(id);
const log = $('log');
const input = $('input');

let identity = who.fromFragment(location.hash);  // a signed identity from the shop, or null
let visitorId = store.get(KEYS.visitor);
let external = null;           // the identity kefud welcomed this page as (visitor id or user:ID)
let outbox = store.get(keyed(KEYS.outbox), []);
let readUpTo = store.get(keyed(KEYS.read), 0);
let lastSeen = 0;              // the highest message_id received on this page: the resume point
let ws = null;
let ready = false;             // welcomed: frames may be sent
let delay = 500;
let agentsOnline = null;
// Business hours (GET /widget/info): closed shows the away message and the leave-a-message form.
let shopOpen = true;
let awayMessage = '';
let shown = !embed;            // whether the customer can see the chat (the widget is open)
let typingTimer = 0;
let unreadTimer = 0;
let lastTypingSent = 0;
let welcomed = false;          // this connection was welcomed (else a signed identity is checked)
let refused = false;           // kefud refused the signed identity: nothing is sent
let reconnectTimer = 0;
let settleTimer = 0;
let settling = false;          // welcomed, history still arriving
const byId = new Map();        // message_id → element
const byClient = new Map();    // client_id → element
const theirs = [];             // message ids of agent and bot messages, for the unread count

const credentials = () => who.credentials(identity, identity ? null : visitorId);
const prechat = createPrechat({
  log, composer: $('composer'), input, credentials, scope: () => who.scope(identity, external), identity: () => identity,
});
const rating = createRating({ log, credentials });

translate(document);
document.body.classList.toggle('embed', embed);
$('close').hidden = !embed;
renderOutbox();
greet();
paintStatus();
connect();
refreshInfo();
setInterval(refreshInfo, 60000);

// ---- connection ------------------------------------------------------------------------------

/** Local state kept per customer: the anonymous visitor's under KEY, a signed user's apart. */
function keyed(key) {
  return identity ? `${key}.user:${identity.userId}` : key;
}

function renderOutbox() {
  for (const item of outbox) render(item.client_id, { sender: 'visitor', text: item.text, attachment: item.attachment, created_at: item.at });
}

function connect() {
  reconnectTimer = 0;
  if (refused) return;
  welcomed = false;
  ws = new WebSocket(wsUrl('/ws/visitor', { after: lastSeen, ...credentials() }));
  ws.onmessage = (e) => {
    let f;
    try {
      f = JSON.parse(e.data);
    } catch {
      return;
    }
    onFrame(f);
  };
  ws.onclose = () => {
    ws = null;
    ready = false;
    settling = false;
    paintStatus();
    // A browser does not say why an upgrade failed: for a signed identity, kefud is asked.
    if (identity && !welcomed) checkIdentity(identity);
    else reconnect();
  };
}

function reconnect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = setTimeout(connect, delay);
  delay = Math.min(delay * 2, 10000);
}

/** A 403 (forged, or signed with an old secret) or 400 (malformed) ends the chat here. */
async function checkIdentity(asked) {
  let res = null;
  try {
    res = await fetch(`/api/v1/visitor/conversation?${new URLSearchParams(credentials())}`);
  } catch { /* kefud is down: keep trying */ }
  if (asked !== identity) return;
  if (res && (res.status === 403 || res.status === 400)) {
    const body = await res.json().catch(() => ({}));
    refuse(body.message || '');
  } else {
    reconnect();
  }
}

function refuse(reason) {
  refused = true;
  prechat.stop();
  rating.reset();
  let el = $('identity-error');
  if (!el) {
    el = h('section', { id: 'identity-error', class: 'identity-error', role: 'alert' });
    $('composer').before(el);
  }
  el.replaceChildren(h('p', { text: t('chat.identity.refused') }), reason ? h('p', { class: 'small', text: reason }) : null);
  el.hidden = false;
  for (const c of [input, $('send'), $('attach')]) c.disabled = true;
  paintStatus();
}

/** The shop's page named another customer (kefu.identify): the chat starts over as them. */
function switchIdentity(next) {
  if (who.sameIdentity(next, identity)) return;
  identity = next;
  if (ws) {
    ws.onclose = null;
    ws.onmessage = null;
    ws.close();
    ws = null;
  }
  clearTimeout(reconnectTimer);
  clearTimeout(settleTimer);
  ready = false;
  refused = false;
  settling = false;
  external = null;
  lastSeen = 0;
  delay = 500;
  byId.clear();
  byClient.clear();
  theirs.length = 0;
  log.replaceChildren();
  $('identity-error')?.remove();
  for (const c of [input, $('send')]) c.disabled = false;
  $('attach').disabled = true;
  prechat.reset();
  rating.reset();
  outbox = store.get(keyed(KEYS.outbox), []);
  readUpTo = store.get(keyed(KEYS.read), 0);
  renderOutbox();
  greet();
  paintStatus();
  updateUnread();
  connect();
}

/** The history replay has paused: the thread on screen is the customer's whole thread. */
function threadSettled() {
  settling = false;
  const wrote = byId.size > 0 || outbox.length > 0;
  prechat.settled(wrote);
  if (byId.size > 0) rating.check();
}

function onFrame(f) {
  switch (f.type) {
    case 'welcome':
      external = f.visitor_id;
      // A signed user's identity (user:ID) is never a visitor id to reuse.
      if (!identity) {
        visitorId = f.visitor_id;
        store.set(KEYS.visitor, visitorId);
      }
      welcomed = true;
      settling = true;
      clearTimeout(settleTimer);
      settleTimer = setTimeout(threadSettled, SETTLE_MS);
      ready = true;
      delay = 500;
      $('attach').disabled = false;
      paintStatus();
      flush();
      refreshInfo();
      break;
    case 'message':
      onMessage(f);
      break;
    case 'ack':
      onAck(f.client_id, f.message_id);
      prechat.acked();
      break;
    case 'resolved':
      rating.check(f.conversation_id);
      break;
    case 'typing':
      if (f.sender !== 'visitor') showTyping(6000);
      break;
    case 'error':
      if (RETRY_CODES.includes(f.code)) setTimeout(flush, 2000);
      else notice(t('chat.error'));
      break;
  }
}

function send(frame) {
  if (ready && ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
}

function transmit(item) {
  send({ type: 'message', client_id: item.client_id, text: item.text, ...(item.attachment ? { attachment: item.attachment } : {}) });
}

/** Sends every message not yet acknowledged; the server stores each client_id once. */
function flush() {
  outbox.forEach(transmit);
}

function enqueue(text, attachment, el) {
  const item = { client_id: uuid(), text, attachment, at: Date.now() };
  outbox.push(item);
  store.set(keyed(KEYS.outbox), outbox);
  rating.hide();
  if (el) bind(el, item.client_id);
  else render(item.client_id, { sender: 'visitor', text, attachment, created_at: item.at });
  log.scrollTop = log.scrollHeight;
  transmit(item);
}

function settle(clientId) {
  const before = outbox.length;
  outbox = outbox.filter((x) => x.client_id !== clientId);
  if (outbox.length !== before) store.set(keyed(KEYS.outbox), outbox);
}

function onAck(clientId, id) {
  settle(clientId);
  const el = byClient.get(clientId);
  if (el && !el.dataset.id) sent(el, id);
}

function onMessage(f) {
  lastSeen = Math.max(lastSeen, f.message_id);
  if (settling) {
    clearTimeout(settleTimer);
    settleTimer = setTimeout(threadSettled, SETTLE_MS);
  }
  if (byId.has(f.message_id)) return;
  // The customer wrote (here or on another device): the conversation goes on, no rating now.
  if (f.sender === 'visitor' && !settling) rating.hide();
  const mine = f.client_id ? byClient.get(f.client_id) : null;
  if (mine) {
    settle(f.client_id);
    sent(mine, f.message_id);
  } else {
    const el = render(f.client_id, f);
    sent(el, f.message_id);
  }
  if (f.sender !== 'visitor') {
    theirs.push(f.message_id);
    showTyping(0);
    clearTimeout(unreadTimer);
    unreadTimer = setTimeout(updateUnread, 50);
  }
}

// ---- rendering ---------------------------------------------------------------------------

function render(clientId, m) {
  const bubble = h('div', { class: 'bubble' });
  if (m.preview || m.attachment) bubble.append(image(m.preview ?? uploadSrc(m.attachment)));
  if (m.text) bubble.append(h('p', { class: 'text', text: m.text }));
  const el = h('li', { class: `msg ${m.sender === 'visitor' ? 'mine' : 'theirs'} ${m.sender}`, 'data-state': 'sending' },
    m.sender === 'visitor' ? null : h('span', { class: 'who', text: t(`chat.sender.${m.sender}`) }),
    bubble,
    h('span', { class: 'meta' },
      h('time', { text: fmtTime(m.created_at ?? Date.now()) }),
      m.sender === 'visitor' ? h('span', { class: 'state', text: t('chat.sending') }) : null));
  if (clientId) bind(el, clientId);
  log.querySelector('.greeting')?.remove();
  log.append(el);
  return el;
}

function bind(el, clientId) {
  el.dataset.clientId = clientId;
  byClient.set(clientId, el);
}

/** Marks a message stored (its id known) and moves it to its place in id order. */
function sent(el, id) {
  el.dataset.id = String(id);
  el.dataset.state = 'sent';
  const state = el.querySelector('.state');
  if (state) {
    state.textContent = '✓';
    state.setAttribute('aria-label', t('chat.sent'));
    state.title = t('chat.sent');
  }
  byId.set(id, el);
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  let ref = el.previousElementSibling;
  while (ref && (!ref.dataset.id || Number(ref.dataset.id) > id)) ref = ref.previousElementSibling;
  if (ref !== el.previousElementSibling) {
    if (ref) ref.after(el);
    else log.prepend(el);
  }
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function uploadSrc(id) {
  // A signed customer's images are theirs with the signature, as on the WebSocket.
  const creds = identity ? credentials() : { visitor_id: external ?? visitorId ?? '' };
  return `/api/v1/visitor/uploads/${encodeURIComponent(id)}?${new URLSearchParams(creds)}`;
}

function image(src) {
  const img = h('img', { class: 'att', src, alt: t('chat.image') });
  img.addEventListener('load', () => { log.scrollTop = log.scrollHeight; }, { once: true });
  return h('a', { href: src, target: '_blank', rel: 'noopener' }, img);
}

function greet() {
  if (!log.children.length) log.append(h('li', { class: 'greeting', text: t('chat.greeting') }));
}

function showTyping(ms) {
  clearTimeout(typingTimer);
  $('typing').hidden = ms <= 0;
  if (ms > 0) typingTimer = setTimeout(() => showTyping(0), ms);
}

function notice(text) {
  const el = $('notice');
  el.textContent = text;
  el.hidden = false;
  setTimeout(() => { el.hidden = true; }, 6000);
}

function paintStatus() {
  const closed = shopOpen === false;
  const text = refused ? t('chat.identity.status') : !ready ? t('chat.connecting')
    : closed ? t('chat.closed')
      : agentsOnline === 0 ? t('chat.offline') : t('chat.online');
  $('status').textContent = text;
  $('status').classList.toggle('down', !ready || closed || agentsOnline === 0);
  // Outside business hours the shop's away message; otherwise the note that nobody is online.
  $('away-text').textContent = closed && awayMessage ? awayMessage : t('chat.away');
  $('away').hidden = !(ready && (closed || agentsOnline === 0));
}

async function refreshInfo() {
  try {
    const res = await fetch('/api/v1/widget/info');
    if (!res.ok) return;
    const info = await res.json();
    agentsOnline = info.agents_online;
    shopOpen = info.open !== false;
    awayMessage = info.away_message ?? '';
    prechat.configure(info);
    if (info.shop_name) {
      $('shop').textContent = info.shop_name;
      document.title = info.shop_name;
    }
    paintStatus();
  } catch { /* offline: the connection status says so */ }
}

// ---- unread count and the widget ---------------------------------------------------------

function visible() {
  return shown && document.visibilityState === 'visible';
}

function updateUnread() {
  if (visible() && theirs.length) {
    const newest = Math.max(...theirs);
    if (newest > readUpTo) {
      readUpTo = newest;
      store.set(keyed(KEYS.read), readUpTo);
      // The shop sees that its replies were read (not stored; best effort).
      send({ type: 'read', message_id: readUpTo });
    }
  }
  const n = theirs.filter((id) => id > readUpTo).length;
  if (embed) parent.postMessage({ type: 'kefud:unread', count: n }, '*');
  else document.title = `${n ? `(${n}) ` : ''}${$('shop').textContent}`;
}

document.addEventListener('visibilitychange', updateUnread);
// The full page takes a signed identity in its fragment too (/chat#kefu_identity=...).
addEventListener('hashchange', () => switchIdentity(who.fromFragment(location.hash)));
if (embed) {
  // The embedding page (only it: e.source) may name the customer; kefud checks the signature.
  addEventListener('message', (e) => {
    if (e.source === parent && e.data?.type === 'kefud:identity') switchIdentity(who.normalize(e.data.identity));
  });
  addEventListener('message', (e) => {
    if (e.source !== parent || e.data?.type !== 'kefud:visible') return;
    shown = Boolean(e.data.open);
    updateUnread();
    if (shown) {
      log.scrollTop = log.scrollHeight;
      if (matchMedia('(pointer: fine)').matches) input.focus();
    }
  });
  parent.postMessage({ type: 'kefud:ready' }, '*');
  const close = () => parent.postMessage({ type: 'kefud:close' }, '*');
  $('close').addEventListener('click', close);
  addEventListener('keydown', (e) => { if (e.key === 'Escape') close(); });
}

// ---- composer, images, leave a message ---------------------------------------------------

$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  input.value = '';
  lastTypingSent = 0;
  autosize();
  enqueue(text);
});
input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
    e.preventDefault();
    $('composer').requestSubmit();
  }
});
input.addEventListener('input', () => {
  autosize();
  if (input.value.trim() && Date.now() - lastTypingSent > 3000) {
    lastTypingSent = Date.now();
    send({ type: 'typing' });
  }
});
function autosize() {
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight + 2, 140)}px`;
}

$('attach').addEventListener('click', () => $('file').click());
$('file').addEventListener('change', async () => {
  const file = $('file').files[0];
  $('file').value = '';
  if (!file) return;
  if (!IMAGE_TYPES.includes(file.type)) return notice(t('chat.image_type'));
  if (file.size > MAX_IMAGE) return notice(t('chat.image_size'));
  const preview = URL.createObjectURL(file);
  const el = render(null, { sender: 'visitor', text: '', preview, created_at: Date.now() });
  el.dataset.state = 'uploading';
  log.scrollTop = log.scrollHeight;
  try {
    const creds = identity ? credentials() : { visitor_id: external };
    const res = await fetch(`/api/v1/visitor/uploads?${new URLSearchParams(creds)}`, {
      method: 'POST', headers: { 'Content-Type': file.type }, body: file,
    });
    if (!res.ok) throw new Error(String(res.status));
    const { upload } = await res.json();
    el.dataset.state = 'sending';
    enqueue('', upload, el);
  } catch {
    el.remove();
    notice(t('chat.image_failed'));
  }
});

$('leave-open').addEventListener('click', () => {
  $('leave').hidden = false;
  $('leave-open').hidden = true;
  $('leave-text').focus();
});
$('leave').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = t('chat.leave_format', { message: $('leave-text').value.trim(), contact: $('leave-contact').value.trim() });
  enqueue(text);
  $('leave').reset();
  $('leave').hidden = true;
  $('leave-open').hidden = false;
  notice(t('chat.leave_thanks'));
});
