// Customers with names, and their ratings, end to end through the widget on another site:
// the pre-chat form in "before" mode with required fields (blocks the composer, validation,
// the name on the contact after the first message) and in the default "during" mode (a card
// in the thread); signed identities (data attributes and kefu.identify() on the shop's page,
// the HMAC computed here as the shop's server would; user:<id> as the conversation's identity,
// the vouched name on the contact, no form asking for it; a forged signature refused with a
// clear message and nothing sent); the rating card after an agent resolves (keyboard stars,
// a comment, the report shows it; shown again on reconnect until rated, never after; a new
// message takes it away); the form and the card at phone size without sideways scrolling;
// Admin → Customers in the console (the setting, a new secret) at phone size; and the chat's
// pure rules (form checks, the identity fragment, when a rating is due) run in the page.
// The shop's pre-chat setting is put back to the default at the end (one kefud serves every
// test file in turn).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { once } from 'node:events';
import {
  Kefud, Watch, launchBrowser, docShot, until,
} from '../lib/harness.mjs';

// The same admin as console-widget.test.mjs: whichever file runs first creates it.
const ADMIN = { username: 'li', display_name: 'Li Na', password: 'oolong-and-jasmine' };
const SHOP = 'Tea & Co.';
const DESKTOP = { viewport: { width: 1280, height: 800 }, locale: 'en-US' };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: 'en-US' };
const kefud = new Kefud();
const watch = new Watch();
let browser;
let site;
let token;
let secret;
let step = 0;

function scenario(name, fn) {
  test(name, { timeout: 120000 }, async () => {
    step += 1;
    const slug = `customer-${String(step).padStart(2, '0')}-${name.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 40).replace(/^-|-$/g, '')}`;
    try {
      await fn();
    } finally {
      await watch.shots(slug);
    }
  });
}

/** What the shop's own server does: HMAC-SHA256 of "id\nname\nemail" with the shop's secret. */
const sign = (key, id, name, email) => crypto.createHmac('sha256', key).update(`${id}\n${name}\n${email}`).digest('hex');

/**
 * The shop's site on its own origin: `/` with the plain snippet, `/account?...` with a signed
 * customer in the script tag's data attributes (as the shop's server would render it),
 * `/early?...` with the customer given to kefu.identify() before widget.js loads (the stub).
 */
async function shopSite(kefudBase) {
  const esc = (s) => String(s).replace(/[&"<>]/g, (c) => `&#${c.charCodeAt(0)};`);
  const page = (attrs, early = '') => `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<title>${esc(SHOP)}</title></head>
<body style="font: 16px system-ui, sans-serif; margin: 40px; color: #333">
<h1>${esc(SHOP)}</h1><p>Your account. Questions? Chat with us, bottom right.</p>${early}
<script src="${kefudBase}/widget.js" defer${Object.entries(attrs).map(([k, v]) => ` data-${k}="${esc(v)}"`).join('')}></script></body></html>`;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/' || url.pathname === '/account') {
      const attrs = url.pathname === '/account' ? {
        'user-id': url.searchParams.get('id'),
        'user-name': url.searchParams.get('name'),
        'user-email': url.searchParams.get('email'),
        'user-signature': url.searchParams.get('sig'),
      } : {};
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(page(attrs));
    } else if (url.pathname === '/early') {
      const user = Object.fromEntries(['userId', 'name', 'email', 'signature'].map((k) => [k, url.searchParams.get(k)]));
      const stub = `<script>
window.kefu = window.kefu || { q: [], identify(u) { this.q.push(u); } };
kefu.identify(${JSON.stringify(user).replace(/</g, '\\u003c')});
</script>`;
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(page({}, stub));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

/** Opens the widget on a page of the shop's site; the chat's frame. */
async function openWidget(page, url) {
  await page.goto(url);
  await page.getByRole('button', { name: 'Chat with us' }).click();
  const frame = page.locator('iframe[src*="/chat?embed=1"]');
  await frame.waitFor();
  return frame.contentFrame();
}

/** The chat is connected (whether or not an agent is online). */
async function connected(chat) {
  await until('the chat connected', async () => !['', 'Connecting…'].includes((await chat.locator('#status').textContent()).trim()));
}

const chatFrame = (page) => page.frames().find((f) => f.url().includes('/chat?embed=1'));

async function conversationOf(externalId) {
  return until(`a conversation for ${externalId}`, async () => {
    const { body } = await kefud.api('/conversations?status=all&limit=500', { token });
    return body.conversations.find((c) => c.external_id === externalId);
  });
}

async function contactOf(conversationId) {
  const conv = (await kefud.api(`/conversations/${conversationId}`, { token })).body;
  return (await kefud.api(`/contacts/${conv.contact_id}`, { token })).body;
}

/** No sideways scrolling in the page or in the chat's frame. */
async function assertFits(page, what) {
  const outer = await page.evaluate(() => document.documentElement.scrollWidth);
  const inner = await chatFrame(page).evaluate(() => [document.documentElement.scrollWidth, document.body.scrollWidth]);
  assert.ok(outer <= 390 && Math.max(...inner) <= 390, `${what}: no sideways scrolling (${outer}, ${inner})`);
}

before(async () => {
  await kefud.start();
  site = await shopSite(kefud.base);
  browser = await launchBrowser();
});

after(async () => {
  // Other test files expect the default: the form offered once a customer wrote.
  if (token) await kefud.api('/settings/prechat', { method: 'PUT', token, body: { mode: 'during', required: false } }).catch(() => {});
  await browser?.close().catch(() => {});
  site?.close();
  await kefud.stop();
});

scenario('the chat\'s own rules: form checks, the identity fragment, when to ask for a rating', async () => {
  const page = watch.page('rules', await (await browser.newContext(DESKTOP)).newPage());
  await page.goto(`${kefud.base}/chat`);
  const got = await page.evaluate(async () => {
    const { checkProfile, prechatConfig } = await import('/web/chat/prechat.js');
    const who = await import('/web/chat/identity.js');
    const { wantsRating } = await import('/web/chat/rating.js');
    const id = { userId: '7', name: 'Li "Wei" & co', email: '', signature: 'ab' };
    return {
      empty: checkProfile({}, { required: true }),
      vouched: checkProfile({}, { required: true, vouched: { name: 'A', email: 'a@b.c' } }),
      optional: checkProfile({}),
      bad: checkProfile({ name: 'x'.repeat(101), phone: '12a', email: 'a@b' }),
      good: checkProfile({ name: ' 陈静 ', phone: '+86 (139) 1234-5678', email: 'chen.jing@example.com' }, { required: true }),
      config: [prechatConfig({}), prechatConfig({ prechat: { mode: 'before', required: true } }), prechatConfig({ prechat: { mode: 'sometimes' } })],
      roundTrip: who.fromFragment(who.toFragment(id)),
      noSignature: who.fromFragment(who.toFragment({ ...id, signature: '' })),
      garbage: who.fromFragment('#kefu_identity=%7Bnot-json'),
      creds: [who.credentials(id, 'v-1'), who.credentials(null, 'v-1'), who.credentials(null, null)],
      scope: [who.scope(id, 'user:7'), who.scope(null, 'v-1'), who.scope(null, null)],
      rating: [
        wantsRating({ conversation_id: 3, status: 'resolved', rating: null }, []),
        wantsRating({ conversation_id: 3, status: 'idle', rating: null }, []),
        wantsRating({ conversation_id: 3, status: 'resolved', rating: { score: 5, comment: '' } }, []),
        wantsRating({ conversation_id: 3, status: 'resolved', rating: null }, [3]),
        wantsRating({ conversation_id: 3, status: 'waiting', rating: null }, []),
        wantsRating({ conversation_id: 3, status: 'waiting', rating: null }, [], 3),
        wantsRating({ conversation_id: 4, status: 'waiting', rating: null }, [], 3),
      ],
    };
  });
  assert.deepEqual(got.empty, { name: 'chat.prechat.need_name', contact: 'chat.prechat.need_contact' });
  assert.deepEqual(got.vouched, {});
  assert.deepEqual(got.optional, {});
  assert.deepEqual(got.bad, { name: 'chat.prechat.bad_name', phone: 'chat.prechat.bad_phone', email: 'chat.prechat.bad_email' });
  assert.deepEqual(got.good, {});
  assert.deepEqual(got.config, [{ mode: 'during', required: false }, { mode: 'before', required: true }, { mode: 'during', required: false }]);
  assert.deepEqual(got.roundTrip, { userId: '7', name: 'Li "Wei" & co', email: '', signature: 'ab' });
  assert.equal(got.noSignature, null);
  assert.equal(got.garbage, null);
  assert.deepEqual(got.creds, [
    { user_id: '7', user_name: 'Li "Wei" & co', user_email: '', user_signature: 'ab' }, { visitor_id: 'v-1' }, {},
  ]);
  assert.deepEqual(got.scope, ['user:7', 'v-1', null]);
  assert.deepEqual(got.rating, [true, true, false, false, false, true, false]);
  await page.context().close();
});

scenario('an admin asks for a name and a phone or e-mail before the chat', async () => {
  if ((await kefud.api('/setup')).body.needed) {
    const made = await kefud.api('/setup', { method: 'POST', body: { shop_name: SHOP, ...ADMIN } });
    assert.equal(made.status, 201, JSON.stringify(made.body));
  }
  const login = await kefud.api('/login', { method: 'POST', body: { username: ADMIN.username, password: ADMIN.password } });
  assert.equal(login.status, 200);
  token = login.body.token;
  assert.deepEqual((await kefud.api('/widget/info')).body.prechat, { mode: 'during', required: false }, 'the default');
  const put = await kefud.api('/settings/prechat', { method: 'PUT', token, body: { mode: 'before', required: true } });
  assert.equal(put.status, 200);
  assert.deepEqual((await kefud.api('/widget/info')).body.prechat, { mode: 'before', required: true });
});

scenario('pre-chat "before", required: the form blocks until filled, then the name reaches the contact', async () => {
  const page = watch.page('prechat-before', await (await browser.newContext(DESKTOP)).newPage());
  const chat = await openWidget(page, `${site.url}/`);
  const form = chat.getByRole('form', { name: 'How can we reach you?' });
  await form.waitFor();
  assert.ok(await chat.getByLabel('Type a message…').isHidden(), 'no composer before the form is filled');
  assert.equal(await form.getByRole('button', { name: 'Skip' }).count(), 0, 'required: nothing to skip');

  await form.getByRole('button', { name: 'Start the chat' }).click();
  await form.getByText('Please enter your name.').waitFor();
  await form.getByText('Please enter a phone number or an e-mail address.').waitFor();
  assert.equal(await form.getByLabel('Name').getAttribute('aria-invalid'), 'true');
  await form.getByLabel('Name').fill('Chen Jing');
  await form.getByLabel('Phone').fill('call me after six');
  await form.getByRole('button', { name: 'Start the chat' }).click();
  await form.getByText('A phone number has digits, and may have spaces and + - ( ) .').waitFor();
  assert.equal(await form.getByText('Please enter your name.').count(), 0);
  assert.ok(await chat.getByLabel('Type a message…').isHidden());
  await form.getByLabel('Phone').fill('+86 139 1234 5678');
  await form.getByRole('button', { name: 'Start the chat' }).click();
  await form.waitFor({ state: 'detached' });

  const box = chat.getByLabel('Type a message…');
  await box.fill('Do you have Longjing from this spring?');
  await box.press('Enter');
  await chat.locator('.msg.mine[data-state="sent"]').waitFor();
  const visitor = await chatFrame(page).evaluate(() => JSON.parse(localStorage.getItem('kefud.visitor')));
  const conv = await conversationOf(visitor);
  await until('the name and phone on the contact', async () => {
    const c = await contactOf(conv.id);
    return c.name === 'Chen Jing' && c.phone === '+86 139 1234 5678';
  });
  assert.equal((await contactOf(conv.id)).email, '');

  // Done for this visitor: a reload shows the thread and the composer, no form.
  await page.reload();
  await page.getByRole('button', { name: 'Chat with us' }).click();
  const again = chatFrame(page);
  await again.locator('.msg.mine[data-state="sent"]', { hasText: 'Longjing' }).waitFor();
  await again.getByLabel('Type a message…').waitFor();
  await page.waitForTimeout(800);
  assert.equal(await again.locator('form.prechat').count(), 0, 'not asked again');
});

scenario('a signed customer: user:<id> on the conversation, the shop\'s name on the contact, no form', async () => {
  const made = await kefud.api('/settings/identity-secret', { method: 'POST', token });
  assert.equal(made.status, 201);
  secret = made.body.secret;
  const user = { id: 'cust-1001', name: 'Wang Fang', email: 'wang.fang@example.com' };
  const query = new URLSearchParams({ ...user, sig: sign(secret, user.id, user.name, user.email) });
  const page = watch.page('signed', await (await browser.newContext(DESKTOP)).newPage());
  const chat = await openWidget(page, `${site.url}/account?${query}`);
  const src = await page.locator('iframe[src*="/chat?embed=1"]').getAttribute('src');
  assert.equal(new URL(src).search, '?embed=1', 'the identity is not in a query string the server logs');
  await connected(chat);
  await page.waitForTimeout(800);
  assert.equal(await chat.locator('form.prechat').count(), 0, 'name and e-mail are vouched for: no form');
  await chat.getByLabel('Type a message…').fill('Where is my order 20931?');
  await chat.getByLabel('Type a message…').press('Enter');
  await chat.locator('.msg.mine[data-state="sent"]').waitFor();
  const conv = await conversationOf(`user:${user.id}`);
  await until('the vouched name and e-mail on the contact', async () => {
    const c = await contactOf(conv.id);
    return c.name === user.name && c.email === user.email;
  });
  assert.equal(await chatFrame(page).evaluate(() => localStorage.getItem('kefud.visitor')), null, 'no anonymous visitor id kept');

  // The same customer on another device: the same thread.
  const other = watch.page('signed-second-device', await (await browser.newContext(DESKTOP)).newPage());
  const chat2 = await openWidget(other, `${site.url}/account?${query}`);
  await chat2.locator('.msg.mine', { hasText: 'Where is my order 20931?' }).waitFor();
  await other.context().close();

  // The shop names another customer after load (kefu.identify): the chat starts over as them,
  // and asks only for what the shop did not vouch for (no e-mail given: phone or e-mail).
  const late = { userId: 'cust-2002', name: 'Zhao Lei', email: '' };
  await page.evaluate((u) => window.kefu.identify(u), { ...late, signature: sign(secret, late.userId, late.name, late.email) });
  await until('the thread of the first customer gone', async () => (await chat.locator('.msg', { hasText: 'order 20931' }).count()) === 0);
  const form = chat.getByRole('form', { name: 'How can we reach you?' });
  await form.waitFor();
  assert.equal(await form.getByLabel('Name').count(), 0, 'the name is vouched for');
  await form.getByRole('button', { name: 'Start the chat' }).click();
  await form.getByText('Please enter a phone number or an e-mail address.').waitFor();
  await form.getByLabel('E-mail').fill('zhao.lei@example.com');
  await form.getByRole('button', { name: 'Start the chat' }).click();
  await chat.getByLabel('Type a message…').fill('Hello from Zhao');
  await chat.getByLabel('Type a message…').press('Enter');
  await chat.locator('.msg.mine[data-state="sent"]', { hasText: 'Hello from Zhao' }).waitFor();
  const conv2 = await conversationOf(`user:${late.userId}`);
  await until('Zhao Lei and the e-mail from the form', async () => {
    const c = await contactOf(conv2.id);
    return c.name === 'Zhao Lei' && c.email === 'zhao.lei@example.com';
  });
  await page.context().close();

  // Given before widget.js loads, through the stub: the same as the data attributes.
  const early = { userId: 'cust-3003', name: 'Liu Yang', email: 'liu.yang@example.com' };
  const page3 = watch.page('signed-early', await (await browser.newContext(DESKTOP)).newPage());
  const chat3 = await openWidget(page3, `${site.url}/early?${new URLSearchParams({ ...early, signature: sign(secret, early.userId, early.name, early.email) })}`);
  await chat3.getByLabel('Type a message…').fill('Hello from Liu');
  await chat3.getByLabel('Type a message…').press('Enter');
  await chat3.locator('.msg.mine[data-state="sent"]').waitFor();
  const conv3 = await conversationOf(`user:${early.userId}`);
  await until('Liu Yang on the contact', async () => (await contactOf(conv3.id)).name === early.name);
  await page3.context().close();
});

scenario('a forged signature: a clear error in the widget, nothing sent', async () => {
  const user = { id: 'cust-1001', name: 'Wang Fang', email: 'wang.fang@example.com' };
  const forged = sign('not the shop secret', user.id, user.name, user.email);
  const before = (await kefud.api('/conversations?status=all&limit=500', { token })).body.conversations.length;
  const page = watch.page('forged', await (await browser.newContext(DESKTOP)).newPage());
  await watch.allowNetworkErrors(async () => {
    const chat = await openWidget(page, `${site.url}/account?${new URLSearchParams({ ...user, sig: forged })}`);
    await chat.getByText('This chat could not confirm who you are, so nothing can be sent.', { exact: false }).waitFor();
    await chat.getByText('the signature does not match', { exact: false }).waitFor();
    await chat.getByText('Chat unavailable').waitFor();
    assert.ok(await chat.getByLabel('Type a message…').isDisabled(), 'the composer is off');
    assert.ok(await chat.getByRole('button', { name: 'Send', exact: true }).isDisabled());
    assert.equal(await chat.locator('form.prechat').count(), 0);
    await page.waitForTimeout(1500);
  });
  const { body } = await kefud.api('/conversations?status=all&limit=500', { token });
  assert.equal(body.conversations.length, before, 'no conversation was made');
  const msgs = (await kefud.api(`/conversations/${(await conversationOf(`user:${user.id}`)).id}/messages`, { token })).body.messages;
  assert.equal(msgs.filter((m) => m.sender === 'visitor').length, 1, 'nothing was added to the real customer\'s thread');
  await page.context().close();
});

scenario('rating: the agent resolves, the card asks, 4 stars and a comment reach the report', async () => {
  const page = watch.page('rating', await (await browser.newContext(DESKTOP)).newPage());
  await kefud.api('/settings/prechat', { method: 'PUT', token, body: { mode: 'off', required: false } });
  const chat = await openWidget(page, `${site.url}/`);
  await chat.getByLabel('Type a message…').fill('Is the tea set in stock?');
  await chat.getByLabel('Type a message…').press('Enter');
  await chat.locator('.msg.mine[data-state="sent"]').waitFor();
  const visitor = await chatFrame(page).evaluate(() => JSON.parse(localStorage.getItem('kefud.visitor')));
  const conv = await conversationOf(visitor);
  assert.equal(await chat.locator('.prechat-card').count(), 0, 'mode off: no form');
  await kefud.api(`/conversations/${conv.id}/messages`, { method: 'POST', token, body: { text: 'Yes, we have three left.' } });
  await chat.locator('.msg.theirs', { hasText: 'three left' }).waitFor();
  assert.equal((await kefud.api(`/conversations/${conv.id}/resolve`, { method: 'POST', token })).status, 200);

  // Live, from the resolved frame.
  const card = chat.getByRole('form', { name: 'How did we do?' });
  await card.waitFor();
  // On a reconnect too (kefud is asked), until it is rated.
  await page.reload();
  await page.getByRole('button', { name: 'Chat with us' }).click();
  const chat2 = chatFrame(page);
  const card2 = chat2.getByRole('form', { name: 'How did we do?' });
  await card2.waitFor();

  await card2.getByRole('button', { name: 'Send the rating' }).click();
  await card2.getByText('Choose 1 to 5 stars.').waitFor();
  // Keyboard: the first star, then the arrow keys.
  await card2.getByRole('button', { name: '1 star', exact: true }).focus();
  for (let i = 0; i < 3; i += 1) await page.keyboard.press('ArrowRight');
  assert.equal(await card2.getByRole('button', { name: '4 stars' }).getAttribute('aria-pressed'), 'true');
  assert.equal(await card2.locator('.star.on').count(), 4);
  await card2.getByLabel('A comment (optional)').fill('Quick and friendly, thank you');
  await card2.getByRole('button', { name: 'Send the rating' }).click();
  await chat2.getByText('Thank you for your rating!').waitFor();

  const report = await until('the rating in the report', async () => {
    const { body } = await kefud.api('/reports/ratings?days=7', { token });
    return body.comments.find((c) => c.conversation_id === conv.id) && body;
  });
  const row = report.comments.find((c) => c.conversation_id === conv.id);
  assert.deepEqual([row.score, row.comment], [4, 'Quick and friendly, thank you']);
  assert.deepEqual((await kefud.api(`/visitor/conversation?visitor_id=${visitor}`)).body.rating, { score: 4, comment: 'Quick and friendly, thank you' });

  // Rated: not asked again after a reload.
  await page.reload();
  await page.getByRole('button', { name: 'Chat with us' }).click();
  await chatFrame(page).locator('.msg.theirs', { hasText: 'three left' }).waitFor();
  await page.waitForTimeout(1000);
  assert.equal(await chatFrame(page).locator('.rating-card').count(), 0, 'rated: not asked again');
  await page.context().close();
});

scenario('rating: a new message from the customer takes the card away', async () => {
  const page = watch.page('rating-hidden', await (await browser.newContext(DESKTOP)).newPage());
  const chat = await openWidget(page, `${site.url}/`);
  await chat.getByLabel('Type a message…').fill('One question about brewing');
  await chat.getByLabel('Type a message…').press('Enter');
  await chat.locator('.msg.mine[data-state="sent"]').waitFor();
  const visitor = await chatFrame(page).evaluate(() => JSON.parse(localStorage.getItem('kefud.visitor')));
  const conv = await conversationOf(visitor);
  await kefud.api(`/conversations/${conv.id}/resolve`, { method: 'POST', token });
  const card = chat.locator('.rating-card');
  await card.waitFor();
  await chat.getByLabel('Type a message…').fill('Actually, one more thing');
  await chat.getByLabel('Type a message…').press('Enter');
  await card.waitFor({ state: 'detached' });
  await chat.locator('.msg.mine[data-state="sent"]', { hasText: 'one more thing' }).waitFor();
  assert.notEqual((await kefud.api(`/visitor/conversation?visitor_id=${visitor}`)).body.status, 'resolved');
  await page.context().close();
});

scenario('pre-chat "during" (the default): a card after the first message, dismissable', async () => {
  await kefud.api('/settings/prechat', { method: 'PUT', token, body: { mode: 'during', required: false } });
  const page = watch.page('prechat-during', await (await browser.newContext(DESKTOP)).newPage());
  const chat = await openWidget(page, `${site.url}/`);
  await connected(chat);
  await page.waitForTimeout(800);
  assert.equal(await chat.locator('form.prechat').count(), 0, 'nothing before the first message');
  await chat.getByLabel('Type a message…').fill('Hi, a question about gift boxes');
  await chat.getByLabel('Type a message…').press('Enter');
  const form = chat.getByRole('form', { name: 'How can we reach you?' });
  await form.waitFor();
  assert.ok(await chat.getByLabel('Type a message…').isVisible(), 'the composer stays');
  assert.ok(await form.getByLabel('E-mail').isHidden(), 'folded: a line and two buttons');
  await form.getByRole('button', { name: 'Leave my details' }).click();
  await form.getByLabel('E-mail').fill('gifts@');
  await form.getByRole('button', { name: 'Save my details' }).click();
  await form.getByText('This e-mail address does not look right', { exact: false }).waitFor();
  await form.getByLabel('E-mail').fill('gifts@example.com');
  await form.getByRole('button', { name: 'Save my details' }).click();
  await chat.getByText('Thank you! We have your details.').waitFor();
  const visitor = await chatFrame(page).evaluate(() => JSON.parse(localStorage.getItem('kefud.visitor')));
  const conv = await conversationOf(visitor);
  await until('the e-mail on the contact', async () => (await contactOf(conv.id)).email === 'gifts@example.com');

  // Another visitor dismisses it: not offered again.
  const other = watch.page('prechat-dismiss', await (await browser.newContext(DESKTOP)).newPage());
  const chat2 = await openWidget(other, `${site.url}/`);
  await chat2.getByLabel('Type a message…').fill('Just looking');
  await chat2.getByLabel('Type a message…').press('Enter');
  await chat2.getByRole('button', { name: 'No thanks' }).click();
  await chat2.locator('.prechat-card').waitFor({ state: 'detached' });
  await chat2.getByLabel('Type a message…').fill('Bye');
  await chat2.getByLabel('Type a message…').press('Enter');
  await chat2.locator('.msg.mine[data-state="sent"]', { hasText: 'Bye' }).waitFor();
  await other.waitForTimeout(800);
  assert.equal(await chat2.locator('.prechat-card').count(), 0, 'dismissed: not offered again');
  await page.context().close();
  await other.context().close();

  // "before", not required: a Skip button; skipped is not asked again.
  await kefud.api('/settings/prechat', { method: 'PUT', token, body: { mode: 'before', required: false } });
  const third = watch.page('prechat-skip', await (await browser.newContext(DESKTOP)).newPage());
  const chat3 = await openWidget(third, `${site.url}/`);
  const optional = chat3.getByRole('form', { name: 'How can we reach you?' });
  await optional.getByText('Name (optional)').waitFor();
  assert.ok(await chat3.getByLabel('Type a message…').isHidden());
  await optional.getByRole('button', { name: 'Skip' }).click();
  await optional.waitFor({ state: 'detached' });
  await chat3.getByLabel('Type a message…').waitFor();
  await third.reload();
  await third.getByRole('button', { name: 'Chat with us' }).click();
  await chatFrame(third).getByLabel('Type a message…').waitFor();
  await third.waitForTimeout(800);
  assert.equal(await chatFrame(third).locator('form.prechat').count(), 0, 'skipped: not asked again');
  await third.context().close();
});

scenario('phone size (390x844): the form and the rating card fit', async () => {
  await kefud.api('/settings/prechat', { method: 'PUT', token, body: { mode: 'before', required: true } });
  const page = watch.page('phone', await (await browser.newContext(PHONE)).newPage());
  await page.goto(`${site.url}/`);
  await page.getByRole('button', { name: 'Chat with us' }).tap();
  const chat = page.locator('iframe[src*="/chat?embed=1"]').contentFrame();
  const form = chat.getByRole('form', { name: 'How can we reach you?' });
  await form.waitFor();
  await form.getByRole('button', { name: 'Start the chat' }).tap();
  await form.getByText('Please enter your name.').waitFor();
  const start = await form.getByRole('button', { name: 'Start the chat' }).boundingBox();
  assert.ok(start.y + start.height <= 844 && start.x + start.width <= 390, 'the button is on screen');
  await assertFits(page, 'the pre-chat form');
  await docShot(page, 'widget-prechat.png');
  await form.getByLabel('Name').fill('Sun Mei');
  await form.getByLabel('E-mail').fill('sun.mei@example.com');
  await form.getByRole('button', { name: 'Start the chat' }).tap();
  await chat.getByLabel('Type a message…').fill('Ordering from my phone');
  await chat.getByRole('button', { name: 'Send', exact: true }).tap();
  await chat.locator('.msg.mine[data-state="sent"]').waitFor();
  const visitor = await chatFrame(page).evaluate(() => JSON.parse(localStorage.getItem('kefud.visitor')));
  const conv = await conversationOf(visitor);
  const resolved = await kefud.api(`/conversations/${conv.id}/resolve`, { method: 'POST', token });
  assert.equal(resolved.status, 200, JSON.stringify(resolved.body));
  const card = chat.getByRole('form', { name: 'How did we do?' });
  await card.waitFor();
  await card.getByRole('button', { name: '5 stars' }).tap();
  await card.getByLabel('A comment (optional)').fill('Easy on a phone, with a comment long enough to wrap onto another line or two');
  await assertFits(page, 'the rating card');
  const send = await card.getByRole('button', { name: 'Send the rating' }).boundingBox();
  assert.ok(send.x >= 0 && send.x + send.width <= 390, 'the send button is on screen');
  await docShot(page, 'widget-rating.png');
  await card.getByRole('button', { name: 'Send the rating' }).tap();
  await chat.getByText('Thank you for your rating!').waitFor();
  await page.context().close();
});

scenario('admin: the Customers page sets the form back to the default and makes a new secret, phone width', async () => {
  const page = watch.page('console-customers', await (await browser.newContext(PHONE)).newPage());
  await page.goto(`${kefud.base}/`);
  await page.getByLabel('Username').fill(ADMIN.username);
  await page.getByLabel('Password').fill(ADMIN.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('tab', { name: /All open/ }).waitFor();
  await page.goto(`${kefud.base}/#/admin/customers`);
  const mode = page.getByLabel('Ask');
  await mode.waitFor();
  assert.equal(await mode.inputValue(), 'before', 'the setting the phone test left');
  assert.ok(await page.getByLabel('Name and a phone or e-mail are required', { exact: false }).isChecked());
  assert.equal(await page.getByLabel('Identity secret').inputValue(), secret);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `no sideways scrolling on a phone (${width}px)`);
  await watch.shot(page, 'customer-phone-console-customers');

  await mode.selectOption('during');
  await page.getByLabel('Name and a phone or e-mail are required', { exact: false }).uncheck();
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  await page.locator('.toast', { hasText: 'Saved' }).waitFor();
  assert.deepEqual((await kefud.api('/settings/prechat', { token })).body, { mode: 'during', required: false });

  const make = page.getByRole('button', { name: 'Make a new secret' });
  await make.click();
  await page.getByRole('button', { name: 'Sure? Every signature made with the old one stops working' }).click();
  await page.locator('.toast', { hasText: 'A new secret is in use' }).waitFor();
  const fresh = (await kefud.api('/settings/identity-secret', { token })).body.secret;
  assert.notEqual(fresh, secret);
  assert.equal(await page.getByLabel('Identity secret').inputValue(), fresh);
  await page.context().close();
});

scenario('the pre-chat setting is back to the default; no page threw or logged an error', async () => {
  const put = await kefud.api('/settings/prechat', { method: 'PUT', token, body: { mode: 'during', required: false } });
  assert.equal(put.status, 200);
  assert.deepEqual((await kefud.api('/widget/info')).body.prechat, { mode: 'during', required: false });
  assert.deepEqual(watch.problems, []);
  assert.deepEqual(watch.dialogs, []);
});
