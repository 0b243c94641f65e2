// Who the customer is to kefud: an anonymous visitor id (made by kefud, kept in localStorage),
// or a signed identity the shop's website vouches for (user id, name, e-mail and the HMAC of
// them with the shop's secret). widget.js hands a signed identity to this page in the iframe's
// URL fragment (#kefu_identity=...) and, when the shop calls kefu.identify() later, by
// postMessage; a fragment never reaches a server or its logs. The chat then sends it as the
// user_* fields kefud checks (the WebSocket URL, the visitor API) instead of a visitor_id.
// Pure: no storage, no network.

const FRAGMENT_KEY = 'kefu_identity';

/**
 * {userId, name, email, signature} from what a shop gave (strings; name and e-mail may be
 * empty), or null when there is no usable identity (no user id or no signature).
 */
export function normalize(raw) {
  if (!raw || typeof raw !== 'object') return null;
  const str = (v) => (v == null ? '' : String(v));
  const userId = str(raw.userId).trim();
  const signature = str(raw.signature).trim();
  if (!userId || !signature) return null;
  return { userId, name: str(raw.name), email: str(raw.email), signature };
}

/** The identity in a URL fragment (`#kefu_identity=<JSON, URI-encoded>`), or null. */
export function fromFragment(hash) {
  const raw = new URLSearchParams(String(hash || '').replace(/^#/, '')).get(FRAGMENT_KEY);
  if (!raw) return null;
  try {
    return normalize(JSON.parse(raw));
  } catch {
    return null;
  }
}

/** The fragment that carries `identity` (empty for none); widget.js builds the same. */
export function toFragment(identity) {
  return identity ? `#${FRAGMENT_KEY}=${encodeURIComponent(JSON.stringify(identity))}` : '';
}

export function sameIdentity(a, b) {
  if (!a || !b) return !a && !b;
  return a.userId === b.userId && a.name === b.name && a.email === b.email && a.signature === b.signature;
}

/** The fields kefud takes as the customer's credentials: signed user, visitor id, or none. */
export function credentials(identity, visitorId) {
  if (identity) {
    return {
      user_id: identity.userId,
      user_name: identity.name,
      user_email: identity.email,
      user_signature: identity.signature,
    };
  }
  return visitorId ? { visitor_id: visitorId } : {};
}

/**
 * The name a customer's local state (outbox, read mark, form, ratings) is kept under: the
 * signed user's id (kefud's `user:<id>`), else the visitor id; null before kefud named one.
 */
export function scope(identity, visitorId) {
  if (identity) return `user:${identity.userId}`;
  return visitorId || null;
}
