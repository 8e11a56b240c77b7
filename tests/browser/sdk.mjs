// Loads clients/js/dist/forgegraph.browser.js in headless chromium for
// tests/test_js_sdk.py: the page at <url>/sdk-test/ (a route that test adds to
// the forgegraph server it starts) imports the bundle with no bundler and no
// CDN, subscribes to posts; this script then inserts a post and selects it
// back through the page's client.
//
//   node sdk.mjs '{"url": ...}'
//
// It prints one JSON line: {events, selected, blocked, console}.
import { chromium } from 'playwright-core';

const config = JSON.parse(process.argv[2]);
const LOCAL = new Set(['127.0.0.1', 'localhost', '[::1]']);
const WAIT = 30_000;
const TITLE = 'from the browser test';


const browser = await chromium.launch({
  executablePath: process.env.FORGEGRAPH_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
const seen = { blocked: [], console: [] };
try {
  const context = await browser.newContext();
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (!LOCAL.has(url.hostname)) {
      seen.blocked.push(url.href);
      return route.abort('blockedbyclient');
    }
    return route.continue();
  });
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') seen.console.push(message.text());
  });
  page.on('pageerror', (error) => seen.console.push(`pageerror: ${error.message}`));
  await page.goto(`${config.url}/sdk-test/`);
  await page.waitForFunction(() => window.ready === true, null, { timeout: WAIT });
  await page.evaluate((title) => window.db.table('posts').insert({ title, user_id: 1 }, { returning: ['id'] }), TITLE);
  await page.waitForFunction(() => window.events.length >= 1 || window.errors.length >= 1, null, { timeout: WAIT });
  seen.selected = await page.evaluate(
    (title) => window.db.table('posts').select({ where: { title: { _eq: title } }, columns: ['id', 'title'] }), TITLE,
  );
  seen.events = await page.evaluate(() => window.events);
  seen.console.push(...(await page.evaluate(() => window.errors)));
} catch (error) {
  seen.error = String(error);
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
