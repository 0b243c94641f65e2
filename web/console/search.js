// Search over every message (the daemon's full-text index): a query box whose query lives in
// the URL (#/search?q=...), and results that link to their conversation, matches marked.
import { h, fmtTime } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { api, errText } from './api.js';
import { agentName } from './state.js';

export async function showSearch(root, q) {
  const input = h('input', {
    class: 'input', type: 'search', name: 'q', value: q, 'aria-label': t('search.label'),
    placeholder: t('search.placeholder'), autocomplete: 'off',
  });
  const results = h('div', { class: 'results', 'aria-live': 'polite' });
  root.replaceChildren(h('section', { class: 'page search' },
    h('h1', { text: t('nav.search') }),
    h('form', {
      class: 'search-form', role: 'search',
      onsubmit: (e) => {
        e.preventDefault();
        location.hash = `#/search?q=${encodeURIComponent(input.value.trim())}`;
      },
    }, input, h('button', { type: 'submit', class: 'btn primary', text: t('search.go') })),
    results));
  input.focus();
  if (!q) return;
  results.replaceChildren(h('p', { class: 'muted', text: t('common.loading') }));
  let messages;
  let contacts;
  try {
    ({ messages, contacts = [] } = await api(`/search?q=${encodeURIComponent(q)}&limit=100`));
  } catch (e) {
    results.replaceChildren(h('p', { class: 'error', text: errText(e) }));
    return;
  }
  const hint = q.length < 3 ? h('p', { class: 'muted', text: t('search.short') }) : null;
  const people = contacts.length ? h('section', { class: 'contact-hits' },
    h('h2', { text: t('search.contacts') }),
    h('ul', { class: 'result-list' }, contacts.map((c) => h('li', {},
      h(c.conversation_id ? 'a' : 'span', { class: 'result', href: c.conversation_id ? `#/c/${c.conversation_id}` : null },
        h('span', { class: 'text' }, marked(c.name || t('contact.id', { id: c.contact_id }), q)),
        h('span', { class: 'meta' }, marked([c.phone, c.email].filter(Boolean).join(' · '), q))))))) : null;
  if (!messages.length) {
    if (people) {
      results.replaceChildren(people);
      return;
    }
    results.replaceChildren(h('p', { class: 'muted', text: t('search.none') }), hint ?? '');
    return;
  }
  results.replaceChildren(
    people ?? '',
    h('p', { class: 'muted', text: t('search.count', { n: messages.length }) }),
    hint ?? '',
    h('ul', { class: 'result-list' }, messages.map((m) => h('li', {},
      h('a', { href: `#/c/${m.conversation_id}`, class: 'result' },
        h('span', { class: 'meta' },
          `#${m.conversation_id}${m.contact_name ? ` · ${m.contact_name}` : ''} · ${m.sender === 'agent' ? agentName(m.agent_id) : t(`sender.${m.sender}`)} · ${fmtTime(m.created_at)}`),
        h('span', { class: 'text' }, marked(m.text, q)))))));
}

/** The text with each occurrence of a query word wrapped in <mark> (built as nodes). */
function marked(text, q) {
  const words = q.split(/\s+/).filter(Boolean).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  if (!words.length) return [text];
  return text.split(new RegExp(`(${words.join('|')})`, 'gi'))
    .map((part, i) => (i % 2 ? h('mark', { text: part }) : part));
}
