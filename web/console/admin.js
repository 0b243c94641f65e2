// Admin pages: agents (add, role, disable, teams, capacity, reset password), canned replies,
// the knowledge base (edit, delete, import a CSV/JSONL file, export CSV), the shop's name
// with the web widget's one-line snippet, the full-page chat address and the channel
// connections (MQTT, webhooks, WeChat: state, detail, counters, refreshed every 5 s while the
// page is open), the response-time report (median and 90th percentile per day), and updates
// (the running and the previous version, the last update's outcome, uploading a signed bundle,
// rolling back).
import { h } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { api, errText } from './api.js';
import { state, emit, toast, loadAgents } from './state.js';
import { customers } from './customers.js';

const PAGES = { agents, canned, kb, channel, customers, reports, updates };

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

// ---- small form helpers ------------------------------------------------------------------

const field = (label, control, cls = '') => h('label', { class: `field ${cls}` }, h('span', { text: label }), control);
const input = (props) => h('input', { class: 'input', ...props });
const area = (props) => h('textarea', { class: 'input', rows: 3, ...props });
const check = (label, checked, disabled) => {
  const box = h('input', { type: 'checkbox', checked, disabled });
  return [h('label', { class: 'check' }, box, h('span', { text: label })), box];
};

/** Runs an API call from a button: disabled while it runs, errors as a toast. */
async function run(btn, fn, done = t('common.saved')) {
  btn.disabled = true;
  try {
    await fn();
    if (done) toast(done);
    return true;
  } catch (e) {
    if (e.status !== 401) toast(errText(e));
    return false;
  } finally {
    btn.disabled = false;
  }
}

/** A button for what cannot be undone (a delete by default) that asks for a second click
 * instead of a dialog. */
function dangerButton(onConfirm, label = t('common.delete'), confirmLabel = t('common.confirm_delete'),
  done = t('common.deleted')) {
  let armed = 0;
  const btn = h('button', {
    type: 'button', class: 'btn danger', text: label,
    onclick: () => {
      if (armed) {
        clearTimeout(armed);
        armed = 0;
        btn.textContent = label;
        run(btn, onConfirm, done);
        return;
      }
      btn.textContent = confirmLabel;
      armed = setTimeout(() => { armed = 0; btn.textContent = label; }, 4000);
    },
  });
  return btn;
}

function submitForm(children, label, onSubmit, cls = 'card form') {
  const btn = h('button', { type: 'submit', class: 'btn primary', text: label });
  const form = h('form', {
    class: cls,
    onsubmit: async (e) => {
      e.preventDefault();
      await onSubmit(btn, form);
    },
  }, children, h('div', { class: 'buttons' }, btn));
  return form;
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

// ---- shop and channels -----------------------------------------------------------------

/** Seconds as "45 s", "3 min 05 s", "2 h 10 min". */
function duration(secs) {
  const s = Math.round(secs);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

async function reports(body) {
  const { days } = await api('/reports/response-times?days=14');
  const cell = (p) => h('td', { text: p ? `${duration(p.median_secs)} / ${duration(p.p90_secs)} (${p.count})` : '–' });
  const rows = days.slice().reverse().map((d) => h('tr', {},
    h('th', { scope: 'row', text: d.day }),
    h('td', { text: String(d.conversations) }),
    cell(d.time_to_assignment), cell(d.first_response), cell(d.resolution)));
  body.replaceChildren(
    h('h2', { text: t('reports.title') }),
    h('p', { class: 'muted', text: t('reports.help') }),
    rows.length === 0
      ? h('p', { class: 'card muted', text: t('reports.empty') })
      : h('div', { class: 'card' }, h('table', { class: 'report' },
        h('thead', {}, h('tr', {},
          ['reports.day', 'reports.conversations', 'reports.assignment', 'reports.first_response', 'reports.resolution']
            .map((k) => h('th', { scope: 'col', text: t(k) })))),
        h('tbody', {}, rows))));
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

async function channel(body) {
  const settings = await api('/settings');
  const name = input({ value: settings.shop_name ?? '', required: true, maxLength: 100 });
  const snippet = `<script src="${location.origin}/widget.js" defer></script>`;
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
  const chatUrl = `${location.origin}/chat`;
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
      h('p', { class: 'muted small', text: t('channel.origin_hint', { origin: location.origin }) }),
      h('div', { class: 'buttons' }, copy)),
    h('h2', { text: t('channel.page') }),
    h('div', { class: 'card' },
      h('p', { text: t('channel.page_help') }),
      h('p', {}, h('a', { href: chatUrl, target: '_blank', rel: 'noopener', text: chatUrl }))),
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

/** Draws GET /cluster into box (this box's node id; in cluster mode the boxes heard from,
 * what is still to fetch from each, operations waiting for a gap, the link's counters), again
 * every 5 s for as long as box is on the page. */
async function refreshCluster(box) {
  if (!box.isConnected) return;
  if (document.visibilityState !== 'hidden') {
    try {
      const { enabled, view } = await api('/cluster');
      const key = JSON.stringify([enabled, view.node, view.connected, view.in_sync, view.waiting, view.peers]);
      if (box.dataset.key !== key) {
        box.dataset.key = key;
        box.replaceChildren(clusterCard(enabled, view));
      }
    } catch (e) {
      if (e.status === 401) return;
      box.dataset.key = '';
      box.replaceChildren(h('p', { class: 'card error', text: errText(e) }));
    }
  }
  setTimeout(() => refreshCluster(box), ADAPTER_REFRESH_MS);
}

function clusterCard(enabled, view) {
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
        behind ? t('cluster.behind', { n: behind }) : null,
        Math.abs(p.skew_ms) >= 1000 ? t('cluster.skew', { s: (p.skew_ms / 1000).toFixed(1) }) : null,
      ].filter(Boolean).join(' · ') }));
  });
  return h('article', { class: 'card adapter cluster' },
    h('header', {},
      h('span', { class: `dot c-${linkState}`, 'aria-hidden': 'true' }),
      h('strong', { text: view.cluster }),
      h('span', { class: `chip c-${linkState}`, text: stateText })),
    node,
    view.waiting ? h('p', { class: 'muted small', text: t('cluster.waiting', { n: view.waiting }) }) : null,
    peers.length ? h('ul', { class: 'peers' }, peers) : h('p', { class: 'muted', text: t('cluster.alone') }),
    h('dl', { class: 'counters' }, Object.entries(view.counters ?? {}).flatMap(([k, v]) => [
      h('dt', { text: k.replace(/_/g, ' ') }), h('dd', { text: String(v) })])));
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
