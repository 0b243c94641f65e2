// Issue 17 in the console: labels (Admin → Labels, the thread's editor, chips), the inbox's
// filters by label and by agent, selecting and resolving several conversations at once, the
// contact's name, phone, e-mail and notes edited in the contact panel and shown in the inbox
// and found by search, a customer's rating in the thread and on the Reports page with its
// CSV, the phone layout of each, and no page error anywhere.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Kefud, Watch, launchBrowser, until } from '../lib/harness.mjs';

// The admin console-widget.test.mjs creates at first run (made here when this file runs alone).
const ADMIN = { username: 'li', display_name: 'Li Na', password: 'oolong-and-jasmine' };
const kefud = new Kefud();
const watch = new Watch();
let browser;
let token;
let page;
let step = 0;
const conv = {};  // visitor id → conversation id

const DESKTOP = { viewport: { width: 1280, height: 800 }, locale: 'en-US', acceptDownloads: true };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: 'en-US' };

function scenario(name, fn) {
  test(name, { timeout: 120000 }, async () => {
    step += 1;
    const slug = `tools-${String(step).padStart(2, '0')}-${name.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 40).replace(/^-|-$/g, '')}`;
    try {
      await fn();
    } finally {
      await watch.shots(slug);
    }
  });
}

const api = async (path, opts = {}) => kefud.api(path, { token, ...opts });

/** A visitor writes through the real visitor WebSocket, from a page of kefud's own origin. */
async function visitorWrites(visitor, text) {
  const acked = await page.evaluate(({ visitor, text }) => new Promise((resolve, reject) => {
    const ws = new WebSocket(`${location.origin.replace('http', 'ws')}/ws/visitor?visitor_id=${visitor}`);
    const timer = setTimeout(() => reject(new Error('no ack')), 10000);
    ws.onopen = () => ws.send(JSON.stringify({ type: 'message', client_id: `c-${Date.now()}`, text }));
    ws.onmessage = (e) => {
      const f = JSON.parse(e.data);
      if (f.type === 'ack') { clearTimeout(timer); ws.close(); resolve(f.message_id); }
    };
    ws.onerror = () => reject(new Error('socket error'));
  }), { visitor, text });
  assert.ok(acked > 0);
  const { body } = await api('/conversations?status=all');
  conv[visitor] = body.conversations.find((c) => c.external_id === visitor).id;
}

const noOverflow = async (p) => {
  const { scroll, width } = await p.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: innerWidth }));
  assert.ok(scroll <= width, `page is ${scroll}px wide in a ${width}px viewport`);
};

before(async () => {
  await kefud.start();
  browser = await launchBrowser();
  if ((await kefud.api('/setup')).body.needed) {
    const r = await kefud.api('/setup', { method: 'POST', body: { shop_name: 'Tea & Co.', ...ADMIN } });
    assert.equal(r.status, 201);
  }
  const login = await kefud.api('/login', { method: 'POST', body: { username: ADMIN.username, password: ADMIN.password } });
  assert.equal(login.status, 200);
  token = login.body.token;
  const ctx = await browser.newContext(DESKTOP);
  await ctx.addInitScript((t) => localStorage.setItem('kefud.token', JSON.stringify(t)), token);
  page = watch.page('console', await ctx.newPage());
  await page.goto(`${kefud.base}/`);
  await page.locator('.topbar').waitFor();
});

after(async () => {
  await browser?.close().catch(() => {});
  await kefud.stop();
  assert.deepEqual(watch.problems, []);
  assert.deepEqual(watch.dialogs, []);
});

scenario('admins define labels with colours', async () => {
  await page.goto(`${kefud.base}/#/admin/labels`);
  for (const [name, color] of [['VIP', '#e11d48'], ['Wholesale', '#16a34a']]) {
    const add = page.locator('form.form');
    await add.getByLabel('Name', { exact: true }).fill(name);
    await add.locator('input[type=color]').fill(color);
    await page.getByRole('button', { name: 'Add a label' }).click();
    await page.locator('.label-card', { hasText: name }).waitFor();
  }
  const { body } = await api('/labels');
  assert.deepEqual(body.labels.map((l) => [l.name, l.color]), [['VIP', '#e11d48'], ['Wholesale', '#16a34a']]);
  const chip = page.locator('.label-card .label-chip', { hasText: 'VIP' });
  const border = await chip.evaluate((e) => getComputedStyle(e).borderTopColor);
  assert.notEqual(border, 'rgb(0, 0, 0)', 'the chip takes the label colour');
});

scenario('an agent labels a conversation and the inbox filters by label and agent', async () => {
  await visitorWrites('tools-a', 'I would like 20 boxes of oolong for my shop');
  await visitorWrites('tools-b', 'where is my parcel?');
  await visitorWrites('tools-c', 'do you ship to Hangzhou?');
  await page.goto(`${kefud.base}/#/c/${conv['tools-a']}`);
  await page.getByRole('tab', { name: /All open/ }).click();
  await page.getByRole('button', { name: 'Labels' }).click();
  await page.locator('.label-option', { hasText: 'Wholesale' }).locator('input').check();
  await page.locator('.thread-labels .label-chip', { hasText: 'Wholesale' }).waitFor();
  await until('the label journaled', async () => (await api(`/conversations/${conv['tools-a']}`)).body.labels.length === 1);
  await page.locator(`.conv[data-id="${conv['tools-a']}"] .label-chip`, { hasText: 'Wholesale' }).waitFor();

  const wholesale = (await api('/labels')).body.labels.find((l) => l.name === 'Wholesale').id;
  await page.getByLabel('Filter by label').selectOption(String(wholesale));
  await until('only the labelled conversation listed', async () => {
    const shown = await page.locator('.conv-list .conv').evaluateAll((els) => els.map((e) => Number(e.dataset.id)));
    return shown.length === 1 && shown[0] === conv['tools-a'];
  });
  await page.getByLabel('Filter by label').selectOption('');

  // By agent: tools-b goes to another agent (the admin, online, may hold the others).
  let bo = (await api('/agents')).body.find((a) => a.username === 'bo');
  if (!bo) {
    const made = await api('/agents', { method: 'POST', body: { username: 'bo', display_name: 'Bo', password: 'bo-password-123' } });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    bo = made.body;
  }
  const moved = await api(`/conversations/${conv['tools-b']}/assign`, { method: 'POST', body: { agent_id: bo.id } });
  assert.equal(moved.status, 200, JSON.stringify(moved.body));
  await page.reload();
  await page.getByLabel('Filter by agent').selectOption(String(bo.id));
  await until('only Bo\'s conversation listed', async () => {
    const shown = await page.locator('.conv-list .conv').evaluateAll((els) => els.map((e) => Number(e.dataset.id)));
    return shown.length === 1 && shown[0] === conv['tools-b'];
  });
  await page.getByLabel('Filter by agent').selectOption('');
});

scenario('several conversations are resolved at once', async () => {
  await page.getByRole('tab', { name: /All open/ }).click();
  await page.getByRole('button', { name: 'Select' }).click();
  await page.locator(`.select-row input[data-id="${conv['tools-b']}"]`).check();
  await page.locator(`.select-row input[data-id="${conv['tools-c']}"]`).check();
  await page.getByText('2 selected').waitFor();
  await page.getByRole('button', { name: 'Resolve selected' }).click();
  await until('both resolved', async () => {
    const rows = await Promise.all(['tools-b', 'tools-c'].map((v) => api(`/conversations/${conv[v]}`)));
    return rows.every((r) => r.body.status === 'resolved');
  });
  assert.notEqual((await api(`/conversations/${conv['tools-a']}`)).body.status, 'resolved');
  await page.getByRole('button', { name: 'Done' }).click();
});

scenario('an agent records who the customer is in the contact panel', async () => {
  await page.goto(`${kefud.base}/#/c/${conv['tools-a']}`);
  await page.locator('.contact-toggle').click();
  const form = page.locator('.profile-form');
  await form.getByLabel('Name').fill('王芳 Wang Fang');
  await form.getByLabel('Phone').fill('call me');
  await watch.allowNetworkErrors(async () => {
    await form.getByRole('button', { name: 'Save' }).click();
    await form.getByText(/phone is at most 40 characters/).waitFor();
  });
  await form.getByLabel('Phone').fill('+86 571 8888 0000');
  await form.getByLabel('E-mail').fill('wang@example.com');
  await form.getByLabel(/Notes/).fill('Owns a tea house on West Lake road.');
  await form.getByRole('button', { name: 'Save' }).click();
  await form.getByText('Saved').waitFor();
  const contactId = (await api(`/conversations/${conv['tools-a']}`)).body.contact_id;
  const contact = (await api(`/contacts/${contactId}`)).body;
  assert.deepEqual([contact.name, contact.phone, contact.email], ['王芳 Wang Fang', '+86 571 8888 0000', 'wang@example.com']);
  await page.locator(`.conv[data-id="${conv['tools-a']}"] .name`, { hasText: '王芳 Wang Fang' }).waitFor();
  await page.locator('.pane-thread h2', { hasText: '王芳 Wang Fang' }).waitFor();
  // Search finds them by phone, and names them beside their messages.
  await page.goto(`${kefud.base}/#/search?q=8888`);
  await page.locator('.contact-hits .result', { hasText: '王芳 Wang Fang' }).waitFor();
  await page.goto(`${kefud.base}/#/search?q=oolong`);
  await page.locator('.result .meta', { hasText: '王芳 Wang Fang' }).first().waitFor();
});

scenario('a customer\'s rating shows in the thread and on the Reports page, with its CSV', async () => {
  const r = await kefud.api('/visitor/rating', {
    method: 'POST', body: { visitor_id: 'tools-b', conversation_id: conv['tools-b'], score: 4, comment: 'Friendly and quick' },
  });
  assert.equal(r.status, 201);
  const other = await kefud.api('/visitor/rating', {
    method: 'POST', body: { visitor_id: 'tools-a', conversation_id: conv['tools-b'], score: 1 },
  });
  assert.equal(other.status, 403, 'a visitor cannot rate another\'s conversation');
  await page.goto(`${kefud.base}/#/c/${conv['tools-b']}`);
  await page.locator('.rating-chip', { hasText: '★★★★☆' }).waitFor();
  await page.goto(`${kefud.base}/#/admin/reports`);
  const card = page.locator('section[data-report="ratings"]');
  const section = card.locator('.ratings-report');
  await section.locator('tr', { hasText: 'Bo' }).getByText('4.00').waitFor();
  await section.locator('q', { hasText: 'Friendly and quick' }).waitFor();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    card.getByRole('button', { name: 'Download CSV' }).click(),
  ]);
  const csv = fs.readFileSync(await download.path(), 'utf8').trim().split(/\r?\n/);
  assert.equal(csv[0], 'group,key,name,count,average,score_1,score_2,score_3,score_4,score_5');
  assert.ok(csv.some((l) => l.startsWith('agent,') && l.includes(',Bo,1,4.00,0,0,0,1,0')), csv.join('\n'));
});

scenario('phone layout: the inbox with its filters, Help and Labels', async () => {
  const ctx = await browser.newContext(PHONE);
  await ctx.addInitScript((t) => localStorage.setItem('kefud.token', JSON.stringify(t)), token);
  const phone = watch.page('phone', await ctx.newPage());
  await phone.goto(`${kefud.base}/`);
  await phone.getByLabel('Filter by agent').waitFor();
  await noOverflow(phone);
  await watch.shot(phone, 'tools-phone-inbox');
  await phone.getByRole('link', { name: 'Help' }).click();
  await phone.locator('#help-labels h2', { hasText: 'Labels' }).waitFor();
  await noOverflow(phone);
  await watch.shot(phone, 'tools-phone-help');
  for (const admin of ['labels']) {
    await phone.goto(`${kefud.base}/#/admin/${admin}`);
    await phone.locator('.admin-body h2').first().waitFor();
    await noOverflow(phone);
    await watch.shot(phone, `tools-phone-${admin}`);
  }
  await ctx.close();
});
