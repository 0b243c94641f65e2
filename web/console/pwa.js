// The console as an installed app: registers the service worker (/sw.js, scope /), reloads
// the page once when a new build's worker takes over (so an upgraded kefud never runs an old
// console against its new API; drafts live in localStorage), opens the conversation a
// system notification was clicked for, and keeps the app icon's badge at the unread count.
export function startPwa(openHash) {
  if (!('serviceWorker' in navigator) || !window.isSecureContext) return;
  const hadController = Boolean(navigator.serviceWorker.controller);
  let reloading = false;
  navigator.serviceWorker.addEventListener('controllerchange', () => {
    // The first install takes over a page that already runs this build: nothing to reload.
    if (!hadController || reloading) return;
    reloading = true;
    location.reload();
  });
  navigator.serviceWorker.addEventListener('message', (e) => {
    if (e.data?.type === 'open' && typeof e.data.hash === 'string') openHash(e.data.hash);
  });
  navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch((e) => console.warn('service worker', e));
}

/** The installed app's icon badge (where the platform has one). */
export function setBadge(n) {
  if (!navigator.setAppBadge) return;
  (n ? navigator.setAppBadge(n) : navigator.clearAppBadge()).catch(() => {});
}
