// The "Shops in this cluster" card of the Shop & channels page: this box's node id and, in
// cluster mode, the boxes heard from (online, what is still to fetch from each, clock skew,
// their agents with presence and load), operations waiting for a gap, the conversations in
// conflict (assigned twice while boxes were apart: each links to its thread), and the link's
// counters. Redrawn every 5 s while the card is on the page.
import { h } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { api, errText } from './api.js';
import { state } from './state.js';
import { contactName } from './inbox.js';

const REFRESH_MS = 5000;

/** Draws GET /cluster into box, again every 5 s for as long as box is on the page. */
export async function refreshCluster(box) {
  if (!box.isConnected) return;
  if (document.visibilityState !== 'hidden') {
    try {
      const { enabled, view } = await api('/cluster');
      const conflicts = [...state.convs.values()].filter((c) => c.conflict);
      const key = JSON.stringify([enabled, view.node, view.connected, view.in_sync, view.waiting, view.peers,
        conflicts.map((c) => c.id)]);
      if (box.dataset.key !== key) {
        box.dataset.key = key;
        box.replaceChildren(clusterCard(enabled, view, conflicts));
      }
    } catch (e) {
      if (e.status === 401) return;
      box.dataset.key = '';
      box.replaceChildren(h('p', { class: 'card error', text: errText(e) }));
    }
  }
  setTimeout(() => refreshCluster(box), REFRESH_MS);
}

function agentLine(a, online) {
  const presence = online ? a.presence : 'offline';
  return h('li', { class: 'peer-agent' },
    h('span', { class: `dot p-${presence}`, 'aria-hidden': 'true' }),
    h('span', { text: a.name || `#${a.id}` }), ' ',
    h('span', { class: 'muted small', text: `${t(`presence.${presence}`)} · ${a.open}/${a.capacity}` }));
}

function clusterCard(enabled, view, conflicts) {
  const node = h('p', {}, t('cluster.this_box'), ' ', h('code', { class: 'node-id', text: view.node }));
  if (!enabled) return h('div', { class: 'card cluster' }, node, h('p', { class: 'muted', text: t('cluster.off') }));
  const linkState = !view.connected ? 'disconnected' : view.in_sync ? 'connected' : 'connecting';
  const stateText = !view.connected ? t('cluster.disconnected') : view.in_sync ? t('cluster.in_sync') : t('cluster.catching_up');
  const peers = (view.peers ?? []).map((p) => {
    const behind = Object.values(p.behind_peer ?? {}).reduce((a, b) => a + b, 0);
    return h('li', { class: 'peer', 'data-node': p.node },
      h('span', { class: `dot c-${p.online ? 'connected' : 'disconnected'}`, 'aria-hidden': 'true' }),
      h('code', { text: p.node }), ' ',
      h('span', { class: 'muted small', text: [
        p.online ? t('cluster.online') : t('cluster.offline'),
        t('cluster.last_seen', { time: new Date(p.last_seen_ms).toLocaleTimeString() }),
        behind ? t('cluster.behind', { n: behind }) : null,
        Math.abs(p.skew_ms) >= 1000 ? t('cluster.skew', { s: (p.skew_ms / 1000).toFixed(1) }) : null,
      ].filter(Boolean).join(' · ') }),
      p.agents?.length ? h('ul', { class: 'peer-agents' }, p.agents.map((a) => agentLine(a, p.online))) : null);
  });
  return h('article', { class: 'card adapter cluster' },
    h('header', {},
      h('span', { class: `dot c-${linkState}`, 'aria-hidden': 'true' }),
      h('strong', { text: view.cluster }),
      h('span', { class: `chip c-${linkState}`, text: stateText })),
    node,
    view.waiting ? h('p', { class: 'muted small', text: t('cluster.waiting', { n: view.waiting }) }) : null,
    peers.length ? h('ul', { class: 'peers' }, peers) : h('p', { class: 'muted', text: t('cluster.alone') }),
    conflicts.length ? h('div', { class: 'conflicts', role: 'status' },
      h('strong', { text: t('cluster.conflicts', { n: conflicts.length }) }),
      h('ul', {}, conflicts.map((c) => h('li', {},
        h('a', { href: `#/c/${c.id}`, text: contactName(c) }), ' ',
        h('span', { class: 'muted small', text: (c.holders ?? []).map((x) => x.name || `#${x.agent}`).join(' / ') })))))
      : null,
    h('dl', { class: 'counters' }, Object.entries(view.counters ?? {}).flatMap(([k, v]) => [
      h('dt', { text: k.replace(/_/g, ' ') }), h('dd', { text: String(v) })])));
}
