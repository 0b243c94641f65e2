// Cluster mode in the console: who holds a conversation across the shop's boxes. The agents
// of the other boxes (as their boxes last published them, refreshed every 15 s) are offered
// in the thread's transfer menu; a conversation held on another box shows who holds it and
// where; two holders — assignments made while the boxes could not reach each other — show a
// conflict banner until someone assigns it again ("Keep it" assigns it to the agent looking).
import { h } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { api } from './api.js';
import { state, emit } from './state.js';

const REFRESH_MS = 15000;
let timer = null;

/** Loads this box's node id and the other boxes' agents; again every 15 s in cluster mode. */
export async function loadClusterAgents() {
  clearTimeout(timer);
  try {
    const { enabled, view } = await api('/cluster');
    state.node = view.node;
    state.elsewhere = enabled
      ? view.peers.flatMap((p) => (p.agents ?? []).map((a) => ({
        ...a, node: p.node, presence: p.online ? a.presence : 'offline',
      })))
      : [];
    emit('convs');
    if (enabled) timer = setTimeout(loadClusterAgents, REFRESH_MS);
  } catch {
    timer = setTimeout(loadClusterAgents, REFRESH_MS);
  }
}

/** A conversation's holders changed (the feed). */
export function applyHolders(f) {
  const c = state.convs.get(f.conversation_id);
  if (!c) return;
  c.holders = f.holders;
  c.conflict = f.conflict || undefined;
  emit('labels', c);
  emit('convs');
}

const box = (node) => t('thread.box', { node: node.slice(0, 8) });

/** What the header shows of the holders: who on another box, or the conflict. */
export function holdersBox(c, settle) {
  const holders = c.holders ?? [];
  if (c.conflict) {
    const names = holders.map((x) => `${x.name || `#${x.agent}`} (${box(x.node)})`).join(', ');
    return h('div', { class: 'conflict-banner', role: 'alert' },
      h('span', { text: t('thread.conflict', { names }) }),
      h('button', { type: 'button', class: 'btn primary', text: t('thread.keep'), onclick: settle }));
  }
  const away = holders.find((x) => x.node !== state.node);
  return away ? h('span', { class: 'assignee elsewhere', text: t('thread.held_elsewhere', { name: away.name || `#${away.agent}`, box: box(away.node) }) }) : null;
}

/** The transfer menu's options for the other boxes' agents (value "node:id"). */
export function elsewhereOptions(c) {
  return (state.elsewhere ?? [])
    .filter((a) => !(c.holders ?? []).some((x) => x.node === a.node && x.agent === a.id))
    .map((a) => h('option', {
      value: `${a.node}:${a.id}`,
      text: `${a.name || `#${a.id}`} · ${box(a.node)}${a.presence === 'online' ? ' ●' : ''}`,
    }));
}

/** The assign request's body for a transfer menu value. */
export function transferBody(value) {
  const [node, id] = value.includes(':') ? value.split(':') : [null, value];
  return node ? { agent_id: Number(id), node } : { agent_id: Number(id) };
}
