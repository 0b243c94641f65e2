// The customer's calls to kefud's visitor API besides the WebSocket: credentials (a visitor id
// or a signed identity, from identity.js) in the query string of a GET and in the JSON body of
// a POST, as kefud reads them. Answers {status, body}; a network failure throws.

async function answer(res) {
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch { /* not JSON: the status says enough */ }
  return { status: res.status, body };
}

export async function visitorGet(path, creds) {
  return answer(await fetch(`/api/v1${path}?${new URLSearchParams(creds)}`));
}

export async function visitorPost(path, creds, body) {
  return answer(await fetch(`/api/v1${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...creds, ...body }),
  }));
}
