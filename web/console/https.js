// Admin, HTTPS: the guide to trusting the box's CA (shared/trust.js) with a QR code of the
// public /trust page for phones, and a print button (the printed sheet is the guide alone).
// The QR code comes from GET /api/v1/qr.svg (agents only), fetched with the bearer token and
// shown through a blob: URL; without that endpoint the link is shown as text instead.
import { h } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { trustGuide, trustStyles, trustUrl } from '../shared/trust.js';
import { api } from './api.js';

let qrUrl = null;

async function qrImage(text) {
  try {
    const svg = await api(`/qr.svg?text=${encodeURIComponent(text)}&size=200`);
    if (!(svg instanceof Blob)) return null;
    if (qrUrl) URL.revokeObjectURL(qrUrl);
    qrUrl = URL.createObjectURL(svg);
    return h('img', { src: qrUrl, width: 200, height: 200, alt: text, class: 'trust-qr-img' });
  } catch {
    return null;
  }
}

export async function httpsPage(body) {
  trustStyles();
  const info = await api('/tls');
  const qr = info.status === 'serving' ? await qrImage(trustUrl(info)) : null;
  body.replaceChildren(
    h('div', { class: 'trust-head' },
      h('h2', { text: t('tls.title') }),
      h('button', { type: 'button', class: 'btn no-print', text: t('tls.print'), onclick: () => window.print() })),
    h('p', { class: 'muted no-print', text: t('tls.help') }),
    trustGuide(info, qr));
}
