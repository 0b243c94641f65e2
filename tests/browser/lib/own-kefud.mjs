// A kefud of a test file's own: a fresh data directory, its own port and config, extra
// environment (TZ for business hours), and CLI runs against the same config (agents, an
// import) — so a test file neither depends on nor disturbs the shared daemon's data that
// console-widget.test.mjs walks through from first-run setup. Every wait is bounded.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { config, until } from './harness.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

async function freePort() {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

export class OwnKefud {
  constructor(env = {}) {
    this.env = env;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kefud-own-'));
    this.configFile = path.join(this.dir, 'kefud.toml');
    this.proc = null;
  }

  async prepare() {
    this.port = await freePort();
    this.base = `http://127.0.0.1:${this.port}`;
    fs.mkdirSync(path.join(this.dir, 'data'));
    fs.writeFileSync(this.configFile,
      `[server]\nlisten = "127.0.0.1:${this.port}"\n[storage]\ndata_dir = "${path.join(this.dir, 'data')}"\n`);
  }

  /** `kefud --config OURS ...args` with stdin; throws with its output on failure. */
  cli(args, input = '') {
    return execFileSync(config.bin, ['--config', this.configFile, ...args], {
      input, env: { ...process.env, ...this.env }, timeout: 60000, encoding: 'utf8',
    });
  }

  async start() {
    if (!this.port) await this.prepare();
    const log = fs.openSync(config.log, 'a');
    const web = process.env.KEFUD_WEB_DIR ? { KEFUD_WEB_DIR: path.resolve(repo, process.env.KEFUD_WEB_DIR) } : {};
    this.proc = spawn(config.bin, ['--config', this.configFile], {
      stdio: ['ignore', log, log], env: { ...process.env, ...this.env, ...web },
    });
    fs.closeSync(log);
    const proc = this.proc;
    await until('own kefud /healthz', async () => {
      if (proc.exitCode !== null) throw new Error(`kefud exited with ${proc.exitCode}; see ${config.log}`);
      return (await fetch(`${this.base}/healthz`)).ok;
    }, 20000);
  }

  async stop() {
    const proc = this.proc;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const exited = once(proc, 'exit');
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  async api(p, { token, method = 'GET', body } = {}) {
    const headers = { 'content-type': 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(`${this.base}/api/v1${p}`, { method, headers, body: body && JSON.stringify(body) });
    const text = await res.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch { parsed = text; }
    return { status: res.status, body: parsed, headers: res.headers };
  }

  /** First-run setup through the API: the shop and its admin; returns the admin's token. */
  async setup(shopName, admin) {
    const r = await this.api('/setup', { method: 'POST', body: { shop_name: shopName, ...admin } });
    if (r.status !== 201) throw new Error(`setup: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.token;
  }

  async login(username, password) {
    const r = await this.api('/login', { method: 'POST', body: { username, password } });
    if (r.status !== 200) throw new Error(`login ${username}: ${r.status}`);
    return r.body.token;
  }
}

/** Logs a console page in (the login form) and waits for the inbox. */
export async function consoleLogin(page, base, username, password) {
  await page.goto(`${base}/`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('tab', { name: /All open/ }).waitFor();
}

/** Whether anything on the page is wider than the viewport (a phone layout must not be). */
export async function overflowsHorizontally(page) {
  return page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
}
