// The Reports page against a kefud of this file's own, with data made through the real
// widget socket and API: the messages-per-hour bar chart (a bar per hour and writer, values as
// the API counts them), the response and resolution times line chart, the ratings card (drawn
// from GET /reports/ratings, or "No ratings yet"), the CSV downloads (the browser's download
// event: file name, header, rows), the period picker, and the page at phone width (390x844)
// with no horizontal overflow.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Watch, launchBrowser, docShot } from '../lib/harness.mjs';
import { freshKefud, customerSays } from '../lib/fresh.mjs';

const ADMIN = { username: 'zhou', display_name: 'Zhou', password: 'pu-erh-and-oolong' };
const DESKTOP = { viewport: { width: 1280, height: 900 }, locale: 'en-US' };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: 'en-US' };
const watch = new Watch();
let kefud;
let browser;
let agent;
let ratingsMissing; // the ratings endpoint is not in this build yet: its 404 is expected

function scenario(name, fn) {
  test(name, { timeout: 120000 }, async () => {
    try {
      await fn();
    } finally {
      await watch.shots(`reports-${name.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 40).replace(/-$/, '')}`);
    }
  });
}

/** Runs fn allowing the console's expected 404 from /reports/ratings (before that endpoint exists). */
const maybe404 = (fn) => (ratingsMissing ? watch.allowNetworkErrors(fn) : fn());

before(async () => {
  kefud = await freshKefud({ shop: 'Tea & Co.', admin: ADMIN });
  browser = await launchBrowser();
  ratingsMissing = (await kefud.api('/reports/ratings?days=14', { token: kefud.token })).status === 404;
});

after(async () => {
  await browser?.close().catch(() => {});
  await kefud?.cleanup();
});

async function openReports(ctxOptions, label) {
  const ctx = await browser.newContext({ ...ctxOptions, acceptDownloads: true });
  const page = watch.page(label, await ctx.newPage());
  await page.goto(`${kefud.base}/healthz`);
  await page.evaluate((token) => localStorage.setItem('kefud.token', JSON.stringify(token)), kefud.token);
  await maybe404(async () => {
    await page.goto(`${kefud.base}/#/admin/reports`);
    await page.getByRole('heading', { name: 'Messages per hour of the day' }).waitFor();
  });
  return page;
}

async function saveCsv(page, report) {
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.locator(`button[data-report="${report}"]`).click(),
  ]);
  const file = await download.path();
  return { name: download.suggestedFilename(), text: fs.readFileSync(file, 'utf8') };
}

scenario('customers write through the widget socket and an agent answers through the API', async () => {
  const ctx = await browser.newContext(DESKTOP);
  const visitor = watch.page('visitor', await ctx.newPage());
  await visitor.goto(`${kefud.base}/healthz`);
  await customerSays(visitor, kefud.base, 'rep-ann', ['Hello', 'Is the shop open today?', 'Thanks']);
  await customerSays(visitor, kefud.base, 'rep-bo', ['Do you deliver?', 'To Xihu district']);
  const list = await kefud.api('/conversations?status=all', { token: kefud.token });
  const ann = list.body.conversations.find((c) => c.external_id === 'rep-ann');
  for (const text of ['Yes, until 9 pm.', 'You are welcome!']) {
    assert.equal((await kefud.api(`/conversations/${ann.id}/messages`, { token: kefud.token, method: 'POST', body: { text } })).status, 201);
  }
  assert.equal((await kefud.api(`/conversations/${ann.id}/resolve`, { token: kefud.token, method: 'POST' })).status < 300, true);
});

scenario('the charts draw the data: a bar per hour and writer, lines per day, ratings or none yet', async () => {
  agent = await openReports(DESKTOP, 'console');
  const offset = await agent.evaluate(() => -new Date().getTimezoneOffset());
  const api = (await kefud.api(`/reports/hourly?days=14&utc_offset=${offset}`, { token: kefud.token })).body;

  const hourly = agent.locator('[data-testid="chart-hourly"]');
  assert.equal(await hourly.locator('svg > title').textContent(), 'Messages per hour of the day');
  const bars = hourly.locator('rect.bar');
  assert.equal(await bars.count(), 48, 'two bars (customer, agent) for each of 24 hours');
  const drawn = await bars.evaluateAll((els) => els.map((e) => ({
    series: Number(e.dataset.series), hour: Number(e.dataset.index), value: Number(e.dataset.value),
    height: Number(e.getAttribute('height')), title: e.querySelector('title').textContent,
  })));
  for (const bar of drawn) {
    const want = api.hours[bar.hour][bar.series === 0 ? 'customer' : 'agent'];
    assert.equal(bar.value, want, `hour ${bar.hour} series ${bar.series}`);
    assert.equal(bar.height > 0, want > 0, 'a bar is as tall as its count');
  }
  assert.equal(drawn.filter((b) => b.series === 0).reduce((n, b) => n + b.value, 0), 5);
  assert.equal(drawn.filter((b) => b.series === 1).reduce((n, b) => n + b.value, 0), 2);
  const busy = drawn.find((b) => b.series === 0 && b.value > 0);
  assert.match(busy.title, new RegExp(`^${String(busy.hour).padStart(2, '0')} · Customer messages: \\d+$`));
  const labels = await hourly.locator('.axis.x text').allTextContents();
  assert.equal(labels[0], '00');
  assert.ok(labels.length >= 6, `hour labels: ${labels}`);
  assert.deepEqual(await hourly.locator('.legend li').allTextContents(), ['Customer messages', 'Agent messages']);

  // Today's point for the first response and for the resolution.
  const times = agent.locator('[data-testid="chart-times"]');
  const today = await agent.evaluate(() => {
    const d = new Date();
    return `${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  });
  assert.equal(await times.locator('circle.point').count(), 2);
  assert.deepEqual(await times.locator('.axis.x text').allTextContents(), [today]);
  assert.match(await times.locator('.line.series-0 circle title').textContent(), new RegExp(`^${today} · First response: `));

  const ratings = agent.locator('section[data-report="ratings"]');
  await ratings.getByText('No ratings yet.').waitFor();
  assert.equal(await ratings.locator('button').count(), 0, 'nothing to download');
  await agent.evaluate(() => document.querySelector('section[data-report="hourly"]').scrollIntoView({ block: 'start' }));
  await docShot(agent, 'reports.png');
});

scenario('ratings in the shape GET /reports/ratings answers are drawn per day and per agent', async () => {
  // Until this build has the ratings endpoint, the page is given its documented answer.
  if (!ratingsMissing) return;
  const answer = {
    days: [{ day: '2026-12-05', count: 2, average: 4.5 }, { day: '2026-12-06', count: 3, average: 4.33 }],
    agents: [{ agent_id: 1, name: 'Zhou', count: 3, average: 4.33 }, { agent_id: 2, name: '=Ann', count: 2, average: 5 }],
  };
  await agent.route('**/api/v1/reports/ratings?*', (route) => route.fulfill({ json: answer }));
  await agent.getByLabel('Period').selectOption('7');
  const ratings = agent.locator('section[data-report="ratings"]');
  await ratings.locator('[data-testid="chart-ratings-days"]').waitFor();
  assert.deepEqual(await ratings.locator('[data-testid="chart-ratings-days"] rect.bar').evaluateAll((els) => els.map((e) => Number(e.dataset.value))), [4.5, 4.33]);
  const agents = ratings.locator('[data-testid="chart-ratings-agents"]');
  assert.deepEqual(await agents.locator('text.label').allTextContents(), ['Zhou', '=Ann']);
  assert.deepEqual(await agents.locator('rect.bar').evaluateAll((els) => els.map((e) => Number(e.dataset.value))), [4.33, 5]);
  await agents.getByText('5 · 2 ratings').waitFor();
  await agent.unroute('**/api/v1/reports/ratings?*');
  await maybe404(async () => {
    await agent.getByLabel('Period').selectOption('14');
    await ratings.getByText('No ratings yet.').waitFor();
  });
});

scenario('each report downloads as CSV with its header and rows', async () => {
  const hourly = await saveCsv(agent, 'hourly');
  assert.match(hourly.name, /^kefud-hourly-\d{4}-\d{2}-\d{2}\.csv$/);
  const lines = hourly.text.split('\r\n');
  assert.equal(lines[0], 'hour,customer_messages,agent_messages');
  assert.equal(lines.length, 26);
  const sums = lines.slice(1, 25).map((l) => l.split(',').map(Number)).reduce((s, [, c, a]) => [s[0] + c, s[1] + a], [0, 0]);
  assert.deepEqual(sums, [5, 2]);

  const times = await saveCsv(agent, 'response-times');
  assert.match(times.name, /^kefud-response-times-\d{4}-\d{2}-\d{2}\.csv$/);
  const rows = times.text.trim().split('\r\n');
  assert.match(rows[0], /^day,conversations,assigned,/);
  assert.equal(rows.length, 2, times.text);
  const cells = rows[1].split(',');
  assert.equal(cells[1], '2', 'two conversations today');
  assert.equal(cells[5], '1', 'one answered');
  assert.equal(cells[8], '1', 'one resolved');
});

scenario('phone width (390x844): the reports fit with no horizontal overflow', async () => {
  const phone = await openReports(PHONE, 'phone');
  await phone.locator('[data-testid="chart-hourly"] svg').waitFor();
  const overflow = await phone.evaluate(() => {
    const wrap = document.querySelector('.page-wrap');
    return Math.max(document.documentElement.scrollWidth - window.innerWidth, wrap.scrollWidth - wrap.clientWidth);
  });
  assert.ok(overflow <= 0, `no horizontal overflow (${overflow} px)`);
  const svg = await phone.locator('[data-testid="chart-hourly"] svg').boundingBox();
  assert.ok(svg.x >= 0 && svg.x + svg.width <= 390, `the chart fits: ${JSON.stringify(svg)}`);
  assert.equal(await phone.locator('[data-testid="chart-hourly"] rect.bar').count(), 48);
  await phone.evaluate(() => document.querySelector('[data-testid="chart-hourly"]').scrollIntoView({ block: 'start' }));
  await docShot(phone, 'reports-phone.png');
  assert.deepEqual(watch.problems, []);
  assert.deepEqual(watch.dialogs, []);
});
