// The contact panel beside a conversation: the customer's channels, their other
// conversations (links), and the summary of this one (the extractive sentences and the facts
// found in it, or the LAN language model's text when the daemon has one configured).
import { h, fmtTime } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { api, errText } from './api.js';
import { channelBadge, contactName } from './inbox.js';

let shown = 0;

export async function showContact(root, conv) {
  const token = ++shown;
  const close = h('button', {
    type: 'button', class: 'icon-btn', 'aria-label': t('contact.close'),
    onclick: () => document.body.classList.remove('contact-open'),
  }, '×');
  const body = h('div', { class: 'contact-body', 'aria-busy': 'true' }, h('p', { class: 'muted', text: t('common.loading') }));
  root.replaceChildren(h('header', { class: 'pane-head' }, h('h2', { text: t('contact.title') }), close), body);

  const [contact, summary] = await Promise.allSettled([
    api(`/contacts/${conv.contact_id}`),
    api(`/conversations/${conv.id}/summary`),
  ]);
  if (token !== shown) return;
  const ids = contact.value?.identities ?? [{ channel: conv.channel, external_id: conv.external_id }];
  const others = contact.value?.conversations ?? [];
  body.replaceChildren(
    h('section', {},
      h('h3', { text: t('contact.channels') }),
      h('ul', { class: 'plain' }, ids.map((i) => h('li', {},
        channelBadge(i.channel),
        h('span', { text: `${i.channel ?? '?'} · ${i.external_id ?? contactName(conv)}` }))))),
    h('section', {},
      h('h3', { text: t('contact.history') }),
      others.length
        ? h('ul', { class: 'plain' }, others.map((c) => h('li', {},
          h('a', { href: `#/c/${c.id}`, 'aria-current': c.id === conv.id ? 'true' : null },
            `#${c.id} · ${t(`status.${c.status}`)} · ${fmtTime(c.last_activity_at)} · ${t('contact.messages', { n: c.message_count })}`))))
        : h('p', { class: 'muted', text: contact.status === 'rejected' ? errText(contact.reason) : t('contact.none') })),
    summarySection(summary));
  body.removeAttribute('aria-busy');
}

function summarySection(result) {
  const s = result.value;
  const section = h('section', {}, h('h3', { text: t('contact.summary') }));
  if (!s) {
    section.append(h('p', { class: 'muted', text: errText(result.reason) }));
    return section;
  }
  if (s.llm_summary) section.append(h('p', { class: 'summary-text', text: s.llm_summary }));
  else if (s.summarised) {
    section.append(h('ul', { class: 'plain summary' }, s.summary.sentences.map((x) => h('li', {},
      h('strong', { text: `${t(`sender.${x.sender}`)}: ` }), x.text))));
  } else {
    section.append(h('p', { class: 'muted', text: t('contact.short', { n: s.messages }) }));
  }
  const facts = [
    ['contact.orders', s.summary.order_numbers],
    ['contact.phones', s.summary.phone_numbers],
    ['contact.amounts', s.summary.amounts],
    ['contact.topics', s.summary.topics],
  ].filter(([, v]) => v?.length);
  if (facts.length) {
    section.append(h('dl', { class: 'facts' }, facts.flatMap(([k, v]) => [
      h('dt', { text: t(k) }),
      h('dd', {}, v.map((x) => h('span', { class: 'chip', text: String(x) }))),
    ])));
  }
  return section;
}
