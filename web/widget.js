// The one-line embed for a shop's site: <script src="http://HOST:8080/widget.js" defer></script>.
// Adds a chat bubble with an unread badge that opens /chat?embed=1 (on this script's own
// origin) in an iframe; the iframe reports unread counts and close requests by postMessage.
// Styles are set through element.style (the host page's CSP may forbid <style>); the two
// labels are the only strings, in English and Chinese.
// A shop that knows its customer passes a signed identity (see README, "Customers with
// names"): data-user-id, data-user-name, data-user-email and data-user-signature on this
// script tag, or window.kefu.identify({userId, name, email, signature}) before load (through
// the stub kefu = {q: [], identify(u) { this.q.push(u); }}) or after it; identify(null) goes
// back to an anonymous visitor. The identity reaches the iframe in its URL fragment (never a
// server's log) and, when it changes later, by postMessage to kefud's origin only.
(() => {
  const script = document.currentScript;
  if (!script || window.kefudWidget) return;
  window.kefudWidget = true;
  const origin = new URL(script.src).origin;
  const zh = /^zh\b/i.test(navigator.language || '');
  const label = zh ? { open: '在线客服', close: '关闭客服窗口' } : { open: 'Chat with us', close: 'Close chat' };
  const blue = '#2563eb';
  const narrow = matchMedia('(max-width: 480px)');
  let open = false;
  let ready = false;
  let identity = null;

  const bubble = document.createElement('button');
  bubble.type = 'button';
  bubble.setAttribute('aria-label', label.open);
  bubble.title = label.open;
  Object.assign(bubble.style, {
    position: 'fixed', right: '20px', bottom: '20px', width: '58px', height: '58px', padding: '0',
    border: '0', borderRadius: '50%', background: blue, color: '#fff', cursor: 'pointer',
    boxShadow: '0 6px 20px rgba(15,23,42,.28)', zIndex: '2147483000',
    display: 'flex', alignItems: 'center', justifyContent: 'center',
  });
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', '28');
  svg.setAttribute('height', '28');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  path.setAttribute('fill', 'currentColor');
  path.setAttribute('d', 'M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm3 6.5a1.5 1.5 0 1 0 0-3 1.5 1.5 0 0 0 0 3zm5 0a1.5 1.5 0 1 0 0-3 1.5 1.5 0 0 0 0 3zm5 0a1.5 1.5 0 1 0 0-3 1.5 1.5 0 0 0 0 3z');
  svg.append(path);
  const badge = document.createElement('span');
  badge.hidden = true;
  Object.assign(badge.style, {
    position: 'absolute', top: '-4px', right: '-4px', minWidth: '20px', height: '20px', padding: '0 6px',
    boxSizing: 'border-box', borderRadius: '10px', background: '#dc2626', color: '#fff',
    font: '600 12px/20px system-ui, sans-serif', textAlign: 'center',
  });
  bubble.append(svg, badge);

  const frame = document.createElement('iframe');
  // The same fragment as web/chat/identity.js reads.
  const chatUrl = () => `${origin}/chat?embed=1${identity ? `#kefu_identity=${encodeURIComponent(JSON.stringify(identity))}` : ''}`;
  frame.title = label.open;
  Object.assign(frame.style, {
    position: 'fixed', border: '0', background: '#fff', zIndex: '2147483001',
    boxShadow: '0 12px 40px rgba(15,23,42,.25)', display: 'none', colorScheme: 'light',
  });

  function layout() {
    const full = narrow.matches;
    Object.assign(frame.style, full
      ? { inset: '0', width: '100%', height: '100%', borderRadius: '0' }
      : { inset: 'auto', right: '20px', bottom: '92px', width: '380px', height: 'min(620px, calc(100vh - 120px))', borderRadius: '14px' });
    bubble.style.display = open && full ? 'none' : 'flex';
  }

  function tell() {
    if (ready) frame.contentWindow.postMessage({ type: 'kefud:visible', open }, origin);
  }

  function tellIdentity() {
    if (ready) frame.contentWindow.postMessage({ type: 'kefud:identity', identity }, origin);
  }

  /** {userId, name, email, signature} (kefud checks the signature), or null: anonymous. */
  function identify(user) {
    const str = (v) => (v == null ? '' : String(v));
    const next = user ? {
      userId: str(user.userId).trim(), name: str(user.name), email: str(user.email), signature: str(user.signature).trim(),
    } : null;
    if (next && (!next.userId || !next.signature)) {
      console.error('kefu.identify: userId and signature are required');
      return;
    }
    identity = next;
    // Not loaded yet: the fragment carries it; loaded: a message (and again at every ready).
    if (!frame.isConnected) frame.src = chatUrl();
    else tellIdentity();
  }

  function toggle(next) {
    open = next;
    frame.style.display = open ? 'block' : 'none';
    bubble.setAttribute('aria-label', open ? label.close : label.open);
    bubble.setAttribute('aria-expanded', String(open));
    layout();
    tell();
    if (!open) bubble.focus();
  }

  bubble.addEventListener('click', () => toggle(!open));
  narrow.addEventListener('change', layout);
  addEventListener('message', (e) => {
    if (e.origin !== origin || e.source !== frame.contentWindow) return;
    const { type, count } = e.data || {};
    if (type === 'kefud:ready') {
      ready = true;
      tell();
      tellIdentity();
    }
    else if (type === 'kefud:close') toggle(false);
    else if (type === 'kefud:unread') {
      badge.hidden = !count;
      badge.textContent = count > 99 ? '99+' : String(count);
      bubble.setAttribute('aria-label', `${open ? label.close : label.open}${count ? ` (${count})` : ''}`);
    }
  });
  const early = window.kefu && Array.isArray(window.kefu.q) ? window.kefu.q : [];
  window.kefu = { identify };
  const data = script.dataset;
  if (data.userId) identify({ userId: data.userId, name: data.userName, email: data.userEmail, signature: data.userSignature });
  early.forEach(identify);
  if (!frame.src) frame.src = chatUrl();
  layout();
  const mount = () => document.body.append(frame, bubble);
  if (document.body) mount();
  else addEventListener('DOMContentLoaded', mount);
})();
