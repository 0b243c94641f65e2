// The contact panel beside a conversation: who they are (name, phone, e-mail, notes, which
// agents edit), the contact's id and channels, linking another
// contact that is the same person on another channel (picked from the contacts of the loaded
// conversations, or by id), their other conversations (links), and the summary of this one
// (the extractive sentences and the facts found in it, or the LAN language model's text when
// the daemon has one configured).
import { h, fmtTime } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { api, errText } from './api.js';
import { state, toast, applyLinked, applyContact } from './state.js';
import { channelBadge, channelName, contactName } from './inbox.js';

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
    contact.value ? profileSection(conv.contact_id, contact.value) : null,
    h('section', {},
      h('h3', { text: t('contact.channels') }),
      h('p', { class: 'muted small contact-id', text: t('contact.id', { id: conv.contact_id }) }),
      h('ul', { class: 'plain identities' }, ids.map((i) => h('li', {},
        channelBadge(i.channel),
        h('span', { class: 'ident', title: i.external_id ?? '' },
          h('strong', { text: channelName(i.channel) }), ` · ${i.external_id ?? contactName(conv)}`)))),
      linkSection(conv)),
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

// ---- who the customer is: name, phone, e-mail, notes ---------------------------------------

/** The contact's profile as a form: saved (journaled) with one click; fields left empty are
 * removed. */
function profileSection(id, contact) {
  const field = (name, type, value) => h('label', { class: 'field' },
    h('span', { text: t(`contact.${name}`) }),
    type === 'textarea'
      ? h('textarea', { class: 'input', name, rows: 3, maxlength: 2000, value })
      : h('input', { class: 'input', name, type, value, maxlength: name === 'email' ? 200 : 100, autocomplete: 'off' }));
  const status = h('p', { class: 'muted small', role: 'status' });
  const form = h('form', {
    class: 'profile-form',
    onsubmit: async (e) => {
      e.preventDefault();
      const data = Object.fromEntries(new FormData(form));
      status.textContent = t('common.saving');
      try {
        const saved = await api(`/contacts/${id}`, { method: 'PUT', body: data });
        applyContact({ contact_id: id, name: saved.name });
        status.textContent = t('common.saved');
      } catch (err) {
        status.textContent = errText(err);
      }
    },
  },
  field('name', 'text', contact.name ?? ''),
  field('phone', 'tel', contact.phone ?? ''),
  field('email', 'email', contact.email ?? ''),
  field('notes', 'textarea', contact.notes ?? ''),
  h('button', { type: 'submit', class: 'btn primary small', text: t('common.save') }),
  status);
  return h('section', {}, h('h3', { text: t('contact.profile') }), form);
}

// ---- linking another contact ---------------------------------------------------------------

const MAX_CANDIDATES = 8;

/** The other contacts of the loaded conversations, newest activity first, matching q. */
function candidates(self, q) {
  const byContact = new Map();
  const rows = [...state.convs.values()].sort((a, b) => b.last_activity_at - a.last_activity_at);
  for (const c of rows) {
    if (c.contact_id === self) continue;
    const seen = byContact.get(c.contact_id);
    if (seen) seen.texts.push(c.last_message ?? '');
    else byContact.set(c.contact_id, { id: c.contact_id, row: c, texts: [c.last_message ?? ''] });
  }
  const query = q.trim().toLowerCase();
  const asId = /^#?(\d+)$/.exec(query);
  const list = [...byContact.values()].filter((x) => !query
    || (asId && String(x.id) === asId[1])
    || [contactName(x.row), x.row.channel ?? '', channelName(x.row.channel), `#${x.id}`, ...x.texts]
      .some((s) => s.toLowerCase().includes(query)));
  // An id typed in full names a contact even when none of its conversations is loaded.
  if (asId && Number(asId[1]) !== self && Number(asId[1]) > 0 && !byContact.has(Number(asId[1]))) {
    list.unshift({ id: Number(asId[1]), row: null, texts: [] });
  }
  return list.slice(0, MAX_CANDIDATES);
}

function linkSection(conv) {
  const self = conv.contact_id;
  const toggle = h('button', { type: 'button', class: 'btn small-btn', text: t('contact.link'), 'aria-expanded': 'false' });
  const search = h('input', {
    class: 'input', type: 'search', autocomplete: 'off',
    placeholder: t('contact.link_search'), 'aria-label': t('contact.link_search'),
  });
  const list = h('ul', { class: 'plain link-list', 'aria-label': t('contact.link_results') });
  const confirm = h('div', { class: 'link-confirm', role: 'group', hidden: true });
  const box = h('div', { class: 'link-box', hidden: true },
    h('p', { class: 'muted small', text: t('contact.link_help') }), search, list, confirm);

  const paint = () => {
    const found = candidates(self, search.value);
    list.replaceChildren(...(found.length ? found.map((x) => {
      const name = x.row ? contactName(x.row) : t('contact.link_by_id', { id: x.id });
      return h('li', {}, h('button', {
        type: 'button', class: 'link-cand', onclick: () => ask(x.id, name),
      },
      channelBadge(x.row?.channel ?? '?'),
      h('span', { class: 'cand-body' },
        h('span', { class: 'name', text: name }),
        h('span', { class: 'muted small cand-meta', text: x.row ? `#${x.id} · ${x.row.last_message ?? ''}` : `#${x.id}` }))));
    }) : [h('li', { class: 'muted small', text: t('contact.link_none') })]));
  };
  const ask = (id, name) => {
    const go = h('button', { type: 'button', class: 'btn primary', text: t('contact.link_do') });
    const cancel = h('button', {
      type: 'button', class: 'btn', text: t('contact.link_cancel'),
      onclick: () => { confirm.hidden = true; list.hidden = false; search.disabled = false; search.focus(); },
    });
    const error = h('p', { class: 'error small', role: 'alert' });
    go.onclick = async () => {
      go.disabled = true;
      cancel.disabled = true;
      error.textContent = '';
      try {
        const r = await api(`/contacts/${self}/link`, { method: 'POST', body: { contact_id: id } });
        toast(t('contact.linked'));
        // The panel, the thread and the inbox redraw from this (and once more from the feed).
        await applyLinked({
          contact_id: self, merged_contact_id: id, closed_conversation_id: null, conversation_id: r?.conversation_id ?? null,
        });
      } catch (e) {
        if (e.status !== 401) error.textContent = errText(e);
        go.disabled = false;
        cancel.disabled = false;
      }
    };
    confirm.replaceChildren(
      h('p', { text: t('contact.link_confirm', { name, id }) }),
      error,
      h('div', { class: 'buttons' }, cancel, go));
    confirm.setAttribute('aria-label', t('contact.link_confirm', { name, id }));
    confirm.hidden = false;
    list.hidden = true;
    search.disabled = true;
    go.focus();
  };
  search.addEventListener('input', paint);
  toggle.onclick = () => {
    box.hidden = !box.hidden;
    toggle.setAttribute('aria-expanded', String(!box.hidden));
    if (!box.hidden) {
      confirm.hidden = true;
      list.hidden = false;
      search.disabled = false;
      paint();
      search.focus();
    }
  };
  return h('div', { class: 'link' }, toggle, box);
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
