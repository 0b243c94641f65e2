// Console state shared by the views: the agent logged in, all agents, the conversation rows
// kept current from the live feed (messages, status changes, typing, reply deliveries, linked
// contacts, labels, contact names, ratings), the shop's labels, read marks, and a tiny event
// bus ('convs', 'message', 'event', 'typing', 'delivery', 'linked', 'labels', 'contact',
// 'feed', 'toast').
import { store } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { api } from './api.js';

export const state = {
  me: null,
  agents: new Map(),  // id → agent, with teams, capacity and presence merged in
  convs: new Map(),   // id → conversation row
  events: new Map(),  // conversation id → status-change frames seen since the page loaded
  typing: new Map(),  // conversation id → time until which the customer counts as typing
  readUpTo: new Map(), // conversation id → the newest message the customer has seen (live only)
  deliveries: new Map(), // message id → { state, error } from the feed's delivery frames
  canned: [],
  labels: new Map(),  // id → { id, name, color }: the shop's label definitions
  lastSeq: 0,         // the feed's resume point
  feedUp: false,
  openId: null,       // the conversation shown in the thread
  shop: '',
  node: null,         // this box's node id (cluster.js shows it; holders.js compares)
  elsewhere: [],      // cluster mode: the other boxes' agents, { node, id, name, presence, open, capacity }
};

const handlers = {};
export function on(evt, fn) {
  (handlers[evt] ??= new Set()).add(fn);
}
export function emit(evt, arg) {
  for (const fn of handlers[evt] ?? []) fn(arg);
}
export const toast = (text) => emit('toast', text);

export function agentName(id) {
  const a = state.agents.get(id);
  return a ? a.display_name || a.username : `#${id}`;
}

export const isOpen = (c) => c.status === 'waiting' || c.status === 'in_progress';

// Read marks: conversation id → the message_count the agent has seen.
const read = store.get('kefud.read', {});
export function unread(c) {
  return isOpen(c) ? Math.max(0, c.message_count - (read[c.id] ?? 0)) : 0;
}
export function markRead(c) {
  if (read[c.id] === c.message_count) return;
  read[c.id] = c.message_count;
  store.set('kefud.read', read);
  emit('convs');
}

export async function loadAgents() {
  const [list, roster] = await Promise.all([
    api('/agents'),
    api('/agents/presence').catch(() => ({ agents: [] })),
  ]);
  const extra = new Map(roster.agents.map((a) => [a.id, a]));
  state.agents = new Map(list.map((a) => [a.id, { presence: 'offline', teams: [], ...extra.get(a.id), ...a }]));
  emit('convs');
}

export async function loadLabels() {
  const { labels } = await api('/labels');
  state.labels = new Map(labels.map((l) => [l.id, l]));
  emit('convs');
}

/** A conversation's labels were replaced (the feed, or this agent's own change). */
export function applyLabels(f) {
  const c = state.convs.get(f.conversation_id);
  if (!c) return;
  c.labels = f.labels;
  emit('labels', c);
  emit('convs');
}

/** A contact's name changed: every row of theirs shows it. */
export function applyContact(f) {
  for (const c of state.convs.values()) {
    if (c.contact_id === f.contact_id) c.contact_name = f.name || null;
  }
  emit('contact', f);
  emit('convs');
}

/** A customer rated a conversation. */
export function applyRating(f) {
  const c = state.convs.get(f.conversation_id);
  if (!c) return;
  c.rating = f.score;
  emit('labels', c);
  emit('convs');
}

export async function loadConversations() {
  const { conversations } = await api('/conversations?status=all&limit=500');
  for (const c of conversations) state.convs.set(c.id, c);
  state.lastSeq = Math.max(state.lastSeq, ...conversations.map((c) => c.last_message_id ?? 0));
  emit('convs');
}

/**
 * Fetches every row again (contacts linked: rows changed contact, one may have closed) without
 * moving the feed's resume point, so frames still queued are applied, not skipped.
 */
export async function refreshConversations() {
  const { conversations } = await api('/conversations?status=all&limit=500');
  for (const c of conversations) state.convs.set(c.id, c);
  emit('convs');
  return new Set(conversations.map((c) => c.id));
}

/** The row for an id, fetched when the feed names a conversation not loaded yet. */
export async function conversation(id) {
  if (!state.convs.has(id)) {
    const row = await api(`/conversations/${id}`).catch(() => null);
    if (row && !state.convs.has(id)) state.convs.set(id, row);
  }
  return state.convs.get(id);
}

export const preview = (m) => m.text || (m.attachment ? t('msg.image') : '');

export async function applyMessage(m) {
  const known = state.convs.get(m.conversation_id);
  const c = known ?? (await conversation(m.conversation_id));
  if (!c) return;
  if (known && m.id > (c.last_message_id ?? 0)) {
    c.last_message_id = m.id;
    c.last_message = preview(m);
    c.last_activity_at = Math.max(c.last_activity_at, m.created_at);
    c.message_count += 1;
  }
  if (m.sender === 'visitor') state.typing.delete(c.id);
  emit('message', m);
  emit('convs');
}

export async function applyEvent(f) {
  const known = state.convs.get(f.conversation_id);
  const c = known ?? (await conversation(f.conversation_id));
  if (!c) return;
  if (known) {
    c.status = f.to;
    c.assignee = f.assignee;
    c.last_activity_at = Math.max(c.last_activity_at, f.at);
  }
  const list = state.events.get(c.id) ?? [];
  if (!list.some((e) => e.seq === f.seq)) list.push(f);
  state.events.set(c.id, list);
  emit('event', f);
  emit('convs');
}

/** A reply's delivery changed: kept (the newest few thousand) so a thread drawn later shows it. */
export function applyDelivery(f) {
  for (const id of f.message_ids ?? []) {
    state.deliveries.delete(id);
    state.deliveries.set(id, { state: f.state, error: f.error ?? null });
  }
  while (state.deliveries.size > 5000) state.deliveries.delete(state.deliveries.keys().next().value);
  emit('delivery', f);
}

/**
 * Two contacts became one: rows changed contact, and one conversation may have folded into
 * another, so the list is fetched again before the views hear of it. The agent who linked
 * hears of it twice (the API's answer, then the feed's frame): the second is marked again.
 */
const linked = new Set();
export async function applyLinked(f) {
  const key = `${f.contact_id}<${f.merged_contact_id}`;
  const again = linked.has(key);
  linked.add(key);
  if (!again) {
    const listed = await refreshConversations().catch(() => null);
    // A conversation folded into another is closed, and no longer listed by newer daemons:
    // a row of the merged contact the list did not bring back is that one (or one too old to
    // be listed, which the inbox can do without).
    for (const c of [...state.convs.values()]) {
      const folded = listed
        ? !listed.has(c.id) && (c.id === f.closed_conversation_id || c.contact_id === f.merged_contact_id)
        : c.id === f.closed_conversation_id;
      if (folded) state.convs.delete(c.id);
    }
    emit('convs');
  }
  emit('linked', { ...f, again });
}

/** The customer has seen the shop's messages up to f.message_id (not stored: live only). */
export function applyRead(f) {
  if ((state.readUpTo.get(f.conversation_id) ?? 0) >= f.message_id) return;
  state.readUpTo.set(f.conversation_id, f.message_id);
  emit('read', f.conversation_id);
}

export function applyTyping(f) {
  state.typing.set(f.conversation_id, Date.now() + 5000);
  emit('typing', f.conversation_id);
}

/** "Assigned to Li", "Resolved by Wang", ... for a status-change frame. */
export function eventText(f) {
  const by = f.by != null ? agentName(f.by) : null;
  const reopened = f.from === 'resolved' || f.from === 'idle';
  if (reopened && by && f.to !== 'resolved') return t('ev.reopened_by', { by });
  if (f.to === 'in_progress') {
    const to = agentName(f.assignee);
    if (f.from === 'in_progress') return t('ev.transferred', { to });
    return by && f.by !== f.assignee ? t('ev.assigned_by', { to, by }) : t('ev.assigned', { to });
  }
  if (f.to === 'resolved') return by ? t('ev.resolved_by', { by }) : t('ev.resolved');
  if (f.to === 'idle') return t('ev.idle');
  if (f.to === 'waiting') return f.from === 'in_progress' ? t('ev.waiting') : t('ev.new');
  return `${f.from} → ${f.to}`;
}
