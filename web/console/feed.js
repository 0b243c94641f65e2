// The agent live feed, /ws/agent: connects with after=<last seq seen> (so a reconnect gets
// everything missed, in order, none twice), reconnects with backoff (0.5 s doubling to 10 s),
// and hands frames to the state. While it is open the agent counts as online.
import { wsUrl } from '../shared/dom.js';
import { api, session } from './api.js';
import { applyHolders } from './holders.js';
import {
  state, emit, applyMessage, applyEvent, applyTyping, applyRead, applyDelivery, applyLinked,
  applyLabels, applyContact, applyRating, refreshConversations, loadLabels,
} from './state.js';

let ws = null;
let everOpened = false;
let timer = 0;
let delay = 500;
let queue = Promise.resolve();

export function startFeed() {
  if (!ws) connect();
}

export function stopFeed() {
  clearTimeout(timer);
  const sock = ws;
  ws = null;
  sock?.close();
  setUp(false);
}

function setUp(up) {
  if (state.feedUp === up) return;
  state.feedUp = up;
  emit('feed', up);
}

function connect() {
  const sock = new WebSocket(wsUrl('/ws/agent', { token: session.token, after: state.lastSeq }));
  ws = sock;
  let opened = false;
  sock.onopen = () => {
    // A reconnect replays missed messages and status changes; labels, names and ratings
    // changed meanwhile come with the rows read again.
    if (everOpened) refreshConversations().then(loadLabels).catch(() => {});
    everOpened = true;
    opened = true;
    delay = 500;
    setUp(true);
  };
  sock.onmessage = (e) => {
    let f;
    try {
      f = JSON.parse(e.data);
    } catch {
      return;
    }
    // Frames are applied one after another even when one waits for a conversation row.
    queue = queue.then(() => handle(f)).catch((err) => console.warn('feed frame', err));
  };
  sock.onclose = () => {
    if (ws !== sock) return;
    setUp(false);
    timer = setTimeout(async () => {
      // A refused upgrade looks like any failure: ask the API whether the token still holds.
      if (!opened) await api('/me').catch(() => {});
      if (ws === sock && session.token) connect();
    }, delay);
    delay = Math.min(delay * 2, 10000);
  };
}

async function handle(f) {
  if (f.type === 'typing') return applyTyping(f);
  if (f.type === 'read') return applyRead(f);
  if (!(f.seq > state.lastSeq)) return;
  state.lastSeq = f.seq;
  if (f.type === 'message') await applyMessage(f.message);
  else if (f.type === 'conversation') await applyEvent(f);
  else if (f.type === 'delivery') applyDelivery(f);
  else if (f.type === 'contacts_linked') await applyLinked(f);
  else if (f.type === 'labels') applyLabels(f);
  else if (f.type === 'contact') applyContact(f);
  else if (f.type === 'rating') applyRating(f);
  else if (f.type === 'holders') applyHolders(f);
}
