// How to trust the box's certificate authority, per operating system: drawn from
// GET /api/v1/tls by the console's Admin, HTTPS page and by the public /trust page (which a
// phone opens from the printed QR code, over plain HTTP since it trusts nothing yet).
// The phone link (and its QR code) points at the box's HTTP address: a device that does not
// trust the CA yet cannot open anything over HTTPS without a warning. Downloads are on this
// page's own origin (browsers block an http download from an https page).
import { h } from './dom.js';
import { lang, t } from './i18n.js';

const OSES = ['windows', 'macos', 'android', 'ios', 'linux'];

/** Loads trust.css once (the console does not link it). */
export function trustStyles() {
  if (document.querySelector('link[data-trust-css]')) return;
  document.head.append(h('link', { rel: 'stylesheet', href: '/web/shared/trust.css', 'data-trust-css': '' }));
}

/** http://HOST:PORT of the box as this page reached it (HOST as in the address bar). */
export function httpBase(info) {
  if (location.protocol === 'http:' || !info.http_port) return location.origin;
  return `http://${location.hostname.includes(':') ? `[${location.hostname}]` : location.hostname}:${info.http_port}`;
}

const LOOPBACK = ['localhost', '127.0.0.1', '[::1]', '::1'];

/** The page a phone opens from the QR code: on the box's LAN address when this page was
 * opened on the box itself (a phone cannot reach "localhost"), an IPv4 one first (phones
 * resolve it without mDNS). */
export function trustUrl(info) {
  if (LOOPBACK.includes(location.hostname) && info.http_port) {
    const hosts = (info.urls || []).map((u) => new URL(u).hostname);
    const host = hosts.find((x) => /^\d+\.\d+\.\d+\.\d+$/.test(x)) || hosts[0];
    if (host) return `http://${host}:${info.http_port}/trust`;
  }
  return `${httpBase(info)}/trust`;
}

/** "AA:BB:...:PP:" and "QQ:...:ZZ" from a fingerprint of 32 bytes. */
function halves(fp) {
  const bytes = fp.split(':');
  const mid = Math.ceil(bytes.length / 2);
  return [`${bytes.slice(0, mid).join(':')}:`, bytes.slice(mid).join(':')];
}

const fmtDate = (ms) => new Intl.DateTimeFormat(lang === 'zh' ? 'zh-CN' : 'en', { dateStyle: 'long' }).format(new Date(ms));

/**
 * The guide for `info` (GET /api/v1/tls). `qr`: an element to show beside the download (the
 * console's QR code of trustUrl), or null for the link as text.
 */
export function trustGuide(info, qr = null) {
  const secure = h('p', {
    class: `trust-conn ${window.isSecureContext && location.protocol === 'https:' ? 'ok' : 'warn'}`,
    text: t(location.protocol === 'https:' ? 'tls.secure' : 'tls.insecure'),
  });
  if (info.status !== 'serving') {
    return h('div', { class: 'trust-guide' },
      h('p', { class: 'card error', text: info.status === 'off' ? t('tls.off') : t('tls.failed', { error: info.error || '' }) }));
  }
  const url = trustUrl(info);
  return h('div', { class: 'trust-guide' },
    secure,
    h('p', { text: t('tls.intro') }),
    h('div', { class: 'card trust-ca' },
      h('div', { class: 'trust-ca-text' },
        h('p', {}, h('strong', { text: `${t('tls.ca')}: ` }), info.ca.name),
        h('p', { class: 'muted small', text: t('tls.fingerprint') }),
        // Two lines of 16 bytes, each whole: a line break never splits a byte.
        h('code', { class: 'trust-fp' }, halves(info.ca.sha256).map((line) => h('span', { text: line }))),
        h('div', { class: 'buttons trust-downloads' },
          h('a', { class: 'btn primary', href: info.ca.download, download: 'kefud-ca.crt', text: t('tls.download') }),
          h('a', { class: 'btn', href: info.ca.download_pem, download: 'kefud-ca.pem', text: t('tls.download_pem') })),
        h('p', { class: 'muted small', text: t('tls.expires', { date: fmtDate(info.certificate.not_after) }) })),
      h('figure', { class: 'trust-qr' },
        qr,
        h('figcaption', {},
          h('span', { class: 'small', text: qr ? t('tls.qr') : t('tls.qr_missing') }),
          h('a', { class: 'trust-link', href: url, text: url })))),
    OSES.map((os) => h('section', { class: 'card trust-os' },
      h('h3', { text: t(`tls.os.${os}`) }),
      h('ol', {}, t(`tls.steps.${os}`, { ca: info.ca.name }).split('\n').map((step) => h('li', { text: step }))))),
    h('section', { class: 'card trust-open' },
      h('h3', { text: t('tls.open') }),
      h('ul', {}, (info.urls || []).map((u) => h('li', {}, h('a', { href: u, text: u }))))));
}
