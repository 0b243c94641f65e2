// What the browser tests stand on: the kefud process (start, kill -9, stop; every wait
// bounded), Debian's chromium through playwright-core, a second local HTTP server playing the
// shop's own site (so the widget is cross-origin, as in real life), error and dialog
// collection for every page, and screenshots.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const env = (name, fallback) => process.env[name] || fallback;

export const config = {
  bin: env('KEFUD_BIN', path.join(repo, 'target/release/kefud')),
  configFile: env('KEFUD_CONFIG', ''),
  port: Number(env('KEFUD_PORT', '0')),
  tlsPort: Number(env('KEFUD_TLS_PORT', '0')),
  log: env('KEFUD_LOG', path.join(repo, 'target/browser-kefud.log')),
  pidFile: env('KEFUD_PID_FILE', ''),
  shots: env('SCREENSHOT_DIR', path.join(repo, 'target/screenshots')),
  docs: path.join(repo, 'docs/screenshots'),
  chromium: env('CHROMIUM', '/usr/bin/chromium'),
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls fn until it returns a truthy value; throws after ms. */
export async function until(what, fn, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

export class Kefud {
  constructor() {
    if (!config.configFile || !config.port) throw new Error('KEFUD_CONFIG and KEFUD_PORT are set by scripts/test-browser.sh');
    this.base = `http://127.0.0.1:${config.port}`;
    this.proc = null;
  }

  async start() {
    const log = fs.openSync(config.log, 'a');
    // KEFUD_WEB_DIR may be given relative to the repository (the tests run in tests/browser).
    const web = process.env.KEFUD_WEB_DIR ? { KEFUD_WEB_DIR: path.resolve(repo, process.env.KEFUD_WEB_DIR) } : {};
    this.proc = spawn(config.bin, ['--config', config.configFile], {
      stdio: ['ignore', log, log], env: { ...process.env, ...web },
    });
    fs.closeSync(log);
    if (config.pidFile) fs.writeFileSync(config.pidFile, String(this.proc.pid));
    const proc = this.proc;
    await until('kefud /healthz', async () => {
      if (proc.exitCode !== null) throw new Error(`kefud exited with ${proc.exitCode}; see ${config.log}`);
      return (await fetch(`${this.base}/healthz`)).ok;
    }, 20000);
  }

  /** kill -9: no goodbye to any connection. */
  async kill() {
    await this.#end('SIGKILL');
  }

  async stop() {
    await this.#end('SIGTERM');
  }

  async #end(signal) {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
    await exited;
    clearTimeout(timer);
  }

  async api(path, { token, method = 'GET', body } = {}) {
    const headers = { 'content-type': 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(`${this.base}/api/v1${path}`, { method, headers, body: body && JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }
}

/** The shop's own site on another port (another origin), with the one-line widget snippet. */
export async function shopSite(kefudBase) {
  const page = `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<title>Tea &amp; Co.</title></head>
<body style="font: 16px system-ui, sans-serif; margin: 40px; color: #333">
<h1>Tea &amp; Co.</h1><p>Fine teas since 1998. Questions? Chat with us, bottom right.</p>
<script src="${kefudBase}/widget.js" defer></script></body></html>`;
  const server = http.createServer((req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(page);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => server.close() };
}

/** Chromium; `args` are added to the usual flags, `env` replaces the environment (a HOME
 * whose ~/.pki/nssdb trusts the box's CA, say). */
export async function launchBrowser({ args = [], env: environment } = {}) {
  return chromium.launch({
    executablePath: config.chromium,
    timeout: 30000,
    env: environment,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', ...args],
  });
}

/**
 * Watches pages for uncaught exceptions, console errors and dialogs. Network errors are
 * expected only inside allowNetworkErrors() (a refused login, the daemon being down).
 */
export class Watch {
  constructor() {
    this.problems = [];
    this.dialogs = [];
    this.pages = [];
    this.netOk = 0;
  }

  page(label, page) {
    page.setDefaultTimeout(15000);
    page.setDefaultNavigationTimeout(20000);
    page.on('pageerror', (e) => this.problems.push(`${label}: uncaught ${e.message}`));
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      const network = /Failed to load resource|WebSocket connection to .* failed|ERR_CONNECTION_REFUSED/.test(m.text());
      if (network && this.netOk) return;
      this.problems.push(`${label}: console error ${m.text()} at ${m.location().url}`);
    });
    page.on('dialog', (d) => {
      this.dialogs.push(`${label}: ${d.type()} ${d.message()}`);
      d.dismiss().catch(() => {});
    });
    this.pages.push({ label, page });
    return page;
  }

  async allowNetworkErrors(fn) {
    this.netOk += 1;
    try {
      return await fn();
    } finally {
      this.netOk -= 1;
    }
  }

  async shot(page, name) {
    fs.mkdirSync(config.shots, { recursive: true });
    await page.screenshot({ path: path.join(config.shots, `${name}.png`), timeout: 10000 });
  }

  /** A screenshot of every open page: NAME-LABEL.png. */
  async shots(name) {
    fs.mkdirSync(config.shots, { recursive: true });
    for (const { label, page } of this.pages) {
      if (page.isClosed()) continue;
      await page.screenshot({ path: path.join(config.shots, `${name}-${label}.png`), timeout: 10000 }).catch(() => {});
    }
  }
}

/**
 * A screenshot for the README: target/screenshots/FILE, and docs/screenshots/FILE too when
 * UPDATE_DOC_SCREENSHOTS=1 (so an ordinary run leaves the work tree clean).
 */
export async function docShot(page, file) {
  fs.mkdirSync(config.shots, { recursive: true });
  await page.screenshot({ path: path.join(config.shots, file), timeout: 10000 });
  if (process.env.UPDATE_DOC_SCREENSHOTS === '1') {
    fs.mkdirSync(config.docs, { recursive: true });
    fs.copyFileSync(path.join(config.shots, file), path.join(config.docs, file));
  }
}
