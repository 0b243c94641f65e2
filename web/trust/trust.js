// The public /trust page: the guide of shared/trust.js for whichever device opened it, and a
// print button. No QR code here (it needs an agent's login); the console's page has one.
import { h } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { trustGuide } from '../shared/trust.js';

const root = document.getElementById('trust');

async function show() {
  let info;
  try {
    const res = await fetch('/api/v1/tls');
    info = await res.json();
  } catch {
    info = { status: 'failed', error: t('err.network') };
  }
  root.replaceChildren(
    h('header', {},
      h('h1', { text: t('tls.title') }),
      h('button', { type: 'button', class: 'btn no-print', text: t('tls.print'), onclick: () => window.print() })),
    trustGuide(info));
}

show();
