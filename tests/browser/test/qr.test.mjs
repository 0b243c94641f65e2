// The chat address as a printable QR code, on a kefud of this file's own: the channel page's
// QR card shows a code the box made, and that code — taken from the page's <img> (a blob:
// URL), drawn to a canvas in the page and decoded with jsQR — is the /chat address; the
// Print button prints; in print media only the card (shop name, code, address) shows; and
// the page fits a phone (390x844) without horizontal overflow.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import jsQR from 'jsqr';
import { Watch, launchBrowser } from '../lib/harness.mjs';
import { OwnKefud, consoleLogin, overflowsHorizontally } from '../lib/own-kefud.mjs';

const ADMIN = { username: 'qr-admin', display_name: 'Zhao Lei', password: 'printed-at-the-counter' };
const SHOP = 'Lotus Tea House';
const kefud = new OwnKefud();
const watch = new Watch();
let browser;

before(async () => {
  await kefud.start();
  await kefud.setup(SHOP, ADMIN);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await kefud.stop();
});

/** The QR card's image, decoded: the <img> (showing the blob the console fetched) drawn to a
 * canvas in the page, its pixels read by jsQR here. */
async function decodeShownCode(page) {
  const img = page.getByTestId('qr-card').locator('img.qr-code');
  await page.waitForFunction(() => {
    const el = document.querySelector('.qr-card img.qr-code');
    return el && el.src.startsWith('blob:') && el.complete && el.naturalWidth > 0;
  });
  // The image as shown (its blob: URL; fetching that again is outside the page's CSP), drawn
  // at its own size: an SVG's width and height.
  const { width, height, pixels } = await img.evaluate((el) => {
    const canvas = document.createElement('canvas');
    canvas.width = el.naturalWidth;
    canvas.height = el.naturalHeight;
    const ctx = canvas.getContext('2d');
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(el, 0, 0, canvas.width, canvas.height);
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let bin = '';
    for (let i = 0; i < data.length; i += 0x8000) bin += String.fromCharCode(...data.subarray(i, i + 0x8000));
    return { width: canvas.width, height: canvas.height, pixels: btoa(bin) };
  });
  const data = new Uint8ClampedArray(Buffer.from(pixels, 'base64'));
  assert.equal(data.length, width * height * 4);
  const code = jsQR(data, width, height);
  assert.ok(code, 'jsQR finds a code in the image');
  return code.data;
}

test('the channel page shows a QR code of the chat address that decodes back to it', { timeout: 120000 }, async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
  const page = watch.page('qr-desktop', await ctx.newPage());
  try {
    await consoleLogin(page, kefud.base, ADMIN.username, ADMIN.password);
    await page.goto(`${kefud.base}/#/admin/channel`);
    const card = page.getByTestId('qr-card');
    await card.waitFor();
    const chatUrl = `${kefud.base}/chat`;
    await card.getByText(chatUrl).waitFor();
    await card.getByText(SHOP).waitFor();
    assert.equal(await card.locator('img.qr-code').getAttribute('alt'), `QR code of ${chatUrl}`);
    assert.equal(await decodeShownCode(page), chatUrl);

    // Print opens the browser's print (recorded here instead of a dialog).
    await page.evaluate(() => { window.printed = 0; window.print = () => { window.printed += 1; }; });
    await card.getByRole('button', { name: 'Print' }).click();
    assert.equal(await page.evaluate(() => window.printed), 1);

    // Printed: the card alone, without its button; the rest of the console is gone.
    await page.emulateMedia({ media: 'print' });
    assert.ok(await card.locator('img.qr-code').isVisible());
    assert.ok(await card.getByText(chatUrl).isVisible());
    assert.ok(await card.getByText(SHOP).isVisible());
    assert.equal(await card.getByRole('button', { name: 'Print' }).isVisible(), false);
    for (const other of [
      page.getByRole('heading', { name: 'Web widget' }),
      page.getByRole('heading', { name: 'Admin' }),
      page.locator('.topbar'),
      page.getByLabel('Shop name'),
    ]) {
      assert.equal(await other.first().isVisible(), false, `hidden in print: ${other}`);
    }
    const box = await card.locator('img.qr-code').boundingBox();
    assert.ok(box.width >= 300, `the printed code is large: ${box.width}px`);
    await watch.shot(page, 'qr-print');
    await page.emulateMedia({ media: 'screen' });
    assert.ok(await page.getByRole('heading', { name: 'Web widget' }).isVisible());
  } finally {
    await watch.shots('qr-desktop');
  }
});

test('the QR card fits a phone', { timeout: 120000 }, async () => {
  const ctx = await browser.newContext({
    viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: 'en-US',
  });
  const page = watch.page('qr-phone', await ctx.newPage());
  try {
    await consoleLogin(page, kefud.base, ADMIN.username, ADMIN.password);
    await page.goto(`${kefud.base}/#/admin/channel`);
    const card = page.getByTestId('qr-card');
    await card.scrollIntoViewIfNeeded();
    assert.equal(await decodeShownCode(page), `${kefud.base}/chat`);
    await card.screenshot({ path: `${process.env.SCREENSHOT_DIR ?? '../../target/screenshots'}/qr-phone-card.png` });
    assert.equal(await overflowsHorizontally(page), false, 'no horizontal overflow at 390 px');
    const box = await card.boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= 390, `the card is inside the screen: ${JSON.stringify(box)}`);
  } finally {
    await watch.shots('qr-phone');
  }
});

test('no page error', () => {
  assert.deepEqual(watch.problems, []);
  assert.deepEqual(watch.dialogs, []);
});
