// Admin pages: agents (add, role, disable, teams, capacity, reset password), canned replies
// (with the placeholders they may hold), business hours (weekday intervals, holidays, the
// away message; open or closed now), the chat address as a printable QR code,
// the knowledge base (edit, delete, import a CSV/JSONL file, export CSV), the shop's name
// with the web widget's one-line snippet, the full-page chat address and the channel
// connections (MQTT, webhooks, WeChat: state, detail, counters, refreshed every 5 s while the
// page is open), the reports (reports.js), and updates
// (the running and the previous version, the last update's outcome, uploading a signed bundle,
// rolling back); labels are in admin-labels.js, the customers' side (the widget's form,
// signed identities) in customers.js, HTTPS (trusting the box's CA on each device) in https.js.
import { h } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { api, errText } from './api.js';
import { state, emit, toast, loadAgents } from './state.js';
import { field, input, area, check, run, dangerButton, submitForm } from './forms.js';
import { labels } from './admin-labels.js';
import { customers } from './customers.js';
import { reports } from './reports.js';
import { PLACEHOLDERS } from './placeholders.js';
import { httpsPage } from './https.js';
import { httpBase } from '../shared/trust.js';
import { refreshCluster } from './cluster.js';

const PAGES = { agents, canned, kb, channel, hours, reports, updates, labels, customers, https: httpsPage };

export async function showAdmin(root, page) {
  if (!state.me.is_admin) {
    root.replaceChildren(h('section', { class: 'page' }, h('p', { text: t('admin.only') })));
    return;
  }
  if (!(page in PAGES)) page = 'agents';
  const body = h('div', { class: 'admin-body' }, h('p', { class: 'muted', text: t('common.loading') }));
  root.replaceChildren(h('section', { class: 'page admin' },
    h('h1', { text: t('nav.admin') }),
    h('nav', { class: 'subnav', 'aria-label': t('nav.admin') }, Object.keys(PAGES).map((p) => h('a', {
      href: `#/admin/${p}`, 'aria-current': p === page ? 'page' : null, text: t(`admin.${p}`),
    }))),
    body));
  try {
    await PAGES[page](body);
  } catch (e) {
    body.replaceChildren(h('p', { class: 'error', text: errText(e) }));
  }
}

// ---- agents --------------------------------------------------------------------------------

async function agents(body) {
  await loadAgents();
  const list = [...state.agents.values()].sort((a, b) => a.id - b.id);
  body.replaceChildren(
    h('h2', { text: t('admin.agents') }),
    h('ul', { class: 'cards' }, list.map((a) => h('li', {}, agentCard(a)))),
    h('h2', { text: t('agents.add') }),
    addAgentForm(body));
}

function agentCard(a) {
  const self = a.id === state.me.id;
  const [adminLabel, admin] = check(t('agents.admin'), a.is_admin, self);
  const [disabledLabel, disabled] = check(t('agents.disabled'), a.disabled, self);
  const teams = input({ value: (a.teams ?? []).join(', '), placeholder: t('agents.teams_hint') });
  const capacity = input({ type: 'number', min: 0, max: 1000, value: a.capacity ?? '' });
  const password = input({ type: 'password', minLength: 8, autocomplete: 'new-password', required: true });
  const reset = submitForm([field(t('agents.new_password'), password)], t('agents.set_password'), (btn) => run(btn,
    () => api(`/agents/${a.id}/password`, { method: 'POST', body: { password: password.value } }),
    t('agents.password_set')).then((ok) => { if (ok) reset.hidden = true; }), 'inline-form');
  reset.hidden = true;
  const save = h('button', { type: 'button', class: 'btn primary', text: t('common.save') });
  save.onclick = () => run(save, async () => {
    await api(`/agents/${a.id}`, {
      method: 'PATCH',
      body: {
        is_admin: admin.checked,
        disabled: disabled.checked,
        teams: teams.value.split(/[,，\s]+/).filter(Boolean),
        ...(capacity.value === '' ? {} : { capacity: Number(capacity.value) }),
      },
    });
    await loadAgents();
  });
  return h('article', { class: `card agent${a.disabled ? ' is-disabled' : ''}` },
    h('header', {},
      h('span', { class: `dot p-${a.presence}`, title: t(`presence.${a.presence}`), 'aria-label': t(`presence.${a.presence}`) }),
      h('strong', { text: a.display_name || a.username }),
      h('span', { class: 'muted', text: `@${a.username}` }),
      self ? h('span', { class: 'chip', text: t('inbox.you') }) : null),
    h('div', { class: 'grid' },
      field(t('agents.teams'), teams), field(t('agents.capacity'), capacity),
      adminLabel, disabledLabel),
    h('div', { class: 'buttons' }, save, h('button', {
      type: 'button', class: 'btn', text: t('agents.reset_password'),
      onclick: () => { reset.hidden = !reset.hidden; if (!reset.hidden) password.focus(); },
    })),
    reset);
}

function addAgentForm(body) {
  const username = input({ required: true, pattern: '[a-z0-9_.\\-]{1,32}', autocapitalize: 'none', autocomplete: 'off' });
  const name = input({ required: true });
  const password = input({ type: 'password', required: true, minLength: 8, autocomplete: 'new-password' });
  const [adminLabel, admin] = check(t('agents.admin'), false, false);
  return submitForm([
    h('div', { class: 'grid' },
      field(t('setup.username'), username), field(t('setup.display_name'), name),
      field(t('setup.password'), password), adminLabel),
    h('p', { class: 'muted small', text: t('setup.username_hint') }),
  ], t('agents.add'), async (btn) => {
    const ok = await run(btn, () => api('/agents', {
      method: 'POST',
      body: { username: username.value.trim(), display_name: name.value.trim(), password: password.value, is_admin: admin.checked },
    }), t('agents.added'));
    if (ok) await agents(body);
  });
}

// ---- canned replies --------------------------------------------------------------------

async function canned(body) {
  ({ canned: state.canned } = await api('/canned'));
  const rerender = () => canned(body);
  body.replaceChildren(
    h('h2', { text: t('admin.canned') }),
    h('p', { class: 'muted', text: t('canned.help') }),
    h('p', { class: 'muted placeholders-hint', text: t('canned.placeholders', {
      list: PLACEHOLDERS.map((p) => `{${p}}`).join(', '),
    }) }),
    h('ul', { class: 'cards' }, state.canned.map((c) => h('li', {}, cannedCard(c, rerender)))),
    h('h2', { text: t('canned.add') }),
    cannedForm(null, rerender));
}

function cannedCard(c, rerender) {
  return h('article', { class: 'card' }, cannedForm(c, rerender));
}

function cannedForm(c, rerender) {
  const shortcut = input({ value: c?.shortcut ?? '', required: true, pattern: '\\S+', placeholder: 'hello' });
  const text = area({ value: c?.text ?? '', required: true });
  const form = submitForm([
    field(t('canned.shortcut'), shortcut), field(t('canned.text'), text, 'wide'),
  ], c ? t('common.save') : t('canned.add'), async (btn) => {
    const payload = { shortcut: shortcut.value.trim().replace(/^\//, ''), text: text.value.trim() };
    const ok = await run(btn, () => (c
      ? api(`/canned/${c.id}`, { method: 'PUT', body: payload })
      : api('/canned', { method: 'POST', body: payload })));
    if (ok) rerender();
  }, c ? 'form' : 'card form');
  if (c) form.lastChild.append(dangerButton(async () => {
    await api(`/canned/${c.id}`, { method: 'DELETE' });
    rerender();
  }));
  return form;
}

// ---- knowledge base ----------------------------------------------------------------------

async function kb(body) {
  const { entries } = await api('/kb/entries');
  entries.sort((a, b) => a.intent.localeCompare(b.intent));
  const rerender = () => kb(body);
  const list = h('ul', { class: 'kb-list' });
  const filter = input({ type: 'search', placeholder: t('kb.filter'), 'aria-label': t('kb.filter') });
  const paint = () => {
    const q = filter.value.trim().toLowerCase();
    const shown = entries.filter((e) => !q || [e.intent, e.answer, e.team, ...e.examples].some((x) => x.toLowerCase().includes(q)));
    list.replaceChildren(...shown.map((e) => h('li', {}, kbEntry(e, rerender))));
  };
  filter.addEventListener('input', paint);
  const file = h('input', {
    type: 'file', accept: '.csv,.jsonl,.json,.txt', class: 'visually-hidden', 'aria-label': t('kb.import'),
    onchange: async () => {
      const f = file.files[0];
      if (!f) return;
      const csv = /\.csv$/i.test(f.name);
      await run(importBtn, async () => {
        const r = await api(`/kb/import?format=${csv ? 'csv' : 'jsonl'}`, {
          method: 'POST', raw: true, body: await f.text(), type: csv ? 'text/csv' : 'application/x-ndjson',
        });
        toast(t('kb.imported', { entries: r.entries, examples: r.examples }));
        rerender();
      }, null);
      file.value = '';
    },
  });
  const importBtn = h('button', { type: 'button', class: 'btn', text: t('kb.import'), onclick: () => file.click() });
  const exportBtn = h('button', {
    type: 'button', class: 'btn', text: t('kb.export'),
    onclick: () => run(exportBtn, async () => {
      const blob = await api('/kb/export?format=csv');
      const a = h('a', { href: URL.createObjectURL(blob), download: 'knowledge-base.csv' });
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    }, null),
  });
  body.replaceChildren(
    h('h2', { text: t('admin.kb') }),
    h('p', { class: 'muted', text: t('kb.help', { n: entries.length }) }),
    h('div', { class: 'toolbar' }, filter, importBtn, file, exportBtn),
    list,
    h('h2', { text: t('kb.add') }),
    kbForm(null, rerender));
  paint();
}

function kbEntry(e, rerender) {
  const details = h('details', { class: 'card kb' },
    h('summary', {},
      h('strong', { text: e.intent }),
      e.team ? h('span', { class: 'chip', text: e.team }) : null,
      h('span', { class: 'muted', text: t('kb.examples_n', { n: e.examples.length }) }),
      h('span', { class: 'muted answer', text: e.answer || t('kb.no_answer') })));
  details.addEventListener('toggle', () => {
    if (details.open && details.children.length === 1) details.append(kbForm(e, rerender));
  });
  return details;
}

function kbForm(e, rerender) {
  const intent = input({ required: true, value: e?.intent ?? '' });
  const examples = area({ rows: 5, required: true, value: e?.examples.join('\n') ?? '' });
  const answer = area({ value: e?.answer ?? '' });
  const team = input({ value: e?.team ?? '' });
  const form = submitForm([
    e ? null : field(t('kb.intent'), intent),
    field(t('kb.examples'), examples, 'wide'),
    field(t('kb.answer'), answer, 'wide'),
    h('p', { class: 'muted small', text: t('kb.answer_hint') }),
    field(t('kb.team'), team),
  ], e ? t('common.save') : t('kb.add'), async (btn) => {
    const name = e?.intent ?? intent.value.trim();
    const ok = await run(btn, () => api(`/kb/entries/${encodeURIComponent(name)}`, {
      method: 'PUT',
      body: { examples: examples.value.split('\n').map((x) => x.trim()).filter(Boolean), answer: answer.value.trim(), team: team.value.trim() },
    }));
    if (ok) rerender();
  }, e ? 'form' : 'card form');
  if (e) form.lastChild.append(dangerButton(async () => {
    await api(`/kb/entries/${encodeURIComponent(e.intent)}`, { method: 'DELETE' });
    rerender();
  }));
  return form;
}

// ---- business hours ------------------------------------------------------------------------

const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

/** "09:00-12:00, 13:00-18:00" as [{start, end}]; what does not read as a range is sent as
 * typed, for the server to name. */
function parseIntervals(text) {
  return text.split(/[,，;；]/).map((x) => x.trim()).filter(Boolean).map((x) => {
    const [start = x, end = ''] = x.split(/\s*[-–~—]\s*/);
    return { start: start.trim(), end: end.trim() };
  });
}

const showIntervals = (list) => list.map((i) => `${i.start}-${i.end}`).join(', ');

/** GET /hours as a form: on/off, each weekday's intervals, holidays, the away message; and
 * whether the shop is open now on the box's clock (the widget's view). */
async function hours(body) {
  const [current, info] = await Promise.all([api('/hours'), api('/widget/info')]);
  const [enabledLabel, enabled] = check(t('hours.enabled'), current.enabled, false);
  const days = WEEKDAYS.map((d) => input({
    value: showIntervals(current.weekly[d] ?? []), placeholder: '09:00-12:00, 13:00-18:00',
    inputMode: 'text', autocomplete: 'off',
  }));
  const holidays = area({ rows: 3, value: current.holidays.join('\n'), placeholder: 'YYYY-MM-DD' });
  const away = area({ rows: 3, value: current.away_message, maxLength: 4000 });
  const now = h('p', {
    class: `chip hours-now ${info.open ? 'is-open' : 'is-closed'}`, 'data-testid': 'hours-now',
    text: t(info.open ? 'hours.open_now' : 'hours.closed_now'),
  });
  body.replaceChildren(
    h('h2', { text: t('admin.hours') }),
    h('p', { class: 'muted', text: t('hours.help') }),
    now,
    submitForm([
      enabledLabel,
      h('fieldset', { class: 'hours-week' },
        h('legend', { text: t('hours.week') }),
        WEEKDAYS.map((d, i) => field(t(`hours.day.${d}`), days[i], 'hours-day'))),
      h('p', { class: 'muted small', text: t('hours.week_hint') }),
      field(t('hours.holidays'), holidays, 'wide'),
      h('p', { class: 'muted small', text: t('hours.holidays_hint') }),
      field(t('hours.away_message'), away, 'wide'),
    ], t('common.save'), async (btn) => {
      const weekly = Object.fromEntries(WEEKDAYS.map((d, i) => [d, parseIntervals(days[i].value)]));
      const ok = await run(btn, () => api('/hours', {
        method: 'PUT',
        body: {
          enabled: enabled.checked,
          weekly,
          holidays: holidays.value.split(/[\s,，]+/).filter(Boolean),
          away_message: away.value.trim(),
        },
      }));
      if (ok) await hours(body);
    }));
}

// ---- updates -------------------------------------------------------------------------------

/** GET /update drawn into body: what runs, what a rollback goes back to, the helper's last
 * run; a bundle upload and a roll-back button. Polls every 3 s while something waits for the
 * helper (it restarts kefud, so a request may fail for a moment). */
async function updates(body) {
  const u = await api('/update');
  const last = u.last;
  const stateText = last ? t(`update.state.${last.state}`) : '';
  const file = input({ type: 'file', accept: '.kefu,application/octet-stream', 'aria-label': t('update.file') });
  const waiting = u.pending || u.rollback_requested;
  // Handed over, or the helper is at work (kefud restarts meanwhile): the page follows it.
  const busy = waiting || ['installing', 'rolling-back'].includes(last?.state);
  const rollback = dangerButton(async () => {
    await api('/update/rollback', { method: 'POST' });
    updates(body);
  }, u.previous ? t('update.rollback', { version: u.previous }) : t('update.rollback_none'),
  t('update.rollback_confirm', { from: u.running, to: u.previous ?? '' }),
  t('update.rollback_requested'));
  rollback.disabled = !u.previous || busy;
  body.replaceChildren(
    h('h2', { text: t('update.title') }),
    h('div', { class: 'card' },
      h('dl', { class: 'facts' },
        h('dt', { text: t('update.running') }), h('dd', { 'data-testid': 'update-running', text: `kefud ${u.running} (${u.architecture})` }),
        h('dt', { text: t('update.previous') }), h('dd', { 'data-testid': 'update-previous', text: u.previous ? `kefud ${u.previous}` : t('update.none') }),
        h('dt', { text: t('update.last') }), h('dd', { 'data-testid': 'update-last', text: last ? `${stateText}: ${last.message}` : t('update.none') })),
      waiting ? h('p', { class: 'muted', 'aria-live': 'polite', text: t(u.pending ? 'update.pending' : 'update.rollback_pending') }) : null,
      h('div', { class: 'buttons' }, rollback)),
    h('h2', { text: t('update.upload') }),
    u.key
      ? submitForm([h('p', { class: 'muted', text: t('update.upload_help', { key: u.key }) }), field(t('update.file'), file)],
        t('update.install'), async (btn) => {
          const bundle = file.files[0];
          if (!bundle) return;
          const ok = await run(btn, () => api('/update', { method: 'POST', body: bundle, raw: true, type: 'application/octet-stream' }),
            t('update.accepted'));
          if (ok) updates(body);
        })
      : h('p', { class: 'card muted', text: t('update.no_key') }));
  if (busy) {
    setTimeout(() => { if (body.isConnected) updates(body).catch(() => setTimeout(() => body.isConnected && updates(body), 3000)); }, 3000);
  }
}

// ---- shop and channels -----------------------------------------------------------------

async function channel(body) {
  const settings = await api('/settings');
  const name = input({ value: settings.shop_name ?? '', required: true, maxLength: 100 });
  // Customers' devices do not trust the box's CA: what they load is on its HTTP address,
  // even when this console is opened over HTTPS.
  const origin = location.protocol === 'https:' ? await api('/tls').then(httpBase, () => location.origin) : location.origin;
  const snippet = `<script src="${origin}/widget.js" defer></script>`;
  const code = area({ readOnly: true, rows: 2, value: snippet, class: 'input code', 'aria-label': t('channel.snippet') });
  const copy = h('button', {
    type: 'button', class: 'btn primary', text: t('channel.copy'),
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(snippet);
      } catch {
        code.select();
        document.execCommand('copy');
      }
      toast(t('channel.copied'));
    },
  });
  const chatUrl = `${origin}/chat`;
  const cluster = h('div', { class: 'cluster-box', 'aria-live': 'polite' }, h('p', { class: 'muted', text: t('common.loading') }));
  const adapters = h('div', { class: 'adapters', 'aria-live': 'polite' }, h('p', { class: 'muted', text: t('common.loading') }));
  body.replaceChildren(
    h('h2', { text: t('channel.shop') }),
    submitForm([field(t('setup.shop_name'), name)], t('common.save'), async (btn) => {
      const ok = await run(btn, () => api('/settings', { method: 'PUT', body: { shop_name: name.value.trim() } }));
      if (ok) {
        state.shop = name.value.trim();
        emit('shop');
      }
    }),
    h('h2', { text: t('channel.widget') }),
    h('div', { class: 'card' },
      h('p', { text: t('channel.widget_help') }),
      code,
      h('p', { class: 'muted small', text: t('channel.origin_hint', { origin }) }),
      h('div', { class: 'buttons' }, copy)),
    h('h2', { text: t('channel.page') }),
    h('div', { class: 'card' },
      h('p', { text: t('channel.page_help') }),
      h('p', {}, h('a', { href: chatUrl, target: '_blank', rel: 'noopener', text: chatUrl }))),
    qrCard(chatUrl, settings.shop_name ?? ''),
    h('h2', { text: t('pwa.title') }),
    h('p', { class: 'card pwa-help', text: t('pwa.help') }),
    h('h2', { text: t('channel.adapters') }),
    h('p', { class: 'muted', text: t('channel.adapters_help') }),
    adapters,
    h('h2', { text: t('channel.others') }),
    h('p', { class: 'card muted', text: t('channel.others_help') }),
    h('h2', { text: t('cluster.title') }),
    cluster);
  refreshAdapters(adapters);
  refreshCluster(cluster);
}

// ---- the chat address as a printable QR code ------------------------------------------------

/** The /chat address as a QR code made by the box (GET /qr.svg, shown through a blob: URL: the
 * page's CSP allows blob: images, and an <img> cannot send the bearer token), with a Print
 * button. The print styles (console.css, @media print) print this card alone: the shop's
 * name, the code and the address, large. */
function qrCard(url, shopName) {
  const img = h('img', { class: 'qr-code', alt: t('qr.alt', { url }), width: 256, height: 256 });
  const card = h('div', { class: 'card qr-card', 'data-testid': 'qr-card' },
    h('p', { class: 'qr-shop', text: shopName }),
    img,
    h('p', { class: 'qr-url', text: url }),
    h('p', { class: 'muted small qr-help', text: t('qr.help') }),
    h('div', { class: 'buttons' }, h('button', {
      type: 'button', class: 'btn primary', text: t('qr.print'), onclick: () => window.print(),
    })));
  api(`/qr.svg?text=${encodeURIComponent(url)}&size=512`).then((blob) => {
    img.src = URL.createObjectURL(blob);
  }, (e) => {
    if (e.status !== 401) img.replaceWith(h('p', { class: 'error', text: errText(e) }));
  });
  return card;
}

const ADAPTER_REFRESH_MS = 5000;

/** Draws GET /channels into box, again every 5 s for as long as box is on the page. */
async function refreshAdapters(box) {
  if (!box.isConnected) return;
  if (document.visibilityState !== 'hidden') {
    try {
      const { channels } = await api('/channels');
      const key = JSON.stringify(channels);
      if (box.dataset.key !== key) {
        box.dataset.key = key;
        box.replaceChildren(...(channels.length
          ? [h('ul', { class: 'cards' }, channels.map((c) => h('li', {}, adapterCard(c))))]
          : [h('p', { class: 'card muted adapters-empty', text: t('channel.adapters_empty') })]));
      }
    } catch (e) {
      if (e.status === 401) return;
      box.dataset.key = '';
      box.replaceChildren(h('p', { class: 'card error', text: errText(e) }));
    }
  }
  setTimeout(() => refreshAdapters(box), ADAPTER_REFRESH_MS);
}

const STATES = ['connected', 'stalled', 'connecting', 'disconnected', 'stopped', 'idle'];

function adapterCard(c) {
  const known = STATES.includes(c.state) ? c.state : 'other';
  const stateText = known === 'other' ? String(c.state) : t(`chstate.${known}`);
  const counters = Object.entries(c.counters ?? {});
  return h('article', { class: 'card adapter', 'data-name': c.name },
    h('header', {},
      h('span', { class: `dot c-${known}`, 'aria-hidden': 'true' }),
      h('strong', { text: c.name }),
      h('span', { class: `chip c-${known}`, text: stateText })),
    c.detail ? h('p', { class: 'detail small', text: c.detail }) : null,
    h('p', {
      class: 'muted small',
      text: c.channels?.length ? t('channel.serves', { list: c.channels.join(', ') }) : t('channel.serves_rest'),
    }),
    counters.length ? h('dl', { class: 'counters' }, counters.flatMap(([k, v]) => {
      const key = `counter.${k}`;
      const label = t(key);
      return [h('dt', { text: label === key ? k.replace(/_/g, ' ') : label }), h('dd', { text: String(v) })];
    })) : null);
}
