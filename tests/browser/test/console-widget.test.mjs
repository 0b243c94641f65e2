// The console and the widget end to end, in order, against one real kefud: first-run setup,
// login, a visitor writing from the widget on another site, the reply, a kill -9 restart
// mid-conversation, markup shown as text, canned replies, notes and search, the phone layout.
// One screenshot per test in target/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Kefud, Watch, shopSite, launchBrowser, docShot, until,
} from '../lib/harness.mjs';

const ADMIN = { username: 'li', display_name: 'Li Na', password: 'oolong-and-jasmine' };
const SHOP = 'Tea & Co.';
const kefud = new Kefud();
const watch = new Watch();
let browser;
let shop;
let agent;      // the agent's console, desktop size
let site;       // the shop's site with the widget, in the visitor's own browser context
let widget;     // the widget's iframe on it
let token;      // the agent's token, for checks through the API
let conversationId;
let step = 0;

const DESKTOP = { viewport: { width: 1280, height: 800 }, locale: 'en-US' };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: 'en-US' };

/** A test that leaves a screenshot of every open page, pass or fail. */
function scenario(name, fn) {
  test(name, { timeout: 120000 }, async () => {
    step += 1;
    const slug = `${String(step).padStart(2, '0')}-${name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40)}`;
    try {
      await fn();
    } finally {
      await watch.shots(slug);
    }
  });
}

const thread = (page) => page.locator('.pane-thread .log');
const ids = async (locator) => locator.evaluateAll((els) => els.map((e) => Number(e.dataset.id)));

before(async () => {
  await kefud.start();
  shop = await shopSite(kefud.base);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  shop?.close();
  await kefud.stop();
});

scenario('first-run setup creates the admin and opens the console', async () => {
  assert.deepEqual((await kefud.api('/setup')).body, { needed: true });
  const ctx = await browser.newContext(DESKTOP);
  agent = watch.page('console', await ctx.newPage());
  await agent.goto(`${kefud.base}/`);
  await agent.getByLabel('Shop name').fill(SHOP);
  await agent.getByLabel('Username').fill(ADMIN.username);
  await agent.getByLabel('Your name').fill(ADMIN.display_name);
  await agent.getByLabel('Password (at least 8 characters)').fill(ADMIN.password);
  await agent.getByLabel('Repeat the password').fill('something-else');
  await agent.getByRole('button', { name: 'Create the account' }).click();
  await agent.getByText('The passwords differ.').waitFor();
  await agent.getByLabel('Repeat the password').fill(ADMIN.password);
  await agent.getByRole('button', { name: 'Create the account' }).click();
  await agent.locator('.topbar .shop', { hasText: SHOP }).waitFor();
  await agent.getByRole('tab', { name: /All open/ }).waitFor();
  assert.deepEqual((await kefud.api('/setup')).body, { needed: false });
  const login = await kefud.api('/login', { method: 'POST', body: { username: ADMIN.username, password: ADMIN.password } });
  assert.equal(login.status, 200);
  token = login.body.token;
});

scenario('an agent logs in, the session survives a reload, the language switches', async () => {
  await agent.getByRole('button', { name: 'Log out' }).click();
  await agent.getByRole('heading', { name: 'Log in' }).waitFor();
  await agent.getByRole('button', { name: '中文' }).click();
  await agent.getByRole('heading', { name: '登录' }).waitFor();
  await agent.getByRole('button', { name: 'English' }).click();
  await agent.getByRole('heading', { name: 'Log in' }).waitFor();
  await watch.allowNetworkErrors(async () => {
    await agent.getByLabel('Username').fill(ADMIN.username);
    await agent.getByLabel('Password').fill('not-the-password');
    await agent.getByRole('button', { name: 'Log in' }).click();
    await agent.getByText('Wrong username or password.').waitFor();
  });
  await agent.getByLabel('Password').fill(ADMIN.password);
  await agent.getByRole('button', { name: 'Log in' }).click();
  await agent.getByRole('tab', { name: /All open/ }).waitFor();
  await agent.reload();
  await agent.getByRole('tab', { name: /All open/ }).waitFor();
  assert.equal(await agent.getByRole('heading', { name: 'Log in' }).count(), 0);
  await agent.getByRole('tab', { name: /All open/ }).click();
  await agent.evaluate(() => { window.sameDocument = true; });
});

scenario('a visitor writes from the widget on another site and the inbox shows it live', async () => {
  const ctx = await browser.newContext(DESKTOP);
  site = watch.page('shop-site', await ctx.newPage());
  await site.goto(shop.url);
  const bubble = site.getByRole('button', { name: 'Chat with us' });
  await bubble.click();
  const frame = site.locator('iframe[src$="/chat?embed=1"]');
  await frame.waitFor();
  assert.notEqual(new URL(await frame.getAttribute('src')).origin, new URL(shop.url).origin, 'the widget is cross-origin');
  widget = frame.contentFrame();
  await widget.getByText('We are online').waitFor();
  await widget.getByLabel('Type a message…').fill('Hello, where is my order 12345?');
  await widget.getByLabel('Type a message…').press('Enter');
  await widget.locator('.msg.mine[data-state="sent"]').waitFor();

  const row = agent.locator('.conv', { hasText: 'Hello, where is my order 12345?' });
  await row.waitFor();
  assert.equal(await agent.evaluate(() => window.sameDocument), true, 'no reload');
  conversationId = Number(await row.getAttribute('data-id'));
  assert.ok(conversationId > 0);
});

scenario('the agent replies, the visitor sees it; typing and the unread badge work', async () => {
  await agent.locator(`.conv[data-id="${conversationId}"]`).click();
  await thread(agent).getByText('Hello, where is my order 12345?').waitFor();
  const box = agent.locator('.composer textarea');

  await widget.getByLabel('Type a message…').pressSequentially('one more thing', { delay: 20 });
  await agent.getByText('The customer is typing…').waitFor();
  await widget.getByLabel('Type a message…').fill('');

  await box.fill('Hi! Let me check that for you.');
  await box.press('Enter');
  await thread(agent).locator('.msg.agent', { hasText: 'Hi! Let me check that for you.' }).waitFor();
  await widget.locator('.msg.theirs', { hasText: 'Hi! Let me check that for you.' }).waitFor();
  assert.equal(await box.inputValue(), '');

  await site.getByRole('button', { name: 'Close chat' }).click();
  await box.fill('It ships today.');
  await box.press('Enter');
  await site.getByRole('button', { name: 'Chat with us (1)' }).waitFor();
  await site.getByRole('button', { name: 'Chat with us (1)' }).click();
  await widget.locator('.msg.theirs', { hasText: 'It ships today.' }).waitFor();
  await site.getByRole('button', { name: 'Close chat' }).waitFor();
  await docShot(site, 'widget.png');
});

scenario('kefud restarts mid-conversation: both sides reconnect, nothing lost or doubled', async () => {
  const visitorMsgs = widget.locator('.msg[data-id]');
  const agentMsgs = thread(agent).locator('.msg');
  await watch.allowNetworkErrors(async () => {
    await kefud.kill();
    await widget.getByText('Connecting…').waitFor();
    await agent.getByText('Reconnecting…').waitFor();
    await widget.getByLabel('Type a message…').fill('Sent while the daemon was down');
    await widget.getByLabel('Type a message…').press('Enter');
    await widget.locator('.msg.mine[data-state="sending"]', { hasText: 'Sent while the daemon was down' }).waitFor();
    await kefud.start();
    await widget.locator('.msg.mine[data-state="sent"]', { hasText: 'Sent while the daemon was down' }).waitFor({ timeout: 30000 });
    await thread(agent).getByText('Sent while the daemon was down').waitFor({ timeout: 30000 });
    await agent.getByText('Reconnecting…').waitFor({ state: 'hidden', timeout: 30000 });
  });
  const box = agent.locator('.composer textarea');
  await box.fill('Got it after the restart.');
  await box.press('Enter');
  await widget.locator('.msg.theirs', { hasText: 'Got it after the restart.' }).waitFor();
  await widget.getByLabel('Type a message…').fill('Thanks!');
  await widget.getByLabel('Type a message…').press('Enter');
  await thread(agent).getByText('Thanks!').waitFor();

  const stored = await kefud.api(`/conversations/${conversationId}/messages`, { token });
  const expected = stored.body.messages.filter((m) => m.sender !== 'note').map((m) => m.id);
  await until('both sides to show every stored message', async () => (await visitorMsgs.count()) === expected.length && (await agentMsgs.count()) === expected.length);
  const seenByVisitor = await ids(visitorMsgs);
  const seenByAgent = await ids(agentMsgs);
  assert.equal(new Set(seenByVisitor).size, seenByVisitor.length, 'visitor ids are unique');
  assert.equal(new Set(seenByAgent).size, seenByAgent.length, 'agent ids are unique');
  assert.deepEqual(seenByVisitor, expected, 'the visitor shows every message once, in order');
  assert.deepEqual(seenByAgent, expected, 'the agent shows every message once, in order');
  assert.equal(await widget.locator('.msg[data-state="sending"]').count(), 0, 'nothing left unsent');
});

scenario('markup in messages is shown as text and runs nothing', async () => {
  const evil = '<img src=x onerror=alert(1)>';
  await widget.getByLabel('Type a message…').fill(evil);
  await widget.getByLabel('Type a message…').press('Enter');
  await thread(agent).locator('.msg.visitor .text', { hasText: evil }).waitFor();
  await agent.locator('.conv .preview', { hasText: evil }).waitFor();
  const box = agent.locator('.composer textarea');
  const reply = '<script>alert(2)</script><b onmouseover=alert(3)>bold?</b>';
  await box.fill(reply);
  await box.press('Enter');
  await widget.locator('.msg.theirs .text', { hasText: reply }).waitFor();
  await agent.waitForTimeout(500);
  for (const page of [agent, widget]) {
    assert.equal(await page.locator('img[src="x"], b[onmouseover], .log script').count(), 0);
  }
  assert.equal(await thread(agent).locator('.msg.visitor .text').last().textContent(), evil);
  assert.deepEqual(watch.dialogs, [], 'no dialog opened');
});

scenario('canned replies, private notes, contact panel and search', async () => {
  await agent.getByRole('link', { name: 'Admin' }).click();
  await agent.getByRole('link', { name: 'Canned replies' }).click();
  const form = agent.locator('form.card').last();
  await form.getByLabel('Shortcut').fill('thanks');
  await form.getByLabel('Text').fill(`Thank you for shopping at ${SHOP}!`);
  await form.getByRole('button', { name: 'Add a canned reply' }).click();
  await agent.locator('.cards input[value="thanks"]').waitFor();

  await agent.goto(`${kefud.base}/#/c/${conversationId}`);
  const box = agent.locator('.composer textarea');
  await box.fill('/tha');
  await agent.getByRole('option', { name: /\/thanks/ }).waitFor();
  await box.press('Enter');
  assert.equal(await box.inputValue(), `Thank you for shopping at ${SHOP}!`);
  await box.press('Enter');
  await widget.locator('.msg.theirs', { hasText: `Thank you for shopping at ${SHOP}!` }).waitFor();

  await agent.getByRole('tab', { name: 'Private note' }).click();
  await box.fill('VIP customer, ships from the Hangzhou store');
  await box.press('Enter');
  await thread(agent).locator('.msg.note', { hasText: 'VIP customer' }).waitFor();
  await agent.getByRole('tab', { name: 'Reply' }).click();
  await widget.page().waitForTimeout(800);
  assert.equal(await widget.getByText('VIP customer').count(), 0, 'a note never reaches the customer');

  await agent.getByRole('button', { name: 'Contact', exact: true }).click();
  await agent.locator('.pane-contact').getByText('Channels').waitFor();
  await agent.locator('.pane-contact').getByText('Summary').waitFor();
  await docShot(agent, 'console.png');
  await agent.getByRole('button', { name: 'Close the contact panel' }).click();

  await agent.getByRole('link', { name: 'Search' }).click();
  await agent.getByLabel('Search every message').fill('12345');
  await agent.getByLabel('Search every message').press('Enter');
  const hit = agent.locator('.result', { hasText: 'order 12345' });
  await hit.waitFor();
  await hit.click();
  await thread(agent).getByText('Hello, where is my order 12345?').waitFor();
});

scenario('phone width (390x844): inbox and thread are separate, usable screens', async () => {
  const ctx = await browser.newContext(PHONE);
  const phone = watch.page('phone-console', await ctx.newPage());
  await phone.goto(`${kefud.base}/`);
  await phone.getByLabel('Username').fill(ADMIN.username);
  await phone.getByLabel('Password').fill(ADMIN.password);
  await phone.getByRole('button', { name: 'Log in' }).click();
  const row = phone.locator(`.conv[data-id="${conversationId}"]`);
  await phone.getByRole('tab', { name: /All open/ }).tap();
  await row.waitFor();
  assert.ok(await phone.locator('.pane-thread').isHidden(), 'only the list shows');
  const listBox = await phone.locator('.pane-list').boundingBox();
  assert.ok(listBox.width >= 380 && listBox.width <= 390, `the list fills the width (${listBox.width})`);

  await row.tap();
  const box = phone.locator('.composer textarea');
  await box.waitFor();
  assert.ok(await phone.locator('.pane-list').isHidden(), 'only the thread shows');
  const b = await box.boundingBox();
  assert.ok(b.y + b.height <= 844 && b.x >= 0 && b.x + b.width <= 390, 'the reply box is on screen');
  await box.fill('Replying from my phone.');
  await phone.getByRole('button', { name: 'Send' }).tap();
  await widget.locator('.msg.theirs', { hasText: 'Replying from my phone.' }).waitFor();
  await watch.shot(phone, `${String(step).padStart(2, '0')}-phone-thread`);
  await phone.getByRole('link', { name: 'Back to the inbox' }).tap();
  await row.waitFor();

  const vctx = await browser.newContext(PHONE);
  const vsite = watch.page('phone-shop-site', await vctx.newPage());
  await vsite.goto(shop.url);
  await vsite.getByRole('button', { name: 'Chat with us' }).tap();
  const frame = vsite.locator('iframe[src$="/chat?embed=1"]');
  await frame.contentFrame().getByText('We are online').waitFor();
  const fb = await frame.boundingBox();
  assert.ok(fb.width === 390 && fb.height === 844, `the chat fills a phone screen (${fb.width}x${fb.height})`);
  await frame.contentFrame().getByRole('button', { name: 'Close the chat' }).tap();
  await vsite.getByRole('button', { name: 'Chat with us' }).waitFor();
});

scenario('no page threw or logged an error', async () => {
  assert.deepEqual(watch.problems, []);
  assert.deepEqual(watch.dialogs, []);
});
