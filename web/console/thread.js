// The conversation view: the header (take, transfer, resolve, reopen, contact panel), the
// thread (customer, agent, bot, private notes, status events, images; the channel of each
// message not from the web and each reply's delivery, kept live) with the customer's typing
// indicator, and the composer: reply or private note, Enter sends and Shift+Enter breaks the
// line, "/" picks a canned reply (its placeholders filled in: placeholders.js), "send via" picks one of the contact's channels when it has
// several, the draft is kept per conversation in localStorage (it survives a reload and an
// expired session). Linked contacts redraw the thread (messages folded in) or move to the
// conversation the open one was folded into.
import { h, fmtTime, store } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { api, errText, uploadUrl } from './api.js';
import {
  state, on, emit, toast, agentName, isOpen, markRead, conversation, eventText,
} from './state.js';
import { channelBadge, channelName, contactName } from './inbox.js';
import { showContact } from './contact.js';
import { labelChips, labelEditor } from './labels.js';
import { expand } from './placeholders.js';
import { holdersBox, elsewhereOptions, transferBody } from './holders.js';

const PAGE = 500;
let pane;
let contactPane;
// The open thread: { id, root, head, log, typing, ids, maxId, seqs, headKey, stick, marks,
// contactId, via (the "send via" control), identities, lastVisitor }
let cur = null;

export function mountThread(threadRoot, contactRoot) {
  pane = threadRoot;
  contactPane = contactRoot;
  on('message', (m) => {
    if (cur?.id !== m.conversation_id) return;
    addMessage(cur, m);
    if (m.sender === 'visitor') setTyping(cur, 0);
    markIfSeen();
  });
  on('event', (f) => {
    if (cur?.id === f.conversation_id) addEvent(cur, f);
  });
  on('typing', (id) => {
    if (cur?.id === id) setTyping(cur, state.typing.get(id));
  });
  on('read', (id) => {
    if (cur?.id === id) paintRead(cur);
  });
  on('convs', () => cur && renderHead(cur));
  on('delivery', (f) => {
    if (!cur) return;
    for (const id of f.message_ids ?? []) {
      const el = cur.marks.get(id);
      if (el) paintDelivery(el, id, f.state, f.error);
    }
  });
  on('linked', (f) => {
    if (!cur) return;
    if (f.closed_conversation_id != null && f.closed_conversation_id === cur.id && f.conversation_id != null) {
      location.hash = `#/c/${f.conversation_id}`;
      return;
    }
    const c = state.convs.get(cur.id);
    const ours = cur.id === f.conversation_id
      || [f.contact_id, f.merged_contact_id].includes(cur.contactId)
      || c?.contact_id === f.contact_id;
    if (f.again || !c || !ours) return;
    relink(cur, c);
  });
  document.addEventListener('visibilitychange', markIfSeen);
  hideThread();
}

export function hideThread() {
  cur = null;
  state.openId = null;
  document.body.classList.remove('has-thread', 'contact-open');
  pane.replaceChildren(h('div', { class: 'placeholder', text: t('thread.pick') }));
}

export async function showThread(id) {
  if (cur?.id === id) return;
  state.openId = id;
  document.body.classList.add('has-thread');
  const view = {
    id, ids: new Set(), maxId: 0, seqs: new Set(), headKey: '', marks: new Map(),
    contactId: null, identities: [], lastVisitor: 0, lastVisitorChannel: null,
    head: h('header', { class: 'thread-head' }),
    log: h('ol', { class: 'log', role: 'log', 'aria-live': 'polite', 'aria-label': t('thread.log') }),
    typing: h('p', { class: 'typing', hidden: true, text: t('thread.typing') }),
  };
  view.root = h('section', { class: 'thread', 'aria-label': t('thread.title') },
    view.head, view.log, view.typing, composer(view));
  // Stay at the newest message while the thread is read at the bottom, whatever resizes it.
  view.stick = true;
  view.log.addEventListener('scroll', () => {
    view.stick = view.log.scrollHeight - view.log.scrollTop - view.log.clientHeight < 80;
  });
  new ResizeObserver(() => view.stick && toBottom(view)).observe(view.log);
  cur = view;
  pane.replaceChildren(view.root);
  emit('convs');
  const c = await conversation(id);
  if (cur !== view) return;
  if (!c) {
    pane.replaceChildren(h('div', { class: 'placeholder' },
      h('p', { text: t('thread.not_found') }), h('a', { href: '#/', text: t('thread.back') })));
    return;
  }
  view.contactId = c.contact_id;
  renderHead(view);
  if (document.body.classList.contains('contact-open')) showContact(contactPane, c);
  loadIdentities(view);
  for (const f of state.events.get(id) ?? []) addEvent(view, f);
  await loadNew(view);
  paintRead(view);
  toBottom(view);
  markIfSeen();
  if (matchMedia('(pointer: fine)').matches) view.root.querySelector('textarea').focus();
}

/** Fetches every stored message after the newest one shown (all of them the first time). */
async function loadNew(view, from = view.maxId) {
  let after = from;
  for (;;) {
    let page;
    try {
      ({ messages: page } = await api(`/conversations/${view.id}/messages?after=${after}&limit=${PAGE}`));
    } catch (e) {
      if (e.status !== 401) toast(errText(e));
      return;
    }
    if (cur !== view) return;
    for (const m of page) addMessage(view, m);
    if (page.length < PAGE) return;
    // In cluster mode a page is in the cluster's order: the next starts after its highest id.
    after = Math.max(after, ...page.map((m) => m.id));
  }
}

/**
 * The contact of the open thread changed (linked to another): the messages of a folded
 * conversation sit among the old ones, so the log is drawn again from the start, and the
 * head, the channels to send via and the contact panel follow.
 */
async function relink(view, c) {
  view.contactId = c.contact_id;
  view.headKey = '';
  renderHead(view);
  if (document.body.classList.contains('contact-open')) showContact(contactPane, c);
  loadIdentities(view);
  view.ids.clear();
  view.seqs.clear();
  view.marks.clear();
  view.maxId = 0;
  view.lastVisitor = 0;
  view.lastVisitorChannel = null;
  view.stick = true;
  view.log.replaceChildren();
  for (const f of state.events.get(view.id) ?? []) addEvent(view, f);
  await loadNew(view, 0);
  if (cur === view) toBottom(view);
}

/** The contact's identities, for "send via" (shown only when there is a choice). */
async function loadIdentities(view) {
  const contactId = view.contactId;
  let identities = [];
  try {
    ({ identities } = await api(`/contacts/${contactId}`));
  } catch (e) {
    if (e.status !== 404 && e.status !== 401) toast(errText(e));
  }
  if (cur !== view || view.contactId !== contactId) return;
  view.identities = identities ?? [];
  paintVia(view);
}

const viaKey = (i) => JSON.stringify([i.channel, i.external_id]);
/** "abcdefghijklmnopqrstuvwxyz" as "abcdefghijkl…" (web visitors' ids are long and random). */
const clip = (s) => (s.length > 16 ? `${s.slice(0, 12)}…` : s);

function paintVia(view) {
  const { select, label } = view.via;
  const kept = select.value;
  const last = view.lastVisitorChannel;
  select.replaceChildren(
    h('option', {
      value: '',
      text: last ? `${t('composer.via_default')} (${channelName(last)})` : t('composer.via_default'),
    }),
    ...view.identities.map((i) => h('option', {
      value: viaKey(i), text: `${channelName(i.channel)} · ${clip(i.external_id ?? '')}`, title: i.external_id,
    })));
  select.value = view.identities.some((i) => viaKey(i) === kept) ? kept : '';
  label.hidden = view.identities.length < 2;
}

function markIfSeen() {
  if (cur && document.visibilityState === 'visible' && state.convs.has(cur.id)) {
    markRead(state.convs.get(cur.id));
  }
}

function renderHead(view) {
  const c = state.convs.get(view.id);
  if (!c) return;
  const key = [c.status, c.assignee, state.agents.size, c.contact_id, c.channel, c.external_id, c.home,
    c.contact_name, [...state.labels.keys()].join(','), JSON.stringify(c.holders ?? []),
    (state.elsewhere ?? []).map((a) => `${a.node}:${a.id}:${a.presence}`).join(',')].join('|');
  drawThreadLabels(view, c);
  if (key === view.headKey) return;
  view.headKey = key;
  const mine = c.assignee === state.me.id;
  const others = [...state.agents.values()].filter((a) => !a.disabled && a.id !== c.assignee);
  const transfer = h('select', {
    class: 'input select', 'aria-label': t('thread.transfer'),
    onchange: (e) => e.target.value && act(view, 'assign', transferBody(e.target.value)),
  },
  h('option', { value: '', text: t('thread.transfer') }),
  others.map((a) => h('option', {
    value: String(a.id), text: `${a.display_name || a.username}${a.presence === 'online' ? ' ●' : ''}`,
  })),
  elsewhereOptions(c));
  view.head.replaceChildren(
    h('a', { href: '#/', class: 'icon-btn back', 'aria-label': t('thread.back') }, '←'),
    h('div', { class: 'title' },
      channelBadge(c.channel),
      h('h2', { text: contactName(c) }),
      h('span', { class: `status s-${c.status}`, text: t(`status.${c.status}`) }),
      c.home ? h('span', { class: 'home-box chip', title: t('thread.home_help'), text: t('thread.home', { node: c.home.slice(0, 8) }) }) : null,
      c.assignee != null && !c.conflict ? h('span', { class: 'assignee', text: mine ? t('inbox.you') : agentName(c.assignee) }) : null,
      holdersBox(c, () => act(view, 'assign')),
      view.labelsBox),
    h('div', { class: 'actions' },
      labelEditor(c),
      isOpen(c) && !mine ? button(t('thread.take'), () => act(view, 'assign'), 'primary') : null,
      transfer,
      isOpen(c) ? button(t('thread.resolve'), () => act(view, 'resolve'))
        : button(t('thread.reopen'), () => act(view, 'reopen')),
      h('button', {
        type: 'button', class: 'icon-btn contact-toggle', 'aria-label': t('contact.title'),
        title: t('contact.title'), onclick: () => toggleContact(c),
      }, 'ⓘ')));
}

/** The conversation's label chips and its rating, kept apart from the header's key so the
 * label editor stays open while labels change. */
function drawThreadLabels(view, c) {
  view.labelsBox ??= h('span', { class: 'thread-labels' });
  const key = `${(c.labels ?? []).join(',')}|${c.rating ?? ''}|${state.labels.size}`;
  if (view.labelsBox.dataset.key === key) return;
  view.labelsBox.dataset.key = key;
  view.labelsBox.replaceChildren(...[
    labelChips(c),
    c.rating ? h('span', {
      class: 'rating-chip', title: t('thread.rated', { n: c.rating }), 'aria-label': t('thread.rated', { n: c.rating }),
      text: '★'.repeat(c.rating) + '☆'.repeat(5 - c.rating),
    }) : null].filter(Boolean));
}

const button = (text, onclick, kind = '') => h('button', { type: 'button', class: `btn ${kind}`, text, onclick });

async function act(view, kind, body) {
  try {
    const row = await api(`/conversations/${view.id}/${kind}`, { method: 'POST', body });
    state.convs.set(row.id, row);
    emit('convs');
  } catch (e) {
    if (e.status !== 401) toast(errText(e));
    view.headKey = '';
    renderHead(view);
  }
}

function toggleContact(c) {
  const open = document.body.classList.toggle('contact-open');
  if (open) showContact(contactPane, c);
}

function addMessage(view, m) {
  if (view.ids.has(m.id)) return;
  view.ids.add(m.id);
  view.maxId = Math.max(view.maxId, m.id);
  const who = m.sender === 'agent'
    ? (m.agent_id === state.me.id ? t('sender.you') : agentName(m.agent_id))
    : t(`sender.${m.sender}`);
  const bubble = h('div', { class: 'bubble' });
  if (m.attachment) bubble.append(image(m.attachment));
  if (m.text) bubble.append(h('p', { class: 'text', text: m.text }));
  // A delivery frame may have been applied before this message was drawn: it is the newer.
  const seen = state.deliveries.get(m.id);
  const delivery = seen?.state ?? m.delivery;
  let mark = null;
  if (delivery) {
    mark = h('span', { class: 'dlv' });
    paintDelivery(mark, m.id, delivery, seen?.error);
    view.marks.set(m.id, mark);
  }
  if (m.sender === 'visitor' && m.channel && m.id > view.lastVisitor) {
    view.lastVisitor = m.id;
    if (view.lastVisitorChannel !== m.channel) {
      view.lastVisitorChannel = m.channel;
      paintVia(view);
    }
  }
  insert(view, m.id, h('li', { class: `msg ${m.sender}`, 'data-id': m.id, 'data-seq': m.id },
    h('div', { class: 'meta' },
      h('span', { class: 'who', text: who }),
      h('time', { dateTime: new Date(m.created_at).toISOString(), text: fmtTime(m.created_at) }),
      m.channel && m.channel !== 'web' ? h('span', {
        class: `msg-chan ch-${STYLED.has(m.channel) ? m.channel : 'other'}`,
        title: t('chan.label', { name: channelName(m.channel) }), text: channelName(m.channel),
      }) : null,
      m.intent ? h('span', {
        class: 'intent', title: t('thread.intent'),
        text: `${m.intent} ${Math.round((m.intent_score ?? 0) * 100)}%`,
      }) : null,
      mark),
    bubble));
}

/** "Read" on the newest reply the customer has seen (from the live read events). */
function paintRead(view) {
  const upTo = state.readUpTo.get(view.id) ?? 0;
  view.root.querySelector('.read-mark')?.remove();
  const seen = [...view.root.querySelectorAll('li.msg.agent, li.msg.bot')]
    .filter((li) => Number(li.dataset.id) <= upTo)
    .pop();
  seen?.querySelector('.meta')?.append(h('span', { class: 'read-mark', text: t('delivery.read') }));
}

const STYLED = new Set(['wechat', 'mqtt', 'http', 'api']); // channels with colours of their own

/** A reply's delivery mark: a clock and "Sending…", a check, or a red "Not delivered" (why in its tooltip). */
function paintDelivery(el, id, st, error) {
  const known = ['pending', 'delivered', 'dead'].includes(st) ? st : 'pending';
  const label = t(`delivery.${known}`);
  el.className = `dlv d-${known}`;
  el.dataset.state = known;
  el.replaceChildren(
    h('span', { class: 'dlv-icon', 'aria-hidden': 'true' }),
    h('span', { class: known === 'delivered' ? 'visually-hidden' : 'dlv-text', text: label }));
  if (known === 'dead') {
    el.title = error ? t('delivery.dead_error', { error }) : label;
    // Marks drawn from the message list carry no error: ask for the delivery's last one.
    if (!error) {
      api(`/messages/${id}/delivery`).then((d) => {
        if (d?.last_error && el.dataset.state === 'dead') el.title = t('delivery.dead_error', { error: d.last_error });
      }, () => {});
    }
  } else if (known === 'pending' && error) {
    el.title = t('delivery.retrying', { error });
  } else {
    el.title = label;
  }
}

function addEvent(view, f) {
  if (view.seqs.has(f.seq)) return;
  view.seqs.add(f.seq);
  insert(view, f.seq, h('li', { class: 'sys', 'data-seq': f.seq },
    h('span', { text: eventText(f) }), ' · ', h('time', { text: fmtTime(f.at) })));
  renderHead(view);
}

function image(id) {
  const img = h('img', { class: 'att', alt: t('msg.image') });
  const link = h('a', { class: 'att-link', target: '_blank', rel: 'noopener' }, img);
  img.addEventListener('load', () => cur?.stick && toBottom(cur));
  uploadUrl(id).then((url) => {
    img.src = url;
    link.href = url;
  }, () => link.replaceWith(h('span', { class: 'att-missing', text: t('msg.image_missing') })));
  return link;
}

function toBottom(view) {
  view.log.scrollTop = view.log.scrollHeight;
}

/** Inserts in seq order (message ids and status-change seqs share one sequence). */
function insert(view, seq, el) {
  let ref = view.log.lastElementChild;
  while (ref && Number(ref.dataset.seq) > seq) ref = ref.previousElementSibling;
  if (ref) ref.after(el);
  else view.log.prepend(el);
  if (view.stick) toBottom(view);
}

function setTyping(view, until) {
  clearTimeout(view.typingTimer);
  const left = (until ?? 0) - Date.now();
  view.typing.hidden = left <= 0;
  if (left > 0) view.typingTimer = setTimeout(() => setTyping(view, 0), left);
}

/** What a canned reply's placeholders expand to in view's conversation: the contact's name
 * (as the contact API said when the canned list opened, else the inbox row's copy), the
 * agent's and the shop's. */
function placeholderValues(view) {
  const c = state.convs.get(view.id);
  return {
    customer_name: view.contactName ?? c?.contact_name ?? '',
    agent_name: state.me.display_name || state.me.username,
    shop_name: state.shop,
    neutral: t('canned.customer_fallback'),
  };
}

/** Asks the contact API for the name of view's contact (it may have changed since the inbox
 * row was read); the next canned reply inserted uses it. */
function refreshContactName(view) {
  const contactId = view.contactId ?? state.convs.get(view.id)?.contact_id;
  if (contactId == null) return;
  api(`/contacts/${contactId}`).then((contact) => { view.contactName = contact.name ?? ''; }, () => {});
}

function composer(view) {
  const key = `kefud.draft.${view.id}`;
  const draft = store.get(key) ?? { text: '', note: false };
  let note = draft.note;
  let busy = false;
  let again = false; // Enter pressed while the previous send was on its way
  let lastPing = 0;
  let matches = [];
  let active = 0;

  const ta = h('textarea', {
    class: 'input', rows: 2, value: draft.text, 'aria-autocomplete': 'list',
    'aria-controls': `canned-${view.id}`, 'aria-expanded': 'false',
  });
  const pop = h('ul', { class: 'canned-pop', id: `canned-${view.id}`, role: 'listbox', hidden: true, 'aria-label': t('canned.title') });
  const send = h('button', { type: 'submit', class: 'btn primary send' });
  const modes = [false, true].map((isNote) => h('button', {
    type: 'button', role: 'tab', class: 'mode', text: t(isNote ? 'composer.note' : 'composer.reply'),
    onclick: () => { note = isNote; save(); paint(); ta.focus(); },
  }));
  const viaSelect = h('select', { class: 'input select' });
  const viaLabel = h('label', { class: 'via', hidden: true }, h('span', { text: t('composer.via') }), viaSelect);
  view.via = { select: viaSelect, label: viaLabel };
  const form = h('form', { class: 'composer', onsubmit: (e) => { e.preventDefault(); submit(); } },
    h('div', { class: 'compose-bar' },
      h('div', { class: 'modes', role: 'tablist', 'aria-label': t('composer.mode') }, modes),
      viaLabel),
    pop,
    h('div', { class: 'compose-row' }, ta, send));

  function paint() {
    form.classList.toggle('note-mode', note);
    modes.forEach((b, i) => b.setAttribute('aria-selected', String(Boolean(i) === note)));
    const hint = t(note ? 'composer.note_hint' : 'composer.reply_hint');
    ta.placeholder = hint;
    ta.setAttribute('aria-label', hint);
    send.textContent = t(note ? 'composer.add_note' : 'composer.send');
  }
  function autosize() {
    if (!ta.isConnected) return;
    ta.style.height = 'auto';
    ta.style.height = `${Math.min(ta.scrollHeight + 2, 200)}px`;
  }
  function save() {
    store.set(key, ta.value || note ? { text: ta.value, note } : null);
  }
  function ping() {
    if (note || !ta.value.trim() || Date.now() - lastPing < 3000) return;
    lastPing = Date.now();
    api(`/conversations/${view.id}/typing`, { method: 'POST' }).catch(() => {});
  }
  async function submit() {
    const text = ta.value.trim();
    if (!text) return;
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    send.disabled = true;
    try {
      const body = { text };
      const via = !note && viaSelect.value ? JSON.parse(viaSelect.value) : null;
      if (via) body.via = { channel: via[0], external_id: via[1] };
      await api(`/conversations/${view.id}/${note ? 'notes' : 'messages'}`, { method: 'POST', body });
      if (ta.value.trim() === text) ta.value = '';
      lastPing = 0;
      save();
      autosize();
      view.stick = true;
      loadNew(view).then(() => toBottom(view));
    } catch (e) {
      again = false;
      if (e.status !== 401) toast(errText(e));
    } finally {
      busy = false;
      send.disabled = false;
    }
    if (again) {
      again = false;
      submit();
    }
  }

  // Canned replies: "/" then part of a shortcut or of the text.
  function closePop() {
    pop.hidden = true;
    matches = [];
    ta.setAttribute('aria-expanded', 'false');
    ta.removeAttribute('aria-activedescendant');
  }
  function showPop() {
    const m = /^\/(\S*)$/.exec(ta.value);
    if (!m) return closePop();
    if (pop.hidden) refreshContactName(view);
    const q = m[1].toLowerCase();
    matches = state.canned.filter((c) => c.shortcut.toLowerCase().includes(q) || c.text.toLowerCase().includes(q)).slice(0, 8);
    active = Math.min(active, Math.max(0, matches.length - 1));
    pop.replaceChildren(...(matches.length
      ? matches.map((c, i) => h('li', {
        role: 'option', id: `canned-${view.id}-${i}`, class: 'canned-item', 'aria-selected': String(i === active),
        onmousedown: (e) => { e.preventDefault(); pick(i); },
      }, h('strong', { text: `/${c.shortcut}` }), h('span', { text: c.text })))
      : [h('li', { class: 'empty', text: t(state.canned.length ? 'canned.no_match' : 'canned.none') })]));
    pop.hidden = false;
    ta.setAttribute('aria-expanded', 'true');
    if (matches.length) ta.setAttribute('aria-activedescendant', `canned-${view.id}-${active}`);
  }
  function pick(i) {
    const { text } = matches[i];
    closePop();
    ta.value = expand(text, placeholderValues(view));
    save();
    autosize();
    ta.focus();
  }

  ta.addEventListener('keydown', (e) => {
    if (e.isComposing || e.keyCode === 229) return;
    if (!pop.hidden) {
      if (e.key === 'Escape') { e.preventDefault(); closePop(); return; }
      if (matches.length && (e.key === 'ArrowDown' || e.key === 'ArrowUp')) {
        e.preventDefault();
        active = (active + (e.key === 'ArrowDown' ? 1 : matches.length - 1)) % matches.length;
        showPop();
        return;
      }
      if (matches.length && (e.key === 'Enter' || e.key === 'Tab')) { e.preventDefault(); pick(active); return; }
    }
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      submit();
    }
  });
  ta.addEventListener('input', () => {
    active = 0;
    save();
    autosize();
    showPop();
    ping();
  });
  ta.addEventListener('blur', closePop);
  paint();
  requestAnimationFrame(autosize);
  return form;
}
