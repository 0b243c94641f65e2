// Helpers shared by the console and the chat page: the element builder (text always goes in as
// text nodes, never as HTML), localStorage that survives being blocked, time formats, ids.
import { lang, t } from './i18n.js';

/** h('a', {class: 'x', href: '#/', onclick: fn, 'aria-label': 'y'}, child, 'text', [more]) */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k in el && !k.includes('-')) el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// A third-party iframe may have its storage blocked: fall back to memory for the page's life.
const memory = new Map();
export const store = {
  get(key, fallback = null) {
    try {
      const raw = localStorage.getItem(key);
      return raw == null ? fallback : JSON.parse(raw);
    } catch {
      return memory.has(key) ? memory.get(key) : fallback;
    }
  },
  set(key, value) {
    memory.set(key, value);
    try {
      if (value == null) localStorage.removeItem(key);
      else localStorage.setItem(key, JSON.stringify(value));
    } catch { /* memory only */ }
  },
};

const locale = lang === 'zh' ? 'zh-CN' : 'en';
const clock = new Intl.DateTimeFormat(locale, { hour: '2-digit', minute: '2-digit' });
const dated = new Intl.DateTimeFormat(locale, {
  month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
});

/** 14:05 today, "Mar 3, 14:05" otherwise. */
export function fmtTime(ms) {
  const d = new Date(ms);
  return (d.toDateString() === new Date().toDateString() ? clock : dated).format(d);
}

/** "now", "5 min", "3 h", "2 d". */
export function fmtAgo(ms) {
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return t('ago.now');
  if (s < 3600) return t('ago.min', { n: Math.floor(s / 60) });
  if (s < 86400) return t('ago.h', { n: Math.floor(s / 3600) });
  return t('ago.d', { n: Math.floor(s / 86400) });
}

/** A random id; crypto.randomUUID exists only in secure contexts (not on http://192.168.x.y). */
export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** ws://host or wss://host for a path on this origin. */
export function wsUrl(path, params) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}${path}?${new URLSearchParams(params)}`;
}
