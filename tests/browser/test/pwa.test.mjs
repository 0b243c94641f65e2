// The console as an installable app, against a kefud of this file's own: the manifest (named
// after the shop, its icons load at their sizes), the service worker (registers, controls the
// page after a reload, keeps the shell and never an /api/ answer, serves the shell offline),
// and system notifications with the sound for a new customer and a new message while the
// console is in the background (the bell asks for the permission and is remembered; a click
// opens the conversation; the speaker mutes), the top bar at phone width, and an upgrade: a
// new build's worker replaces the old shell cache and the open console reloads itself.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Watch, launchBrowser, until } from '../lib/harness.mjs';
import { freshKefud, customerSays } from '../lib/fresh.mjs';

const SHOP = 'Tea & Co. Hangzhou';
const ADMIN = { username: 'mei', display_name: 'Mei', password: 'longjing-and-biluochun' };
const DESKTOP = { viewport: { width: 1280, height: 800 }, locale: 'en-US' };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: 'en-US' };
const watch = new Watch();
let kefud;
let browser;
let ctx;
let agent;
let visitorPage;

/** A test that leaves a screenshot of every open page, pass or fail. */
function scenario(name, fn) {
  test(name, { timeout: 120000 }, async () => {
    try {
      await fn();
    } finally {
      await watch.shots(`pwa-${name.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 40).replace(/-$/, '')}`);
    }
  });
}

before(async () => {
  kefud = await freshKefud({ shop: SHOP, admin: ADMIN });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await kefud?.cleanup();
});

scenario('the manifest names the shop and its icons load at their sizes', async () => {
  const res = await fetch(`${kefud.base}/manifest.webmanifest`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/manifest+json');
  assert.equal(res.headers.get('cache-control'), 'no-cache');
  const m = await res.json();
  assert.equal(m.name, `${SHOP} · kefud`);
  assert.equal(m.short_name, SHOP.slice(0, 12));
  assert.equal(m.start_url, '/');
  assert.equal(m.display, 'standalone');
  assert.match(m.theme_color, /^#[0-9a-f]{6}$/);
  const png = m.icons.filter((i) => i.type === 'image/png').map((i) => i.sizes);
  assert.ok(png.includes('192x192') && png.includes('512x512'), JSON.stringify(m.icons));
  assert.ok(m.icons.some((i) => i.type === 'image/svg+xml'));

  const sw = await fetch(`${kefud.base}/sw.js`);
  assert.equal(sw.status, 200);
  assert.match(sw.headers.get('content-type'), /^text\/javascript/);
  assert.equal(sw.headers.get('cache-control'), 'no-cache');
  assert.equal(sw.headers.get('service-worker-allowed'), '/');

  ctx = await browser.newContext(DESKTOP);
  await ctx.grantPermissions(['notifications'], { origin: kefud.base });
  // Spies, before any script of the page: every Notification made, every tone started.
  await ctx.addInitScript(() => {
    window.notes = [];
    window.beeps = 0;
    const Real = window.Notification;
    if (Real) {
      window.Notification = class Spied extends Real {
        constructor(title, options) {
          super(title, options);
          window.notes.push({ title, body: options?.body, tag: options?.tag });
          window.lastNote = this;
        }
      };
    }
    const make = AudioContext.prototype.createOscillator;
    AudioContext.prototype.createOscillator = function counted() {
      window.beeps += 1;
      return make.call(this);
    };
  });
  agent = watch.page('console', await ctx.newPage());
  await agent.goto(`${kefud.base}/`);
  await agent.evaluate((token) => localStorage.setItem('kefud.token', JSON.stringify(token)), kefud.token);
  await agent.reload();
  await agent.locator('.topbar .shop', { hasText: SHOP }).waitFor();
  const href = await agent.locator('link[rel="manifest"]').getAttribute('href');
  assert.equal(href, '/manifest.webmanifest');
  const icons = await agent.evaluate(async () => {
    const manifest = await (await fetch(document.querySelector('link[rel="manifest"]').href)).json();
    return Promise.all(manifest.icons.map((icon) => new Promise((resolve) => {
      const img = new Image();
      img.onload = () => resolve({ ...icon, width: img.naturalWidth, height: img.naturalHeight });
      img.onerror = () => resolve({ ...icon, width: 0, height: 0 });
      img.src = icon.src;
    })));
  });
  for (const icon of icons) {
    assert.ok(icon.width > 0, `${icon.src} loads`);
    if (icon.sizes !== 'any') assert.equal(`${icon.width}x${icon.height}`, icon.sizes, icon.src);
  }
});

scenario('the service worker controls the console after a reload and caches only the shell', async () => {
  const version = await agent.evaluate(async () => {
    const reg = await navigator.serviceWorker.ready;
    return reg.active.scriptURL;
  });
  assert.equal(version, `${kefud.base}/sw.js`);
  await agent.reload();
  await agent.locator('.topbar .shop', { hasText: SHOP }).waitFor();
  assert.equal(await agent.evaluate(() => navigator.serviceWorker.controller?.scriptURL), `${kefud.base}/sw.js`);

  // After this reload the shell came from the worker, the API from the network.
  const seen = [];
  agent.on('response', (r) => seen.push({ url: new URL(r.url()).pathname, sw: r.fromServiceWorker() }));
  await agent.reload();
  await agent.locator('.topbar .shop', { hasText: SHOP }).waitFor();
  await until('the API and the shell to load', async () => seen.some((r) => r.url === '/api/v1/conversations') && seen.some((r) => r.url === '/web/console/app.js'));
  assert.ok(seen.find((r) => r.url === '/web/console/app.js').sw, 'app.js from the worker');
  assert.ok(seen.find((r) => r.url === '/').sw, 'the page from the worker');
  for (const r of seen.filter((x) => x.url.startsWith('/api/'))) assert.equal(r.sw, false, `${r.url} from the network`);

  const cached = await agent.evaluate(async () => {
    const out = {};
    for (const name of await caches.keys()) {
      out[name] = (await (await caches.open(name)).keys()).map((req) => new URL(req.url).pathname);
    }
    return out;
  });
  const names = Object.keys(cached);
  assert.equal(names.length, 1, JSON.stringify(names));
  assert.match(names[0], /^kefud-shell-\d+\.\d+\.\d+-[0-9a-f]{16}$/);
  const urls = cached[names[0]];
  for (const url of ['/', '/web/console/app.js', '/web/console/console.css', '/web/shared/i18n.js', '/web/console/icons/icon-192.png']) {
    assert.ok(urls.includes(url), `${url} is in the shell cache`);
  }
  assert.deepEqual(urls.filter((u) => /^\/(api|ws|uploads|visitor|chat)(\/|$)/.test(u)), [], 'no customer data in the cache');

  // Offline, the console still opens (and says it cannot reach kefud), then comes back.
  await watch.allowNetworkErrors(async () => {
    await ctx.setOffline(true);
    await agent.reload();
    await agent.getByRole('heading', { name: 'Cannot reach kefud' }).waitFor();
    await ctx.setOffline(false);
    await agent.locator('.topbar .shop', { hasText: SHOP }).waitFor({ timeout: 20000 });
  });
  // Chrome's own verdict on installing this page (its test profile being incognito aside).
  const cdp = await ctx.newCDPSession(agent);
  const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
  assert.deepEqual(installabilityErrors.filter((e) => e.errorId !== 'in-incognito'), [], 'Chrome would install it');
  const manifest = await cdp.send('Page.getAppManifest');
  assert.equal(manifest.url, `${kefud.base}/manifest.webmanifest`);
  assert.deepEqual(manifest.errors, [], 'Chrome reads the manifest without errors');
  // A new shell version is what a new build serves: the page's cache name follows /sw.js.
  const served = await (await fetch(`${kefud.base}/sw.js`)).text();
  assert.ok(served.includes(names[0].replace('kefud-shell-', '')), 'the cache is named after the served build');
});

/** Makes the console look like a tab in the background (or back in front). */
async function setHidden(page, hidden) {
  await page.evaluate((hide) => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (hide ? 'hidden' : 'visible') });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => hide });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

scenario('in the background, a new customer and a new message notify with a sound; a click opens the conversation', async () => {
  const bell = agent.getByRole('button', { name: 'Notifications' });
  const speaker = agent.getByRole('button', { name: 'Sound' });
  // On where the browser already allows them, until the agent chooses; the choice is kept.
  assert.equal(await bell.getAttribute('aria-pressed'), 'true');
  await bell.click();
  assert.equal(await bell.getAttribute('aria-pressed'), 'false');
  await agent.reload();
  await agent.locator('.topbar .shop', { hasText: SHOP }).waitFor();
  assert.equal(await bell.getAttribute('aria-pressed'), 'false', 'off is remembered');
  await bell.click();
  await agent.getByText('You will be notified of new customers').waitFor();
  assert.equal(await bell.getAttribute('aria-pressed'), 'true');
  assert.equal(await speaker.getAttribute('aria-pressed'), 'true');
  await agent.reload();
  await agent.locator('.topbar .shop', { hasText: SHOP }).waitFor();
  assert.equal(await bell.getAttribute('aria-pressed'), 'true', 'on is remembered');
  await agent.locator('.topbar .shop').click(); // a gesture: the sound may start
  await until('audio to run', () => agent.evaluate(() => new Promise((r) => setTimeout(() => r(true), 50))));

  await setHidden(agent, true);
  const vctx = await browser.newContext(DESKTOP);
  visitorPage = watch.page('visitor', await vctx.newPage());
  await visitorPage.goto(`${kefud.base}/healthz`);
  await customerSays(visitorPage, kefud.base, 'pwa-ann', ['Do you have Longjing tea?']);
  await until('a notification', () => agent.evaluate(() => window.notes.length >= 1));
  let notes = await agent.evaluate(() => window.notes);
  assert.match(notes[0].title, /^New customer: /);
  assert.equal(notes[0].body, 'Do you have Longjing tea?');
  assert.ok(await agent.evaluate(() => window.beeps) >= 1, 'the sound played');

  await agent.waitForTimeout(1600); // the tone is not repeated within 1.5 s
  const beeps = await agent.evaluate(() => window.beeps);
  await customerSays(visitorPage, kefud.base, 'pwa-ann', ['And Biluochun?']);
  await until('a second notification', () => agent.evaluate(() => window.notes.length >= 2));
  notes = await agent.evaluate(() => window.notes);
  assert.match(notes[1].title, /^New message from /);
  assert.equal(notes[1].body, 'And Biluochun?');
  assert.equal(notes[1].tag, notes[0].tag, 'one notification per conversation');
  assert.ok(await agent.evaluate(() => window.beeps) > beeps, 'the sound played again');

  // A click on it brings the conversation up.
  const list = await kefud.api('/conversations?status=all', { token: kefud.token });
  const id = list.body.conversations[0].id;
  await agent.evaluate(() => window.lastNote.onclick());
  await agent.waitForFunction((hash) => location.hash === hash, `#/c/${id}`);
  await agent.locator('.pane-thread').getByText('And Biluochun?').waitFor();

  // Muted: still a notification, no sound.
  await speaker.click();
  assert.equal(await speaker.getAttribute('aria-pressed'), 'false');
  await agent.waitForTimeout(1600);
  const quiet = await agent.evaluate(() => window.beeps);
  await customerSays(visitorPage, kefud.base, 'pwa-bo', ['Are you open on Sunday?']);
  await until('a third notification', () => agent.evaluate(() => window.notes.length >= 3));
  assert.equal(await agent.evaluate(() => window.beeps), quiet, 'muted');

  // In front: no system notification.
  await setHidden(agent, false);
  await customerSays(visitorPage, kefud.base, 'pwa-bo', ['Hello?']);
  await agent.locator('.conv', { hasText: 'Hello?' }).waitFor();
  assert.equal(await agent.evaluate(() => window.notes.length), 3);
});

scenario('a new build: its worker replaces the old shell cache and the open console reloads', async () => {
  const shellCaches = () => agent.evaluate(async () => (await caches.keys()).filter((n) => n.startsWith('kefud-shell-')));
  const [old] = await shellCaches();
  assert.ok(old);
  // The same kefud serving pages that differ by one byte (KEFUD_WEB_DIR) is a new build to
  // the worker: its version is a digest of the files.
  const web = fs.mkdtempSync(path.join(os.tmpdir(), 'kefud-web-'));
  const repoWeb = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../web');
  fs.cpSync(repoWeb, web, { recursive: true });
  fs.appendFileSync(path.join(web, 'console/console.css'), '\n/* next build */\n');
  await agent.evaluate(() => { window.before = true; });
  try {
    await watch.allowNetworkErrors(async () => {
      await kefud.stop();
      process.env.KEFUD_WEB_DIR = web;
      await kefud.start();
      await agent.evaluate(() => navigator.serviceWorker.ready.then((r) => r.update()));
      await agent.waitForFunction(() => !window.before, null, { timeout: 20000 });
      await agent.locator('.topbar .shop', { hasText: SHOP }).waitFor({ timeout: 20000 });
    });
    const now = await shellCaches();
    assert.equal(now.length, 1, JSON.stringify(now));
    assert.notEqual(now[0], old, 'a new cache for the new build, the old one deleted');
    const css = await agent.evaluate(async (name) => (await (await caches.open(name)).match('/web/console/console.css')).text(), now[0]);
    assert.ok(css.includes('/* next build */'), 'the new build\'s files are the ones kept');
  } finally {
    fs.rmSync(web, { recursive: true, force: true });
  }
});

scenario('phone width: the top bar with its switches fits', async () => {
  const pctx = await browser.newContext(PHONE);
  const phone = watch.page('phone', await pctx.newPage());
  await phone.goto(`${kefud.base}/`);
  await phone.evaluate((token) => localStorage.setItem('kefud.token', JSON.stringify(token)), kefud.token);
  await phone.reload();
  await phone.getByRole('button', { name: 'Notifications' }).waitFor();
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal overflow (${overflow} px)`);
  for (const name of ['Notifications', 'Sound']) {
    const box = await phone.getByRole('button', { name }).boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= 390, `${name} is on screen`);
  }
  assert.deepEqual(watch.problems, []);
  assert.deepEqual(watch.dialogs, []);
});
