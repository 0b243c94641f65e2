// HTTP client for /api/v1: the bearer token kept in localStorage, JSON in and out, errors as
// ApiError with the server's code. A 401 while logged in ends the session through
// session.onExpired (drafts live in localStorage, so nothing typed is lost).
import { store } from '../shared/dom.js';
import { t } from '../shared/i18n.js';

export const session = { token: store.get('kefud.token'), onExpired: () => {} };

export function setToken(token) {
  session.token = token;
  store.set('kefud.token', token);
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** api('/conversations', {method: 'POST', body: {...}}); raw: send body as is (files). */
export async function api(path, { method = 'GET', body, raw = false, type } = {}) {
  const headers = {};
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  let payload = body;
  if (body !== undefined && !raw) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  } else if (type) {
    headers['Content-Type'] = type;
  }
  let res;
  try {
    res = await fetch(`/api/v1${path}`, { method, headers, body: payload });
  } catch {
    throw new ApiError(0, 'network', t('err.network'));
  }
  if (res.status === 401 && session.token) {
    setToken(null);
    session.onExpired();
    throw new ApiError(401, 'expired', t('login.expired'));
  }
  if (!res.ok) {
    const err = await res.json().catch(() => ({}));
    throw new ApiError(res.status, err.code || `http_${res.status}`, err.message || res.statusText);
  }
  if (res.status === 204) return null;
  return (res.headers.get('content-type') || '').includes('json') ? res.json() : res.blob();
}

/** The user-facing text for an error: a translation of its code when there is one. */
export function errText(e) {
  const key = `err.${e.code}`;
  const text = t(key);
  return text === key ? e.message || t('err.generic') : text;
}

const blobs = new Map();
/** An object URL for an upload (an <img src> cannot send the bearer header). */
export function uploadUrl(id) {
  if (!blobs.has(id)) {
    const p = api(`/uploads/${encodeURIComponent(id)}`).then((b) => URL.createObjectURL(b));
    p.catch(() => blobs.delete(id));
    blobs.set(id, p);
  }
  return blobs.get(id);
}
