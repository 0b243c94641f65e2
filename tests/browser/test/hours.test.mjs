// Business hours, on a kefud of this file's own run with TZ=UTC, so the shop's clock is the
// test's own UTC clock: the admin sets the hours in Admin → Business hours (a bad range named,
// today made a holiday), which fits a phone; an agent can neither open the page nor change
// the hours; while closed the chat page says so, shows the shop's away message and the
// leave-a-message form (though an agent is online), and a customer who writes gets the away
// message from the bot; once the admin removes the holiday the page shows the shop open.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Watch, launchBrowser } from '../lib/harness.mjs';
import { OwnKefud, consoleLogin, overflowsHorizontally } from '../lib/own-kefud.mjs';

const ADMIN = { username: 'hours-admin', display_name: 'Chen Jing', password: 'open-nine-to-six' };
const AGENT = { username: 'hours-agent', password: 'counter-staff-1' };
const SHOP = 'Morning Dew Teas';
const AWAY = 'We are closed for the holiday. Leave a message and we reply when we open.';
const kefud = new OwnKefud({ TZ: 'UTC' });
const watch = new Watch();
let browser;
let admin;   // the admin's console (desktop)

/** The UTC date `offset` days from the test's now, as YYYY-MM-DD. */
const utcDate = (offset) => new Date(Date.now() + offset * 86400000).toISOString().slice(0, 10);
const DAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];

before(async () => {
  await kefud.start();
  await kefud.setup(SHOP, ADMIN);
  kefud.cli(['agent', 'add', AGENT.username, '--password-stdin'], `${AGENT.password}\n`);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await kefud.stop();
});

function scenario(name, fn) {
  test(name, { timeout: 120000 }, async () => {
    try {
      await fn();
    } finally {
      await watch.shots(`hours-${name.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 40)}`);
    }
  });
}

scenario('the admin sets the hours with today as a holiday', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
  admin = watch.page('admin', await ctx.newPage());
  await consoleLogin(admin, kefud.base, ADMIN.username, ADMIN.password);
  await admin.goto(`${kefud.base}/#/admin/hours`);
  await admin.getByRole('heading', { name: 'Business hours' }).waitFor();
  await admin.getByTestId('hours-now').getByText('Open now').waitFor(); // off by default

  await admin.getByLabel('Use business hours').check();
  for (const day of DAYS) await admin.getByLabel(day, { exact: true }).fill('00:00-24:00');
  await admin.getByLabel('Away message').fill(AWAY);
  // A range that is not one is named, and nothing is stored.
  await admin.getByLabel('Monday', { exact: true }).fill('09:00-25:00');
  await watch.allowNetworkErrors(async () => {
    await admin.getByRole('button', { name: 'Save' }).click();
    await admin.getByText('A time is not HH:MM between 00:00 and 24:00.').waitFor();
  });
  assert.equal((await kefud.api('/hours', { token: await kefud.login(ADMIN.username, ADMIN.password) })).body.enabled, false);

  await admin.getByLabel('Monday', { exact: true }).fill('00:00-24:00');
  // Today on the shop's clock (UTC here), and the days either side so midnight cannot race.
  await admin.getByLabel('Holidays').fill([-1, 0, 1].map(utcDate).join('\n'));
  await admin.getByRole('button', { name: 'Save' }).click();
  await admin.getByTestId('hours-now').getByText('Closed now').waitFor();
  const token = await kefud.login(ADMIN.username, ADMIN.password);
  const stored = (await kefud.api('/hours', { token })).body;
  assert.equal(stored.enabled, true);
  assert.deepEqual(stored.holidays, [-1, 0, 1].map(utcDate));
  assert.deepEqual(stored.weekly.mon, [{ start: '00:00', end: '24:00' }]);
  assert.equal(stored.away_message, AWAY);
});

scenario('the hours page fits a phone', async () => {
  const ctx = await browser.newContext({
    viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: 'en-US',
  });
  const phone = watch.page('admin-phone', await ctx.newPage());
  await consoleLogin(phone, kefud.base, ADMIN.username, ADMIN.password);
  await phone.goto(`${kefud.base}/#/admin/hours`);
  await phone.getByTestId('hours-now').getByText('Closed now').waitFor();
  await phone.getByLabel('Sunday', { exact: true }).waitFor();
  assert.equal(await overflowsHorizontally(phone), false, 'no horizontal overflow at 390 px');
  await watch.shot(phone, 'hours-phone-top');
  await phone.getByLabel('Away message').scrollIntoViewIfNeeded();
  assert.equal(await overflowsHorizontally(phone), false);
  await watch.shot(phone, 'hours-phone-bottom');
  await ctx.close();
});

scenario('an agent can neither see nor change the hours', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US' });
  const page = watch.page('agent', await ctx.newPage());
  await consoleLogin(page, kefud.base, AGENT.username, AGENT.password);
  assert.equal(await page.getByRole('link', { name: 'Admin' }).count(), 0, 'no Admin link for an agent');
  await page.goto(`${kefud.base}/#/admin/hours`);
  await page.getByText('Only administrators can open this page.').waitFor();
  assert.equal(await page.getByLabel('Away message').count(), 0);
  const token = await kefud.login(AGENT.username, AGENT.password);
  const put = await kefud.api('/hours', { token, method: 'PUT', body: { enabled: false } });
  assert.equal(put.status, 403);
  await ctx.close();
});

scenario('while closed the chat page shows the away message and the form, and the bot says it', async () => {
  const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, locale: 'en-US' });
  const chat = watch.page('chat', await ctx.newPage());
  await chat.goto(`${kefud.base}/chat`);
  await chat.locator('#status', { hasText: 'We are closed now' }).waitFor();
  await chat.locator('#away-text', { hasText: AWAY }).waitFor();
  assert.ok(await chat.getByRole('button', { name: 'Leave a message' }).isVisible(),
    'the leave-a-message form is offered while closed, though an agent is online');
  const info = (await kefud.api('/widget/info')).body;
  assert.ok(info.agents_online >= 1, 'the admin console is open');
  assert.equal(info.open, false);

  await chat.getByRole('textbox', { name: 'Type a message…' }).fill('Are you open today?');
  await chat.keyboard.press('Enter');
  await chat.locator('.log').getByText(AWAY).waitFor();
  await chat.getByRole('textbox', { name: 'Type a message…' }).fill('Hello?');
  await chat.keyboard.press('Enter');
  await chat.locator('.log').getByText('Hello?').waitFor();
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(await chat.locator('.log').getByText(AWAY).count(), 1, 'told once, not per message');
  assert.equal(await overflowsHorizontally(chat), false);
  await watch.shot(chat, 'hours-chat-closed');

  // The admin removes the holiday: the shop is open again, and the page says so.
  await admin.getByLabel('Holidays').fill('');
  await admin.getByRole('button', { name: 'Save' }).click();
  await admin.getByTestId('hours-now').getByText('Open now').waitFor();
  await chat.reload();
  await chat.locator('#status', { hasText: 'We are online' }).waitFor();
  assert.equal(await chat.locator('#away').isVisible(), false, 'no away note or form while open');
});

test('no page error', () => {
  assert.deepEqual(watch.problems, []);
  assert.deepEqual(watch.dialogs, []);
});
