// The console's service worker, served at /sw.js (scope /) with `const BUILD = {version,
// shell}` put in front by kefud (src/http/pwa.rs): every build is a new worker.
//
// - install: the shell (the console page, its modules, styles and icons) goes into the cache
//   named after this build; activate: caches of other builds are deleted and open consoles
//   are taken over (the page reloads itself once to run the new build).
// - fetch: a GET for a shell URL is answered from the cache (the network when missing);
//   every other request, above all /api/, /ws/, uploads and the chat page, is not touched
//   and goes to the network, so nothing a customer or an agent wrote is ever stored here.
// - notificationclick: focuses (or opens) the console at the conversation.
const CACHE = `kefud-shell-${BUILD.version}`;
const SHELL = new Set(BUILD.shell);
const NEVER = /^\/(api|ws|uploads|visitor|chat|metrics|healthz)(\/|$)/;

/** Whether a request may be answered from the shell cache. */
function fromShell(request) {
  if (request.method !== 'GET') return false;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || url.search || NEVER.test(url.pathname)) return false;
  return SHELL.has(url.pathname);
}

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    // Fetched afresh (no HTTP cache), so the cache holds exactly this build's files.
    await cache.addAll(BUILD.shell.map((url) => new Request(url, { cache: 'reload' })));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('kefud-shell-') && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  if (!fromShell(event.request)) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const hit = await cache.match(new URL(event.request.url).pathname);
    return hit ?? fetch(event.request);
  })());
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const hash = event.notification.data?.hash ?? '#/';
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    const open = windows.find((w) => new URL(w.url).pathname === '/');
    if (open) {
      open.postMessage({ type: 'open', hash });
      return open.focus();
    }
    return self.clients.openWindow(`/${hash}`);
  })());
});
