// New-message alerts: a short WebAudio tone (no audio file) unless muted, and a system
// notification while the console is not in view (document.visibilityState 'hidden') for a
// new customer and for a customer's new message, when the agent turned them on.
//
// Both switches live in the top bar (bell: notifications, speaker: sound) and are kept in
// localStorage. The browser asks for the notification permission only from the bell's click
// (a user gesture); audio may start only after one too: unlock() runs on the first click or
// key press. A click on a notification focuses the console at the conversation; where the
// page cannot make notifications itself (Android), the service worker shows them.
import { h, store } from '../shared/dom.js';
import { t } from '../shared/i18n.js';

const PREFS = 'kefud.alerts';
// Browsers allow notifications only in a secure context (https://, or the box itself).
const supported = () => 'Notification' in window && window.isSecureContext;
// Until the agent chooses, notifications are on where this browser already allows them.
const prefs = {
  notifications: supported() && Notification.permission === 'granted',
  sound: true,
  ...store.get(PREFS, {}),
};
let ctx = null;
let lastBeep = 0;

const save = () => store.set(PREFS, prefs);

export function unlock() {
  if (!ctx && window.AudioContext) ctx = new AudioContext();
  ctx?.resume().catch(() => {});
}

/** Whether system notifications are on: chosen by the agent and allowed by the browser. */
export function notificationsOn() {
  return prefs.notifications && supported() && Notification.permission === 'granted';
}

export function beep() {
  const now = Date.now();
  if (!prefs.sound || !ctx || ctx.state !== 'running' || now - lastBeep < 1500) return;
  lastBeep = now;
  const t0 = ctx.currentTime;
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  osc.frequency.setValueAtTime(880, t0);
  osc.frequency.setValueAtTime(1175, t0 + 0.09);
  gain.gain.setValueAtTime(0.0001, t0);
  gain.gain.exponentialRampToValueAtTime(0.2, t0 + 0.02);
  gain.gain.exponentialRampToValueAtTime(0.0001, t0 + 0.3);
  osc.connect(gain).connect(ctx.destination);
  osc.start(t0);
  osc.stop(t0 + 0.32);
}

/**
 * A system notification, only while the console is not in view. `tag` replaces an older
 * notification of the same conversation; `hash` is where a click on it leads.
 */
export function notify(title, body, tag, hash, onClick) {
  if (document.visibilityState !== 'hidden' || !notificationsOn()) return;
  // renotify: a later message of the same conversation alerts again instead of replacing silently.
  const options = { body, tag, renotify: true, icon: '/web/console/icons/icon-192.png', data: { hash } };
  try {
    const n = new Notification(title, options);
    n.onclick = () => {
      window.focus();
      onClick();
      n.close();
    };
  } catch {
    // Android: only a service worker may show one (its notificationclick opens the hash).
    navigator.serviceWorker?.ready.then((reg) => reg.showNotification(title, options)).catch(() => {});
  }
}

const SVG = 'http://www.w3.org/2000/svg';
const ICONS = {
  bell: ['M12 22a2 2 0 0 0 2-2h-4a2 2 0 0 0 2 2zm6-6v-5a6 6 0 0 0-5-5.9V4a1 1 0 0 0-2 0v1.1A6 6 0 0 0 6 11v5l-2 2v1h16v-1z'],
  sound: ['M4 9v6h4l5 4V5L8 9z', 'M16 8.5a5 5 0 0 1 0 7', 'M18.5 6a8.5 8.5 0 0 1 0 12'],
};

/** A 20 px line icon; struck through when off. */
function icon(name, on) {
  const el = document.createElementNS(SVG, 'svg');
  el.setAttribute('viewBox', '0 0 24 24');
  el.setAttribute('width', '20');
  el.setAttribute('height', '20');
  el.setAttribute('aria-hidden', 'true');
  const paths = ICONS[name].concat(on ? [] : ['M3 3 21 21']);
  paths.forEach((d, i) => {
    const p = document.createElementNS(SVG, 'path');
    p.setAttribute('d', d);
    const filled = i === 0;
    p.setAttribute('fill', filled ? 'currentColor' : 'none');
    p.setAttribute('stroke', 'currentColor');
    p.setAttribute('stroke-width', filled ? '0' : '2');
    p.setAttribute('stroke-linecap', 'round');
    el.append(p);
  });
  return el;
}

function paintToggle(btn, on, name, key) {
  btn.replaceChildren(icon(name, on));
  btn.setAttribute('aria-pressed', String(on));
  btn.setAttribute('aria-label', t(key));
  btn.title = `${t(key)}: ${t(on ? 'alerts.on' : 'alerts.off')}`;
  btn.classList.toggle('is-off', !on);
}

/** The top bar's two switches: system notifications (bell) and sound (speaker). */
export function alertButtons(toast) {
  const bell = h('button', { type: 'button', class: 'btn ghost icon-btn alerts-bell' });
  const speaker = h('button', { type: 'button', class: 'btn ghost icon-btn alerts-sound' });
  const paint = () => {
    paintToggle(bell, notificationsOn(), 'bell', 'alerts.notifications');
    paintToggle(speaker, prefs.sound, 'sound', 'alerts.sound');
  };
  bell.onclick = async () => {
    if (!supported()) return toast(t('alerts.unsupported'));
    if (notificationsOn()) {
      prefs.notifications = false;
    } else {
      const permission = Notification.permission === 'default'
        ? await Notification.requestPermission().catch(() => 'denied')
        : Notification.permission;
      prefs.notifications = permission === 'granted';
      if (!prefs.notifications) toast(t('alerts.blocked'));
    }
    save();
    paint();
    if (notificationsOn()) toast(t('alerts.notifications_on'));
  };
  speaker.onclick = () => {
    prefs.sound = !prefs.sound;
    save();
    unlock();
    paint();
    if (prefs.sound) {
      lastBeep = 0;
      beep();
    }
  };
  paint();
  return [bell, speaker];
}
