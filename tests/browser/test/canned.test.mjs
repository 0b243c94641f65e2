// Canned replies with placeholders, on a kefud of this file's own: the admin's canned page
// lists {customer_name}, {agent_name} and {shop_name}; a reply made there with them (and one
// placeholder kefud does not know) is inserted in a conversation whose contact has a name
// (brought in by `kefud import history`) with the customer's, the agent's and the shop's
// names filled in and the unknown one left as typed; for a customer without a name the
// neutral word is used instead of a gap. The reply is then sent as an ordinary message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Watch, launchBrowser, until } from '../lib/harness.mjs';
import { OwnKefud, consoleLogin, overflowsHorizontally } from '../lib/own-kefud.mjs';

const ADMIN = { username: 'canned-admin', display_name: 'Li Na', password: 'jasmine-pearls-2026' };
const SHOP = 'Tea Garden';
const TEMPLATE = 'Hello {customer_name}, this is {agent_name} at {shop_name}. Order {order_id} ships today.';
const kefud = new OwnKefud();
const watch = new Watch();
let browser;
let token;

before(async () => {
  await kefud.prepare();
  // A customer with a name, from an earlier system, whose conversation is still open.
  const history = path.join(kefud.dir, 'history.jsonl');
  fs.writeFileSync(history, `${JSON.stringify({
    contact: 'v-wang', sender: 'customer', text: 'Is my oolong on its way?',
    time: Math.floor(Date.now() / 1000) - 60, channel: 'web', name: 'Wang Fang',
  })}\n`);
  kefud.cli(['import', 'history', history]);
  await kefud.start();
  token = await kefud.setup(SHOP, ADMIN);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await kefud.stop();
});

const composer = (page) => page.locator('.pane-thread .composer textarea');

/** Types "/greet" in the open conversation's composer and picks the reply. */
async function insertGreet(page) {
  const ta = composer(page);
  await ta.fill('');
  await ta.pressSequentially('/gre');
  await page.locator('.canned-pop .canned-item', { hasText: '/greet' }).waitFor();
  await ta.press('Enter');
  return ta;
}

async function conversationOf(predicate) {
  return until('the conversation', async () => {
    const r = await kefud.api('/conversations?status=open', { token });
    return r.body.conversations.find(predicate);
  });
}

test('placeholders are listed, filled in from the contact, the agent and the shop, and sent', { timeout: 120000 }, async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'en-US' });
  const page = watch.page('canned', await ctx.newPage());
  try {
    await consoleLogin(page, kefud.base, ADMIN.username, ADMIN.password);
    await page.goto(`${kefud.base}/#/admin/canned`);
    await page.getByText('{customer_name}, {agent_name}, {shop_name}').waitFor();

    // Made through the console like any canned reply.
    await page.getByLabel('Shortcut').fill('greet');
    await page.getByLabel('Text').fill(TEMPLATE);
    await page.getByRole('button', { name: 'Add a canned reply' }).click();
    await until('the canned reply is stored', async () => {
      const r = await kefud.api('/canned', { token });
      return r.body.canned.some((c) => c.shortcut === 'greet' && c.text === TEMPLATE);
    });

    const named = await conversationOf((c) => c.contact_name === 'Wang Fang');
    const contact = await kefud.api(`/contacts/${named.contact_id}`, { token });
    assert.equal(contact.body.name, 'Wang Fang', 'the contact API gives the name');
    await page.goto(`${kefud.base}/#/c/${named.id}`);
    await page.locator('.pane-thread .log').getByText('Is my oolong on its way?').waitFor();
    await page.reload(); // the canned list is read at start
    await page.locator('.pane-thread .log').getByText('Is my oolong on its way?').waitFor();
    const expected = 'Hello Wang Fang, this is Li Na at Tea Garden. Order {order_id} ships today.';
    const ta = await insertGreet(page);
    assert.equal(await ta.inputValue(), expected);

    // Sent as it reads: the customer gets the names, not the placeholders.
    await ta.press('Enter');
    await page.locator('.pane-thread .log').getByText(expected).waitFor();
    const messages = await kefud.api(`/conversations/${named.id}/messages`, { token });
    const list = messages.body.messages ?? messages.body;
    assert.ok(list.some((m) => m.sender === 'agent' && m.text === expected), JSON.stringify(list));

    // A customer without a name: the neutral word, not a gap.
    const chat = watch.page('canned-chat', await (await browser.newContext({ locale: 'en-US' })).newPage());
    await chat.goto(`${kefud.base}/chat`);
    await chat.getByRole('textbox').fill('Hi, a question about green tea');
    await chat.keyboard.press('Enter');
    const anonymous = await conversationOf((c) => c.last_message?.includes('green tea'));
    assert.equal(anonymous.contact_name, null);
    await page.goto(`${kefud.base}/#/c/${anonymous.id}`);
    await page.locator('.pane-thread .log').getByText('Hi, a question about green tea').waitFor();
    const ta2 = await insertGreet(page);
    assert.equal(await ta2.inputValue(), 'Hello there, this is Li Na at Tea Garden. Order {order_id} ships today.');
  } finally {
    await watch.shots('canned');
  }
});

test('the canned page with its placeholder hint fits a phone', { timeout: 60000 }, async () => {
  const ctx = await browser.newContext({
    viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: 'en-US',
  });
  const page = watch.page('canned-phone', await ctx.newPage());
  try {
    await consoleLogin(page, kefud.base, ADMIN.username, ADMIN.password);
    await page.goto(`${kefud.base}/#/admin/canned`);
    await page.getByText('{customer_name}, {agent_name}, {shop_name}').waitFor();
    assert.equal(await overflowsHorizontally(page), false);
  } finally {
    await watch.shots('canned-phone');
  }
});

test('no page error', () => {
  assert.deepEqual(watch.problems, []);
  assert.deepEqual(watch.dialogs, []);
});
