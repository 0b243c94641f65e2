// HTTPS on the shop's network, as an agent's browser sees it: chromium resolves kefu.local to
// the box (--host-resolver-rules, as mDNS would on a LAN) and trusts the box's CA through its
// own NSS store (a temporary HOME whose ~/.pki/nssdb holds the CA downloaded from the box;
// no --ignore-certificate-errors). The console opened at https://kefu.local is a secure
// context (notifications, service workers); the Admin, HTTPS page shows the CA's fingerprint,
// the download and the phone link (plain HTTP, for devices that trust nothing yet), prints as
// the guide alone, and fits a phone; the public /trust page works over plain HTTP on a phone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Kefud, Watch, launchBrowser, config, docShot } from '../lib/harness.mjs';

const AGENT = { username: 'https-admin', password: 'trust-the-box-once' };
const DESKTOP = { viewport: { width: 1280, height: 800 }, locale: 'en-US' };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: 'en-US' };
const kefud = new Kefud();
const watch = new Watch();
const https = `https://kefu.local:${config.tlsPort}`;
const http = `http://kefu.local:${config.port}`;
let home;
let browser;
let ca;          // the CA certificate (DER) as downloaded from the box
let token;
let qrMissing = false;  // no GET /api/v1/qr.svg in this build: the console shows the link only
let step = 0;

function scenario(name, fn) {
  test(name, { timeout: 120000 }, async () => {
    step += 1;
    const slug = `https-${step}-${name.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 40).replace(/^-|-$/g, '')}`;
    try {
      await fn();
    } finally {
      await watch.shots(slug);
    }
  });
}

const fingerprint = (der) => createHash('sha256').update(der).digest('hex').toUpperCase().match(/../g).join(':');

before(async () => {
  assert.ok(config.tlsPort, 'KEFUD_TLS_PORT is set by scripts/test-browser.sh');
  await kefud.start();
  // An admin of this test's own, whether or not another test file made the first one.
  execFileSync(config.bin, ['--config', config.configFile, 'agent', 'add', AGENT.username, '--admin', '--password-stdin'],
    { input: `${AGENT.password}\n`, stdio: ['pipe', 'ignore', 'inherit'] });
  const res = await fetch(`${kefud.base}/ca.crt`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/x-x509-ca-cert');
  ca = Buffer.from(await res.arrayBuffer());
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'kefud-nss-'));
  const db = path.join(home, '.pki', 'nssdb');
  fs.mkdirSync(db, { recursive: true });
  fs.writeFileSync(path.join(home, 'kefud-ca.crt'), ca);
  execFileSync('certutil', ['-d', `sql:${db}`, '-N', '--empty-password']);
  execFileSync('certutil', ['-d', `sql:${db}`, '-A', '-t', 'C,,', '-n', 'kefud', '-i', path.join(home, 'kefud-ca.crt')]);
  browser = await launchBrowser({
    args: ['--host-resolver-rules=MAP kefu.local 127.0.0.1'],
    env: { ...process.env, HOME: home },
  });
  const login = await kefud.api('/login', { method: 'POST', body: AGENT });
  assert.equal(login.status, 200);
  token = login.body.token;
});

after(async () => {
  await browser?.close().catch(() => {});
  await kefud.stop();
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

async function logIn(page) {
  await page.getByLabel('Username').fill(AGENT.username);
  await page.getByLabel('Password').fill(AGENT.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('tab', { name: /All open/ }).waitFor();
}

scenario('the console at https://kefu.local is trusted and a secure context', async () => {
  const ctx = await browser.newContext(DESKTOP);
  const page = watch.page('console', await ctx.newPage());
  const response = await page.goto(`${https}/`);
  assert.equal(response.status(), 200);
  const security = await response.securityDetails();
  assert.equal(security.subjectName, 'kefu.local', 'the box presented its own certificate');
  assert.match(security.issuer, /^kefud .*local CA$/, 'issued by the box\'s CA');
  await logIn(page);
  const ctxInfo = await page.evaluate(() => ({
    protocol: location.protocol,
    secure: window.isSecureContext,
    notification: 'Notification' in window,
    serviceWorker: 'serviceWorker' in navigator,
  }));
  assert.deepEqual(ctxInfo, { protocol: 'https:', secure: true, notification: true, serviceWorker: true });
  // The live feed (wss from the https origin) works: a customer writing on the plain-http
  // chat page shows in the console at once.
  await page.getByRole('tab', { name: /All open/ }).click();
  const visitor = watch.page('chat-http', await (await browser.newContext(PHONE)).newPage());
  await visitor.goto(`${http}/chat`);
  await visitor.getByLabel('Type a message…').fill('Is the console on HTTPS yet?');
  await visitor.getByLabel('Type a message…').press('Enter');
  await page.locator('.pane-list', { hasText: 'Is the console on HTTPS yet?' }).waitFor();
});

scenario('Admin, HTTPS: fingerprint, download, phone link, print and phone layout', async () => {
  const ctx = await browser.newContext(DESKTOP);
  const page = watch.page('https-admin', await ctx.newPage());
  await page.goto(`${https}/`);
  await logIn(page);
  await page.getByRole('link', { name: 'Admin' }).click();
  await page.getByRole('link', { name: 'HTTPS' }).click();
  await page.getByRole('heading', { name: 'Trust this box on your devices' }).waitFor();
  assert.equal(await page.locator('.trust-fp').textContent(), fingerprint(ca));
  for (const os of ['Windows', 'macOS', 'Android', 'iPhone and iPad (iOS)', 'Linux']) {
    await page.getByRole('heading', { name: os, exact: true }).waitFor();
  }
  // This device downloads from the page's own origin; other devices follow the phone link.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'Download the CA certificate' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), 'kefud-ca.crt');
  assert.deepEqual(fs.readFileSync(await download.path()), ca);
  await page.getByRole('link', { name: `${https}/` }).waitFor();
  // The QR code of the phone link, when the box has the QR endpoint; the link as text always.
  const link = `${http}/trust`;
  assert.equal(await page.locator('.trust-link').textContent(), link);
  const qr = await fetch(`${kefud.base}/api/v1/qr.svg?text=${encodeURIComponent(link)}&size=200`, { headers: { authorization: `Bearer ${token}` } });
  const img = page.locator('.trust-qr img');
  if (qr.status === 200) {
    await img.waitFor();
    assert.match(await img.getAttribute('src'), /^blob:/);
    assert.ok(await img.evaluate((el) => el.complete && el.naturalWidth > 0), 'the QR code image loads');
  } else {
    assert.equal(qr.status, 404);
    qrMissing = true;
    assert.equal(await img.count(), 0);
    await page.getByText('Open on a phone:').waitFor();
  }
  // Printed, the sheet is the guide alone.
  await page.emulateMedia({ media: 'print' });
  assert.equal(await page.locator('.topbar').isVisible(), false);
  assert.equal(await page.getByRole('button', { name: 'Print this page' }).isVisible(), false);
  assert.equal(await page.locator('.trust-fp').isVisible(), true);
  await watch.shot(page, 'https-admin-print');
  await page.emulateMedia({ media: 'screen' });
  await docShot(page, 'https.png');

  const phoneCtx = await browser.newContext(PHONE);
  const phone = watch.page('https-admin-phone', await phoneCtx.newPage());
  await phone.goto(`${https}/`);
  await logIn(phone);
  await phone.goto(`${https}/#/admin/https`);
  await phone.locator('.trust-fp').waitFor();
  const width = await phone.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `no sideways scrolling on a phone (${width}px)`);
  await watch.shot(phone, 'https-admin-phone');
});

scenario('the public /trust page on a phone over plain http', async () => {
  const ctx = await browser.newContext(PHONE);
  const page = watch.page('trust-phone', await ctx.newPage());
  await page.goto(`${http}/trust`);
  await page.getByRole('heading', { name: 'Trust this box on your devices' }).waitFor();
  await page.getByText('This page is on plain HTTP').waitFor();
  // Opened on the box itself, the phone link names an address a phone can reach.
  const local = watch.page('trust-local', await ctx.newPage());
  await local.goto(`${kefud.base}/trust`);
  const phoneLink = await local.locator('.trust-link').textContent();
  assert.ok(!/localhost|127\.0\.0\.1/.test(phoneLink), phoneLink);
  assert.match(phoneLink, new RegExp(`^http://[^/]+:${config.port}/trust$`));
  assert.equal(await page.locator('.trust-fp').textContent(), fingerprint(ca));
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'Download the CA certificate' }).click(),
  ]);
  assert.deepEqual(fs.readFileSync(await download.path()), ca, 'downloaded over plain http');
  assert.equal(await page.evaluate(() => window.isSecureContext), false);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `no sideways scrolling on a phone (${width}px)`);
  await watch.shot(page, 'https-trust-phone');
  // The console's request for a QR code that this build cannot make shows as a 404 in the log.
  const problems = watch.problems.filter((p) => !(qrMissing && /404/.test(p) && /qr\.svg/.test(p)));
  assert.deepEqual(problems, []);
  assert.deepEqual(watch.dialogs, []);
});
