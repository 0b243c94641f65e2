// A kefud of one test file's own: the run's config (scripts/test-browser.sh) with another port
// and an empty data directory, so a file does not depend on what the files before it left
// (each test file runs in a process of its own, so pointing the harness's config here
// changes nothing for the others). The shop is set up through the API.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { config, Kefud } from './harness.mjs';

async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** A started kefud on a fresh data directory; `admin` is created with `shop` as the shop name. */
export async function freshKefud({ shop, admin }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kefud-fresh-'));
  const port = await freePort();
  const base = fs.readFileSync(process.env.KEFUD_CONFIG, 'utf8');
  const file = path.join(dir, 'kefud.toml');
  fs.writeFileSync(file, base
    .replace(/^listen = .*$/m, `listen = "127.0.0.1:${port}"`)
    .replace(/^data_dir = .*$/m, `data_dir = "${path.join(dir, 'data')}"`));
  config.configFile = file;
  config.port = port;
  const kefud = new Kefud();
  kefud.cleanup = async () => {
    await kefud.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await kefud.start();
    const setup = await kefud.api('/setup', { method: 'POST', body: { shop_name: shop, ...admin } });
    if (setup.status !== 201) throw new Error(`setup: ${setup.status} ${JSON.stringify(setup.body)}`);
    kefud.token = setup.body.token;
  } catch (e) {
    await kefud.cleanup();
    throw e;
  }
  return kefud;
}

/**
 * A customer writes through the visitor WebSocket (/ws/visitor), from a page of their own
 * browser: each text is sent and its ack awaited, as the widget does.
 */
export async function customerSays(page, base, visitorId, texts) {
  return page.evaluate(async ({ url, texts }) => {
    const ws = new WebSocket(url);
    const frames = [];
    let wake = () => {};
    ws.onmessage = (e) => { frames.push(JSON.parse(e.data)); wake(); };
    const next = (pred) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no frame in 10 s')), 10000);
      const check = () => {
        const i = frames.findIndex(pred);
        if (i < 0) return;
        clearTimeout(timer);
        resolve(frames.splice(i, 1)[0]);
      };
      wake = check;
      check();
    });
    await next((f) => f.type === 'welcome');
    const ids = [];
    for (const [i, text] of texts.entries()) {
      const clientId = `${Date.now()}-${i}`;
      ws.send(JSON.stringify({ type: 'message', client_id: clientId, text }));
      ids.push((await next((f) => f.type === 'ack' && f.client_id === clientId)).message_id);
    }
    ws.close();
    return ids;
  }, { url: `${base.replace(/^http/, 'ws')}/ws/visitor?visitor_id=${visitorId}`, texts });
}
