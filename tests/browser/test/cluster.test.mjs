// Who holds a conversation across a cluster, in the console: two kefud boxes of this file's
// own in cluster mode through one real mosquitto (spawned here, loopback only). A customer
// writes at box A; the broker is killed (the boxes cannot reach each other) while A's agent and
// B's agent each take the conversation; with the broker back, A's console shows the conflict
// banner naming both; "Keep it" settles it (B's box then shows A's agent holding it); the
// transfer menu offers B's agent, and giving it to them shows "Held by … at box …"; the
// Shop & channels page's cluster card lists box B with its agent and the conflict; the header
// fits a phone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { Watch, launchBrowser, until } from '../lib/harness.mjs';
import { OwnKefud, consoleLogin, overflowsHorizontally } from '../lib/own-kefud.mjs';
import { customerSays } from '../lib/fresh.mjs';

const ANN = { username: 'ann', display_name: 'Ann at the front', password: 'front-desk-pass-1' };
const BO = { username: 'bo', display_name: 'Bo in the back', password: 'back-office-pass-1' };
const watch = new Watch();
const boxA = new OwnKefud();
const boxB = new OwnKefud();
let broker;
let browser;
let tokenA;
let tokenB;

async function freePort() {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** A mosquitto of this file's own, on loopback, without persistence; restartable. */
class Broker {
  async start() {
    this.port ??= await freePort();
    this.dir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'kefud-broker-'));
    const conf = path.join(this.dir, 'mosquitto.conf');
    fs.writeFileSync(conf, `listener ${this.port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n`);
    this.proc = spawn('mosquitto', ['-c', conf], { stdio: 'ignore' });
    await until('mosquitto listening', () => new Promise((resolve) => {
      const sock = net.connect(this.port, '127.0.0.1', () => { sock.destroy(); resolve(true); });
      sock.on('error', () => resolve(false));
    }), 10000);
  }

  async kill() {
    const exited = once(this.proc, 'exit');
    this.proc.kill('SIGKILL');
    await exited;
  }
}

const clusterConfig = (port) => `[mqtt]\nhost = "127.0.0.1"\nport = ${port}\nkeep_alive_secs = 5\n`
  + '[cluster]\nenabled = true\nname = "tea"\nsecret = "tea-shops-secret-1"\n[tls]\nenabled = false\n';

before(async () => {
  broker = new Broker();
  await broker.start();
  for (const box of [boxA, boxB]) {
    await box.prepare();
    fs.appendFileSync(box.configFile, clusterConfig(broker.port));
    await box.start();
  }
  tokenA = await boxA.setup('Tea at the station', ANN);
  tokenB = await boxB.setup('Tea at the station', BO);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await boxA.stop();
  await boxB.stop();
  if (broker?.proc?.exitCode === null) await broker.kill();
  if (broker?.dir) fs.rmSync(broker.dir, { recursive: true, force: true });
});

const nodeOf = async (box, token) => (await box.api('/cluster', { token })).body.view.node;
const firstConversation = async (box, token) => until('a conversation on the box', async () => {
  const r = await box.api('/conversations?status=all', { token });
  return r.body.conversations[0];
}, 30000);
const holdersOf = (row) => (row.holders ?? []).map((x) => `${x.node}:${x.agent}`).sort();

test('a conflict made while the boxes were apart shows in the console and Keep it settles it', { timeout: 240000 }, async () => {
  const [nodeA, nodeB] = [await nodeOf(boxA, tokenA), await nodeOf(boxB, tokenB)];
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
  const customer = await ctx.newPage();
  await customer.goto(`${boxA.base}/healthz`);
  await customerSays(customer, boxA.base, 'station-regular', ['two jasmine teas to take away']);
  const onA = (await firstConversation(boxA, tokenA)).id;
  const onB = (await firstConversation(boxB, tokenB)).id;

  // Apart: each box's agent takes it.
  await broker.kill();
  await until('A sees the broker gone', async () => (await boxA.api('/cluster', { token: tokenA })).body.view.connected === false, 30000);
  assert.equal((await boxA.api(`/conversations/${onA}/assign`, { token: tokenA, method: 'POST', body: {} })).status, 200);
  assert.equal((await boxB.api(`/conversations/${onB}/assign`, { token: tokenB, method: 'POST', body: {} })).status, 200);
  await broker.start();
  const both = [`${nodeA}:1`, `${nodeB}:1`].sort();
  for (const [box, token, id] of [[boxA, tokenA, onA], [boxB, tokenB, onB]]) {
    await until('the conflict on both boxes', async () => {
      const row = (await box.api(`/conversations/${id}`, { token })).body;
      return row.conflict === true && JSON.stringify(holdersOf(row)) === JSON.stringify(both);
    }, 60000);
  }

  const page = watch.page('cluster-desktop', await ctx.newPage());
  try {
    await consoleLogin(page, boxA.base, ANN.username, ANN.password);
    await page.goto(`${boxA.base}/#/c/${onA}`);
    const banner = page.getByRole('alert').filter({ hasText: 'Assigned twice' });
    await banner.waitFor();
    const text = await banner.textContent();
    assert.match(text, /Ann at the front/);
    assert.match(text, /Bo in the back/);
    assert.match(text, new RegExp(`box ${nodeB.slice(0, 8)}`));
    await watch.shot(page, 'cluster-conflict');
    // The cluster card lists the conflict, and box B with its agent.
    await page.getByRole('link', { name: 'Admin' }).click();
    await page.getByRole('link', { name: 'Shop & channels' }).click();
    const card = page.locator('.cluster');
    await card.getByRole('status').filter({ hasText: 'assigned twice' }).waitFor();
    await card.locator(`.peer[data-node="${nodeB}"] .peer-agent`, { hasText: 'Bo in the back' }).waitFor();
    await watch.shot(page, 'cluster-card');
    await card.getByRole('link', { name: 'station-regular' }).click();
    await banner.getByRole('button', { name: 'Keep it' }).click();
    await banner.waitFor({ state: 'detached' });
    await until('B shows Ann holding it', async () => {
      const row = (await boxB.api(`/conversations/${onB}`, { token: tokenB })).body;
      return !row.conflict && JSON.stringify(holdersOf(row)) === JSON.stringify([`${nodeA}:1`]) && row.assignee === null;
    }, 30000);

    // The transfer menu offers B's agent (their box's roster, refreshed every 15 s).
    const transfer = page.getByLabel('Transfer to…');
    const option = transfer.locator('option', { hasText: 'Bo in the back' });
    await until('B\'s agent in the transfer menu', async () => {
      if (await option.count()) return true;
      await page.reload();
      await transfer.waitFor();
      return false;
    }, 60000);
    await transfer.selectOption(`${nodeB}:1`);
    await page.getByText(`Held by Bo in the back at box ${nodeB.slice(0, 8)}`).waitFor();
    await until('B\'s agent holds it on B', async () => {
      const row = (await boxB.api(`/conversations/${onB}`, { token: tokenB })).body;
      return row.assignee === 1;
    }, 30000);
  } finally {
    await watch.shots('cluster-desktop');
  }
  await ctx.close();
});

test('the holders fit a phone', { timeout: 60000 }, async () => {
  const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: 'en-US' });
  const page = watch.page('cluster-phone', await ctx.newPage());
  try {
    await consoleLogin(page, boxA.base, ANN.username, ANN.password);
    const onA = (await firstConversation(boxA, tokenA)).id;
    await page.goto(`${boxA.base}/#/c/${onA}`);
    await page.getByText(/Held by Bo in the back/).waitFor();
    assert.equal(await overflowsHorizontally(page), false);
  } finally {
    await watch.shots('cluster-phone');
  }
  await ctx.close();
  assert.deepEqual(watch.problems, []);
  assert.deepEqual(watch.dialogs, []);
});
