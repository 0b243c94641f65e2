// The inbox pane: filter tabs (mine, unassigned, all open, resolved) with counts, and every
// conversation of the filter, newest activity first: channel, contact, last message, waiting
// time, assignee, unread count. Redrawn from the state (coalesced to one frame).
import { h, fmtAgo, store } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { state, on, unread, agentName, isOpen } from './state.js';

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
let list;
let tabs;
let pending = false;

export function mountInbox(root) {
  tabs = h('div', { class: 'tabs', role: 'tablist', 'aria-label': t('inbox.filters') },
    Object.keys(FILTERS).map((f) => h('button', {
      type: 'button', role: 'tab', class: 'tab', 'data-filter': f,
      onclick: () => { filter = f; store.set('kefud.filter', f); render(); },
    }, h('span', { text: t(`filter.${f}`) }), h('span', { class: 'count' }))));
  list = h('ul', { class: 'conv-list', 'aria-label': t('inbox.title') });
  root.append(tabs, list);
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
  const rows = all.filter(FILTERS[filter])
    .sort((a, b) => b.last_activity_at - a.last_activity_at || b.id - a.id);
  const focused = document.activeElement?.closest?.('.conv')?.dataset.id;
  list.replaceChildren(...(rows.length ? rows.map(item) : [h('li', { class: 'empty', text: t('inbox.empty') })]));
  if (focused) list.querySelector(`.conv[data-id="${focused}"]`)?.focus();
}

function item(c) {
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
      h('span', { class: 'row' }, meta))));
}

export const contactName = (c) => c.external_id ?? `#${c.contact_id}`;

// A message's text is empty only when it carries an image.
const preview = (c) => c.last_message || (c.last_message_id ? t('msg.image') : '');
