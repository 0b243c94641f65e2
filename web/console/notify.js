// New-message alerts: a short WebAudio beep (no audio file), the browser Notification while
// the tab is hidden. Audio and the permission prompt need a user gesture: unlock() is called
// from the first click or key press.
let ctx = null;
let lastBeep = 0;

export function unlock() {
  if (!ctx && window.AudioContext) ctx = new AudioContext();
  ctx?.resume().catch(() => {});
  if ('Notification' in window && Notification.permission === 'default') {
    Notification.requestPermission().catch(() => {});
  }
}

export function beep() {
  const now = Date.now();
  if (!ctx || ctx.state !== 'running' || now - lastBeep < 1500) return;
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

/** A system notification, only while the console is not in view. */
export function notify(title, body, onClick) {
  if (document.visibilityState !== 'hidden') return;
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  const n = new Notification(title, { body, tag: 'kefud-message' });
  n.onclick = () => {
    window.focus();
    onClick();
    n.close();
  };
}
