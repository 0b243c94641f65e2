// The inbox pane: filter tabs (mine, unassigned, all open, resolved) with counts, narrowed by
// label and by agent, and every conversation of the filter, newest activity first: channel,
// contact, last message, waiting time, assignee, labels, unread count. A selection mode
// resolves several at once. Redrawn from the state (coalesced to one frame).
import { h, fmtAgo, store } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { api, errText } from './api.js';
import { state, on, unread, agentName, isOpen, toast, refreshConversations } from './state.js';
import { labelChips } from './labels.js';

const FILTERS = {
  mine: (c) => isOpen(c) && c.assignee === state.me.id,
  unassigned: (c) => isOpen(c) && c.assignee == null,
  open: isOpen,
  resolved: (c) => !isOpen(c),
};
const CHANNELS = { web: 'Web', wechat: 'WX', mqtt: 'IoT', http: 'API', api: 'API' };

/** A round badge naming the channel (text, so it needs no icon font or emoji). */
export function channelBadge(channel) {
  const known = channel in CHANNELS;
  return h('span', {
    class: `chan ch-${known ? channel : 'other'}`, title: channel ?? '', 'aria-label': channel ?? '',
  }, known ? CHANNELS[channel] : (channel ?? '?').slice(0, 3));
}

/** A channel's name for people: "WeChat"/"微信" for the known ones, the configured name otherwise. */
export function channelName(channel) {
  if (!channel) return '?';
  const key = `chan.${channel}`;
  const text = t(key);
  return text === key ? channel : text;
}

let filter = store.get('kefud.filter', 'open');
if (!(filter in FILTERS)) filter = 'open';
// Narrowing: a label id and an agent id ('' for any), kept across reloads.
let byLabel = store.get('kefud.filter.label', '');
let byAgent = store.get('kefud.filter.agent', '');
let list;
let tabs;
let narrow;
let bulk;
let selecting = false;
const selected = new Set();
let pending = false;

const narrowed = (c) => (byLabel === '' || (c.labels ?? []).includes(Number(byLabel)))
  && (byAgent === '' || c.assignee === Number(byAgent));

export function mountInbox(root) {
  tabs = h('div', { class: 'tabs', role: 'tablist', 'aria-label': t('inbox.filters') },
    Object.keys(FILTERS).map((f) => h('button', {
      type: 'button', role: 'tab', class: 'tab', 'data-filter': f,
      onclick: () => { filter = f; store.set('kefud.filter', f); render(); },
    }, h('span', { text: t(`filter.${f}`) }), h('span', { class: 'count' }))));
  narrow = h('div', { class: 'inbox-narrow' });
  bulk = h('div', { class: 'bulk-bar', hidden: true });
  list = h('ul', { class: 'conv-list', 'aria-label': t('inbox.title') });
  root.append(tabs, narrow, bulk, list);
  on('convs', redraw);
  setInterval(redraw, 30000);
  render();
}

/** Schedules one redraw for however many changes arrive in this frame. */
function redraw() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    render();
  });
}

function render() {
  const all = [...state.convs.values()];
  for (const tab of tabs.children) {
    const f = tab.dataset.filter;
    tab.setAttribute('aria-selected', String(f === filter));
    tab.lastChild.textContent = f === 'resolved' ? '' : String(all.filter(FILTERS[f]).length);
  }
  drawNarrow();
  const rows = all.filter(FILTERS[filter]).filter(narrowed)
    .sort((a, b) => b.last_activity_at - a.last_activity_at || b.id - a.id);
  for (const id of selected) if (!rows.some((c) => c.id === id && isOpen(c))) selected.delete(id);
  drawBulk();
  const focused = document.activeElement?.closest?.('.conv')?.dataset.id;
  list.replaceChildren(...(rows.length ? rows.map(item) : [h('li', { class: 'empty', text: t('inbox.empty') })]));
  if (focused) list.querySelector(`.conv[data-id="${focused}"]`)?.focus();
}

/** The label and agent pickers, and the button that starts selecting. */
function drawNarrow() {
  const key = JSON.stringify([[...state.labels.values()], [...state.agents.keys()], byLabel, byAgent, selecting]);
  if (narrow.dataset.key === key) return;
  narrow.dataset.key = key;
  if (byLabel !== '' && !state.labels.has(Number(byLabel))) byLabel = '';
  if (byAgent !== '' && state.agents.size && !state.agents.has(Number(byAgent))) byAgent = '';
  const pick = (name, value, options, set) => h('select', {
    class: 'narrow-select', name, 'aria-label': t(`inbox.by_${name}`),
    onchange: (e) => { set(e.target.value); render(); },
  }, h('option', { value: '', text: t(`inbox.any_${name}`) }),
  options.map(([v, text]) => h('option', { value: String(v), text, selected: String(v) === String(value) })));
  // No labels defined: no label picker (replaceChildren would show a null as text).
  narrow.replaceChildren(...[
    state.labels.size ? pick('label', byLabel, [...state.labels.values()].map((l) => [l.id, l.name]),
      (v) => { byLabel = v; store.set('kefud.filter.label', v); }) : null,
    pick('agent', byAgent, [...state.agents.values()].map((a) => [a.id, a.display_name || a.username]),
      (v) => { byAgent = v; store.set('kefud.filter.agent', v); }),
    h('button', {
      type: 'button', class: `btn small${selecting ? ' primary' : ''}`, 'aria-pressed': String(selecting),
      'data-action': 'select', text: t(selecting ? 'inbox.select_done' : 'inbox.select'),
      onclick: () => { selecting = !selecting; selected.clear(); render(); },
    })].filter(Boolean));
}

/** While selecting: how many are selected, and resolving them. */
function drawBulk() {
  bulk.hidden = !selecting;
  if (!selecting) return;
  bulk.replaceChildren(
    h('span', { class: 'muted', text: t('inbox.selected', { n: selected.size }) }),
    h('button', {
      type: 'button', class: 'btn primary small', 'data-action': 'bulk-resolve',
      disabled: selected.size === 0, text: t('inbox.resolve_selected'), onclick: resolveSelected,
    }));
}

async function resolveSelected(e) {
  const ids = [...selected];
  e.target.disabled = true;
  try {
    const r = await api('/conversations/resolve', { method: 'POST', body: { ids } });
    toast(t('inbox.resolved_n', { n: r.resolved.length })
      + (r.refused.length ? ` · ${r.refused.map((x) => `#${x.id}: ${x.message}`).join('; ')}` : ''));
  } catch (e) {
    toast(errText(e));
  }
  selected.clear();
  await refreshConversations().catch(() => {});
  render();
}

function item(c) {
  if (selecting && isOpen(c)) {
    return h('li', { class: 'selectable' },
      h('label', { class: 'conv select-row' },
        h('input', {
          type: 'checkbox', checked: selected.has(c.id), 'data-id': c.id,
          'aria-label': t('inbox.select_one', { name: contactName(c) }),
          onchange: (e) => { if (e.target.checked) selected.add(c.id); else selected.delete(c.id); drawBulk(); },
        }),
        channelBadge(c.channel),
        h('span', { class: 'conv-body' },
          h('span', { class: 'row' }, h('span', { class: 'name', text: contactName(c) })),
          h('span', { class: 'row' }, h('span', { class: 'preview', text: preview(c) })))));
  }
  const n = unread(c);
  const current = c.id === state.openId;
  let meta;
  if (c.status === 'waiting') {
    meta = h('span', { class: 'chip warn', text: t('inbox.waiting', { ago: fmtAgo(c.last_activity_at) }) });
  } else if (c.status === 'in_progress') {
    meta = h('span', { class: 'chip', text: c.assignee === state.me.id ? t('inbox.you') : agentName(c.assignee) });
  } else {
    meta = h('span', { class: 'chip muted', text: t(`status.${c.status}`) });
  }
  return h('li', {},
    h('a', {
      href: `#/c/${c.id}`, class: `conv${current ? ' active' : ''}${n ? ' unread' : ''}`,
      'data-id': c.id, 'aria-current': current ? 'true' : null,
    },
    channelBadge(c.channel),
    h('span', { class: 'conv-body' },
      h('span', { class: 'row' },
        h('span', { class: 'name', text: contactName(c) }),
        h('span', { class: 'ago', text: fmtAgo(c.last_activity_at) })),
      h('span', { class: 'row' },
        h('span', { class: 'preview', text: preview(c) }),
        n ? h('span', { class: 'badge', text: String(n), 'aria-label': t('inbox.unread', { n }) }) : null),
      h('span', { class: 'row' }, meta, labelChips(c)))));
}

export const contactName = (c) => c.contact_name || (c.external_id ?? `#${c.contact_id}`);

// A message's text is empty only when it carries an image.
const preview = (c) => c.last_message || (c.last_message_id ? t('msg.image') : '');
