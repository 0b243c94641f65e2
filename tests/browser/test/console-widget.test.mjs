// The console and the widget end to end, in order, against one real kefud: first-run setup,
// login, a visitor writing from the widget on another site, the reply (typing, unread badge),
// kill -9 restarts mid-conversation (nothing lost or doubled, the outbox kept), markup shown as
// text, canned replies, notes, contact panel and search, an expired session keeping its draft,
// leave-a-message and images, the admin pages with the bot, transfer/resolve/reopen, the phone
// layout, one person on two channels (web and the HTTP inbox) linked from the contact panel
// into one thread with channel badges, "send via" and delivery marks, the channel connections
// page, and no page error anywhere. One screenshot per test in target/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
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
    const slug = `${String(step).padStart(2, '0')}-${name.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 40).replace(/^-|-$/g, '')}`;
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
  await agent.evaluate(() => {
    window.beeps = 0;
    const make = AudioContext.prototype.createOscillator;
    AudioContext.prototype.createOscillator = function counted() {
      window.beeps += 1;
      return make.call(this);
    };
  });
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
  assert.ok(await agent.evaluate(() => window.beeps) >= 1, 'a new customer message beeps');
  conversationId = Number(await row.getAttribute('data-id'));
  assert.ok(conversationId > 0);
});

scenario('the agent replies, the visitor sees it; typing, read marks and the unread badge work', async () => {
  await agent.locator(`.conv[data-id="${conversationId}"]`).click();
  await thread(agent).getByText('Hello, where is my order 12345?').waitFor();
  const box = agent.locator('.composer textarea');

  await widget.getByLabel('Type a message…').pressSequentially('one more thing', { delay: 20 });
  await agent.getByText('The customer is typing…').waitFor();
  await widget.getByLabel('Type a message…').fill('');
  await box.fill('Hi!');
  await widget.getByText('Typing…', { exact: true }).waitFor();

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
  // Opening the chat read it: the agent sees "Read" move to that reply.
  await thread(agent).locator('.msg.agent', { hasText: 'It ships today.' }).locator('.read-mark', { hasText: 'Read' }).waitFor();
  assert.equal(await thread(agent).locator('.read-mark').count(), 1);
  await site.getByRole('button', { name: 'Close chat' }).waitFor();
  await docShot(site, 'widget.png');
  await agent.getByRole('button', { name: 'Contact', exact: true }).click();
  await agent.locator('.pane-contact').getByText('12345').waitFor();
  await docShot(agent, 'console.png');
  await agent.getByRole('button', { name: 'Close the contact panel' }).click();
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

scenario('the widget keeps unsent messages in localStorage and its history across a reload', async () => {
  const chat = () => site.frames().find((f) => f.url().includes('/chat?embed=1'));
  const outbox = async () => (await chat().evaluate(() => JSON.parse(localStorage.getItem('kefud.chat.outbox')))).map((m) => m.text);
  const text = 'Written while kefud was down';
  await watch.allowNetworkErrors(async () => {
    await kefud.kill();
    await widget.getByText('Connecting…').waitFor();
    await widget.getByLabel('Type a message…').fill(text);
    await widget.getByLabel('Type a message…').press('Enter');
    await widget.locator('.msg.mine[data-state="sending"]', { hasText: text }).waitFor();
    assert.deepEqual(await outbox(), [text]);
    await kefud.start();
    await widget.locator('.msg.mine[data-state="sent"]', { hasText: text }).waitFor({ timeout: 30000 });
    await thread(agent).getByText(text).waitFor({ timeout: 30000 });
    await agent.getByText('Reconnecting…').waitFor({ state: 'hidden', timeout: 30000 });
  });
  assert.deepEqual(await outbox(), []);
  const before = await ids(widget.locator('.msg[data-id]'));
  await site.reload();
  await site.getByRole('button', { name: 'Chat with us' }).click();
  await until('the whole history after the reload', async () => (await widget.locator('.msg[data-id]').count()) === before.length);
  assert.deepEqual(await ids(widget.locator('.msg[data-id]')), before, 'same visitor, same thread, nothing twice');
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
  await until('the canned reply in the list', async () => (await agent.locator('.cards input').first().inputValue()) === 'thanks');

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
  await site.waitForTimeout(800);
  assert.equal(await widget.getByText('VIP customer').count(), 0, 'a note never reaches the customer');

  await agent.getByRole('button', { name: 'Contact', exact: true }).click();
  await agent.locator('.pane-contact').getByText('Channels').waitFor();
  await agent.locator('.pane-contact').getByText('Summary').waitFor();
  await agent.getByRole('button', { name: 'Close the contact panel' }).click();

  await agent.getByRole('link', { name: 'Search' }).click();
  await agent.getByLabel('Search every message').fill('12345');
  await agent.getByLabel('Search every message').press('Enter');
  const hit = agent.locator('.result', { hasText: 'order 12345' });
  await hit.waitFor();
  await hit.click();
  await thread(agent).getByText('Hello, where is my order 12345?').waitFor();
});

scenario('an expired session goes back to the login and keeps the reply draft', async () => {
  await agent.goto(`${kefud.base}/#/c/${conversationId}`);
  const box = agent.locator('.composer textarea');
  await box.fill('Your tea leaves the warehouse tomorrow.');
  const stale = await agent.evaluate(() => JSON.parse(localStorage.getItem('kefud.token')));
  assert.equal((await kefud.api('/logout', { method: 'POST', token: stale })).status, 204);
  await watch.allowNetworkErrors(async () => {
    // The send finds the token dead, unless the live feed noticed first: either way, the login.
    const pressed = box.press('Enter', { timeout: 3000 }).catch(() => {});
    await agent.getByText('Your session ended. Log in again; your drafts are kept.').waitFor();
    await pressed;
  });
  await agent.getByLabel('Username').fill(ADMIN.username);
  await agent.getByLabel('Password').fill(ADMIN.password);
  await agent.getByRole('button', { name: 'Log in' }).click();
  await until('the draft back in its conversation', async () => (await agent.locator('.composer textarea').inputValue()) === 'Your tea leaves the warehouse tomorrow.');
  assert.equal(new URL(agent.url()).hash, `#/c/${conversationId}`);
  await agent.locator('.composer textarea').press('Enter');
  await widget.locator('.msg.theirs', { hasText: 'Your tea leaves the warehouse tomorrow.' }).waitFor();
  assert.equal(await agent.locator('.composer textarea').inputValue(), '');
});

scenario('with no agent online the widget takes a message and a contact; a customer sends an image', async () => {
  await agent.getByRole('button', { name: 'Status: Online' }).click();
  await agent.getByRole('button', { name: 'Status: Away' }).waitFor();
  await until('no agent online', async () => (await kefud.api('/widget/info')).body.agents_online === 0);
  const ctx = await browser.newContext(DESKTOP);
  const other = watch.page('second-visitor', await ctx.newPage());
  await other.goto(shop.url);
  await other.getByRole('button', { name: 'Chat with us' }).click();
  const chat = other.locator('iframe[src$="/chat?embed=1"]').contentFrame();
  await chat.getByText('No one is online right now.', { exact: false }).waitFor();
  await chat.getByRole('button', { name: 'Leave a message' }).click();
  await chat.getByLabel('Your message').fill('Do you ship to Shanghai?');
  await chat.getByLabel('Phone or e-mail').fill('138 0000 1234');
  await chat.getByRole('button', { name: 'Leave the message' }).click();
  const left = '留言 / Message: Do you ship to Shanghai? — 联系方式 / Contact: 138 0000 1234';
  await chat.locator('.msg.mine[data-state="sent"]', { hasText: left }).waitFor();
  await agent.locator('.conv', { hasText: 'Do you ship to Shanghai?' }).waitFor();
  const id = await agent.locator('.conv', { hasText: 'Do you ship to Shanghai?' }).getAttribute('data-id');

  const png = await other.evaluate(() => {
    const c = document.createElement('canvas');
    c.width = 48;
    c.height = 32;
    const g = c.getContext('2d');
    g.fillStyle = '#2f855a';
    g.fillRect(0, 0, 48, 32);
    g.fillStyle = '#f6e05e';
    g.fillRect(8, 8, 16, 16);
    return c.toDataURL('image/png').split(',')[1];
  });
  await chat.locator('#file').setInputFiles({ name: 'tea.png', mimeType: 'image/png', buffer: Buffer.from(png, 'base64') });
  await chat.locator('.msg.mine[data-state="sent"] img.att').waitFor();
  await agent.locator(`.conv[data-id="${id}"]`).click();
  const img = thread(agent).locator('.msg.visitor img.att');
  await img.waitFor();
  await until('the image to load in the console', () => img.evaluate((i) => i.complete && i.naturalWidth === 48));
  const seen = chat.locator('.msg.mine img.att');
  await until('the image to load in the widget', () => seen.evaluate((i) => i.complete && i.naturalWidth === 48));

  await agent.getByRole('button', { name: 'Status: Away' }).click();
  await until('the agent online again', async () => (await kefud.api('/widget/info')).body.agents_online === 1);
  await ctx.close();
});

scenario('admin: agents, knowledge base and the bot, transfer, resolve and reopen', async () => {
  await agent.getByRole('link', { name: 'Admin' }).click();
  await agent.getByRole('link', { name: 'Agents' }).click();
  const add = agent.locator('form.card');
  await add.getByLabel('Username').fill('wang');
  await add.getByLabel('Your name').fill('Wang Fang');
  await add.getByLabel('Password (at least 8 characters)').fill('green-tea-123');
  await add.getByRole('button', { name: 'Add an agent' }).click();
  const card = agent.locator('article.agent', { hasText: '@wang' });
  await card.waitFor();
  await card.getByLabel('Teams').fill('returns, sales');
  await card.getByLabel('Max open conversations').fill('3');
  await card.getByRole('button', { name: 'Save' }).click();
  await until('teams saved', async () => {
    const { body } = await kefud.api('/agents/presence', { token });
    return body.agents.some((a) => a.teams?.includes('returns') && a.capacity === 3);
  });
  await card.getByRole('button', { name: 'Reset password' }).click();
  await card.getByLabel('New password (at least 8 characters)').fill('green-tea-456');
  await card.getByRole('button', { name: 'Set password', exact: true }).click();
  await until('the new password works', async () => (await kefud.api('/login', {
    method: 'POST', body: { username: 'wang', password: 'green-tea-456' },
  })).status === 200);

  await agent.getByRole('link', { name: 'Knowledge base' }).click();
  const entry = agent.locator('form.card');
  await entry.getByLabel('Intent (a short name)').fill('opening_hours');
  await entry.getByLabel('Example questions, one per line').fill('when are you open\nwhat are your opening hours');
  await entry.getByLabel('Answer').fill('We are open daily, 9:00 to 18:00.');
  await entry.getByRole('button', { name: 'Add an entry' }).click();
  await agent.locator('details.kb', { hasText: 'opening_hours' }).waitFor();
  await agent.locator('input[type="file"]').setInputFiles({
    name: 'faq.csv', mimeType: 'text/csv',
    buffer: Buffer.from('intent,text,answer,team\nshipping,do you ship abroad,We ship worldwide.,sales\n'),
  });
  await agent.getByText('Imported 1 entries (1 example questions)').waitFor();
  await agent.locator('details.kb', { hasText: 'shipping' }).waitFor();
  const kb = await kefud.api('/kb/entries', { token });
  assert.deepEqual(kb.body.entries.map((e) => e.intent).sort(), ['opening_hours', 'shipping']);

  const ctx = await browser.newContext(DESKTOP);
  const asker = watch.page('bot-visitor', await ctx.newPage());
  await asker.goto(`${kefud.base}/chat`);
  await asker.getByLabel('Type a message…').fill('when are you open');
  await asker.getByLabel('Type a message…').press('Enter');
  await asker.locator('.msg.bot', { hasText: 'We are open daily, 9:00 to 18:00.' }).waitFor();
  await ctx.close();

  await agent.goto(`${kefud.base}/#/c/${conversationId}`);
  await agent.getByLabel('Transfer to…').selectOption({ label: 'Wang Fang' });
  await thread(agent).getByText('Transferred to Wang Fang').waitFor();
  await agent.locator('.thread-head .assignee', { hasText: 'Wang Fang' }).waitFor();
  await agent.getByRole('button', { name: 'Assign to me' }).click();
  await thread(agent).getByText('Transferred to Li Na').waitFor();
  await agent.locator('.thread-head .assignee', { hasText: 'You' }).waitFor();
  await agent.getByRole('button', { name: 'Resolve' }).click();
  await thread(agent).getByText('Resolved by Li Na').waitFor();
  await agent.getByRole('button', { name: 'Reopen' }).click();
  await thread(agent).getByText('Reopened by Li Na').waitFor();
  await agent.getByRole('button', { name: 'Resolve' }).waitFor();

  // The report: today's row, with the time until assignment measured.
  await agent.getByRole('link', { name: 'Admin' }).click();
  await agent.getByRole('link', { name: 'Reports' }).click();
  const today = new Date().toISOString().slice(0, 10);
  const row = agent.locator('table.report tbody tr', { hasText: today });
  await row.waitFor();
  assert.notEqual((await row.locator('td').nth(1).textContent()).trim(), '–', 'time until assignment is shown');

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
  await watch.shot(vsite, `${String(step).padStart(2, '0')}-phone-widget`);
  const fb = await frame.boundingBox();
  assert.ok(fb.width === 390 && fb.height === 844, `the chat fills a phone screen (${fb.width}x${fb.height})`);
  await frame.contentFrame().getByRole('button', { name: 'Close the chat' }).tap();
  await vsite.getByRole('button', { name: 'Chat with us' }).waitFor();
});

scenario('one person on two channels: contacts linked from the panel, one thread, send via, deliveries', async () => {
  // The same customer writes from the chat page (channel web) and from the shop's app (the
  // HTTP inbox channel "app", with an API key): two contacts, two conversations.
  const vctx = await browser.newContext(DESKTOP);
  const visitor = watch.page('linked-visitor', await vctx.newPage());
  await visitor.goto(`${kefud.base}/chat`);
  await visitor.getByLabel('Type a message…').fill('Is the jasmine pearl tea in stock?');
  await visitor.getByLabel('Type a message…').press('Enter');
  await visitor.locator('.msg.mine[data-state="sent"]').waitFor();

  const created = await kefud.api('/apikeys', { method: 'POST', token, body: { channel: 'app', name: 't' } });
  assert.equal(created.status, 201);
  const fromApp = 'Sent from the app: please deliver after 6 pm';
  const res = await fetch(`${kefud.base}/api/v1/inbox/app/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': created.body.key },
    body: JSON.stringify({ contact_id: 'member-8812', client_id: 'app-msg-1', text: fromApp }),
  });
  assert.equal(res.status, 202);

  await agent.goto(`${kefud.base}/#/`);
  await agent.getByRole('tab', { name: /All open/ }).click();
  const webRow = agent.locator('.conv', { hasText: 'jasmine pearl' });
  const appRow = agent.locator('.conv', { hasText: 'deliver after 6 pm' });
  await webRow.waitFor();
  await appRow.waitFor();
  const webConv = Number(await webRow.getAttribute('data-id'));
  const appConv = Number(await appRow.getAttribute('data-id'));
  assert.notEqual(webConv, appConv);

  // A second console tab has the app's conversation open: the link closes it, the tab follows.
  const other = watch.page('console-second-tab', await agent.context().newPage());
  await other.setViewportSize({ width: 1280, height: 800 });
  await other.goto(`${kefud.base}/#/c/${appConv}`);
  await thread(other).getByText(fromApp).waitFor();
  await agent.bringToFront(); // a background tab gets few animation frames

  await webRow.click();
  await thread(agent).getByText('Is the jasmine pearl tea in stock?').waitFor();
  assert.equal(await thread(agent).locator('.msg-chan').count(), 0, 'no badge for the web channel');
  assert.ok(await agent.getByLabel('Send via').isHidden(), 'one channel: no choice to offer');
  await agent.getByRole('button', { name: 'Contact', exact: true }).click();
  const panel = agent.locator('.pane-contact');
  await panel.getByText('Channels').waitFor();
  await panel.getByRole('button', { name: 'Link another contact…' }).click();
  await panel.getByLabel('Find a contact: name, #id or words from a message').fill('member-8812');
  await panel.getByRole('button', { name: /member-8812/ }).click();
  await panel.getByText(/Link member-8812 \(#\d+\) into this contact\?/).waitFor();
  await panel.getByRole('button', { name: 'Link', exact: true }).click();
  await agent.getByText('Contacts linked').waitFor();

  // One conversation with both messages; the app's message carries its channel.
  const appMsg = thread(agent).locator('.msg.visitor', { hasText: fromApp });
  await appMsg.waitFor();
  await thread(agent).getByText('Is the jasmine pearl tea in stock?').waitFor();
  assert.equal((await appMsg.locator('.msg-chan').textContent()).trim(), 'app');
  assert.equal(await thread(agent).locator('.msg.visitor', { hasText: 'jasmine pearl' }).locator('.msg-chan').count(), 0);
  await panel.locator('.identities li', { hasText: 'member-8812' }).waitFor();
  assert.equal(await panel.locator('.identities li').count(), 2);
  await agent.getByRole('tab', { name: /All open/ }).click();
  await agent.locator(`.conv[data-id="${appConv}"]`).waitFor({ state: 'detached' });
  assert.equal(await agent.locator(`.conv[data-id="${webConv}"]`).count(), 1);
  assert.equal((await kefud.api(`/conversations/${appConv}`, { token })).body.status, 'idle');
  const merged = (await kefud.api(`/conversations/${webConv}/messages?after=0&limit=500`, { token })).body.messages;
  assert.deepEqual(merged.filter((m) => m.sender === 'visitor').map((m) => m.channel).sort(), ['app', 'web']);

  // The second tab was on the conversation that closed: it moved to the one that stays.
  await until('the second tab on the kept conversation', async () => new URL(other.url()).hash === `#/c/${webConv}`);
  await thread(other).getByText(fromApp).waitFor();
  await thread(other).getByText('Is the jasmine pearl tea in stock?').waitFor();
  await other.close();

  // Two channels now: the reply can go out on the app's; its delivery is shown and kept live.
  const via = agent.getByLabel('Send via');
  await via.waitFor();
  await via.selectOption({ label: 'app · member-8812' });
  const box = agent.locator('.composer textarea');
  await box.fill('We deliver after 6 pm, of course.');
  await box.press('Enter');
  const reply = thread(agent).locator('.msg.agent', { hasText: 'We deliver after 6 pm, of course.' });
  await reply.waitFor();
  assert.equal((await reply.locator('.msg-chan').textContent()).trim(), 'app');
  const mark = reply.locator('.dlv');
  await mark.waitFor();
  const replyId = Number(await reply.getAttribute('data-id'));
  const stored = (await kefud.api(`/conversations/${webConv}/messages?after=${replyId - 1}&limit=1`, { token })).body.messages[0];
  assert.equal(stored.channel, 'app');
  assert.equal(await mark.getAttribute('data-state'), stored.delivery);
  // The feed's delivery frames (no app adapter runs in this test: the frames are applied as
  // the feed applies them) update the mark in place.
  const frame = (state, error) => agent.evaluate(async (f) => {
    (await import('/web/console/state.js')).applyDelivery(f);
  }, { type: 'delivery', seq: 0, message_ids: [replyId], state, error });
  await frame('dead', 'HTTP 503 from the app backend');
  await reply.locator('.dlv.d-dead', { hasText: 'Not delivered' }).waitFor();
  assert.equal(await mark.getAttribute('title'), 'Not delivered: HTTP 503 from the app backend');
  await watch.shot(agent, `${String(step).padStart(2, '0')}-linked-thread`);
  await frame('delivered', null);
  await reply.locator('.dlv.d-delivered').waitFor();
  assert.equal(await mark.getAttribute('title'), 'Delivered');
  await agent.getByRole('button', { name: 'Close the contact panel' }).click();
  await vctx.close();
});

scenario('admin: the channel connections page', async () => {
  await agent.getByRole('link', { name: 'Admin' }).click();
  await agent.getByRole('link', { name: 'Shop & channels' }).click();
  await agent.getByRole('heading', { name: 'Channel connections' }).waitFor();
  // This box's node id (the one /healthz reports); cluster mode is off here.
  const { node } = (await kefud.api('/cluster', { token })).body.view;
  const health = await (await fetch(`${kefud.base}/healthz`)).json();
  assert.equal(health.node, node);
  await agent.locator('.cluster .node-id', { hasText: node }).waitFor();
  await agent.getByText('Cluster mode is off').waitFor();
  const channels = (await kefud.api('/channels', { token })).body.channels;
  if (channels.length === 0) {
    await agent.locator('.adapters-empty', { hasText: 'MQTT, webhooks and WeChat are set up in kefud.toml' }).waitFor();
  } else {
    await until('one card per adapter', async () => (await agent.locator('.adapters article.adapter').count()) === channels.length);
  }
  // Refreshed every 5 s while open: adapters answered by a stand-in of the API show up.
  await agent.route('**/api/v1/channels', (route) => route.fulfill({
    json: {
      channels: [
        {
          name: 'mqtt', channels: ['mqtt'], state: 'connected', detail: 'broker 127.0.0.1:1883',
          counters: { received: 12, acknowledged: 12, malformed: 1, published: 4, delivered: 4 },
        },
        { name: 'webhook:app', channels: ['app'], state: 'disconnected', detail: 'connection refused', counters: { sent: 3, delivered: 1, failed: 2 } },
        { name: 'wechat', channels: [], state: 'connecting', detail: '', counters: {} },
      ],
    },
  }));
  const mqtt = agent.locator('article.adapter', { hasText: 'mqtt' });
  await mqtt.waitFor({ timeout: 8000 });
  await mqtt.scrollIntoViewIfNeeded();
  assert.equal(await agent.locator('article.adapter').count(), 3);
  await mqtt.locator('.dot.c-connected').waitFor();
  await mqtt.getByText('broker 127.0.0.1:1883').waitFor();
  assert.deepEqual(await mqtt.locator('.counters dt').allTextContents(), ['Received', 'Acknowledged', 'Malformed', 'Published', 'Delivered']);
  assert.equal(await mqtt.locator('.counters dd').first().textContent(), '12');
  const hook = agent.locator('article.adapter', { hasText: 'webhook:app' });
  await hook.locator('.chip', { hasText: 'Disconnected' }).waitFor();
  await hook.getByText('Replies for: app').waitFor();
  await agent.locator('article.adapter', { hasText: 'wechat' }).getByText('Replies for every channel no other connection names').waitFor();
  await agent.unroute('**/api/v1/channels');
});

scenario('admin: updates, a forged bundle refused, a signed one handed to the helper, phone width', async () => {
  await agent.getByRole('link', { name: 'Admin' }).click();
  await agent.getByRole('link', { name: 'Updates' }).click();
  await agent.getByRole('heading', { name: "This box's kefud" }).waitFor();
  const status = (await kefud.api('/update', { token })).body;
  await agent.getByTestId('update-running').filter({ hasText: `kefud ${status.running} (${status.architecture})` }).waitFor();
  assert.equal(await agent.getByTestId('update-previous').textContent(), 'none');
  const rollback = agent.getByRole('button', { name: 'Roll back', exact: true });
  assert.ok(await rollback.isDisabled(), 'nothing to roll back to');
  await agent.getByText(`release key (${status.key})`).waitFor();
  const file = agent.getByLabel('Update bundle (.kefu)');
  const install = agent.getByRole('button', { name: 'Upload and install' });
  await file.setInputFiles(process.env.KEFUD_UPDATE_FORGED);
  await watch.allowNetworkErrors(async () => {
    await install.click();
    await agent.locator('.toast', { hasText: "signature is not from this box's release key" }).waitFor();
  });
  assert.equal(existsSync(`${process.env.KEFUD_UPDATE_SPOOL}/pending.kefu`), false, 'nothing handed over');
  await file.setInputFiles(process.env.KEFUD_UPDATE_GOOD);
  await install.click();
  await agent.getByText('An update is being installed').waitFor();
  assert.equal(existsSync(`${process.env.KEFUD_UPDATE_SPOOL}/pending.kefu`), true, 'handed to the helper');
  assert.ok(await agent.getByRole('button', { name: 'Roll back', exact: true }).isDisabled());
  // As kefud-update would: take the bundle and report; the page follows by itself.
  rmSync(`${process.env.KEFUD_UPDATE_SPOOL}/pending.kefu`);
  await until('the page no longer says an update waits', async () => (await agent.getByText('An update is being installed').count()) === 0);
  // Phone width: the page fits.
  const ctx = await browser.newContext(PHONE);
  const phone = watch.page('phone-updates', await ctx.newPage());
  await phone.goto(`${kefud.base}/`);
  await phone.getByLabel('Username').fill(ADMIN.username);
  await phone.getByLabel('Password').fill(ADMIN.password);
  await phone.getByRole('button', { name: 'Log in' }).click();
  await phone.goto(`${kefud.base}/#/admin/updates`);
  await phone.getByRole('button', { name: 'Upload and install' }).waitFor();
  const width = await phone.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `no sideways scrolling on a phone (${width}px)`);
  await watch.shot(phone, `${String(step).padStart(2, '0')}-phone-updates`);
  await ctx.close();
});

scenario('no page threw or logged an error', async () => {
  assert.deepEqual(watch.problems, []);
  assert.deepEqual(watch.dialogs, []);
});
