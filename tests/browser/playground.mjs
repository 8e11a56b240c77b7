// Drives /playground in headless chromium for tests/test_playground.py.
//
//   node playground.mjs '<json config>'
//
// config: {url, query, table?, insert?: {query, variables}, token?, headers?,
//          screenshot?, expectError?, steps?, docs?, complete?, runAtOnce?}
// Every request to a host other than this machine is aborted and recorded. The
// script sets the token (if any), types `query` into GraphiQL and runs it, then
// inserts rows over HTTP (the string MARKER in insert.variables becomes a fresh
// marker each time) until one of them shows up both in GraphiQL's result pane
// and in the live panel. With expectError it instead waits for an error to show
// in both places. With steps ([{mutation?: {query, variables}, until: [text]}])
// it instead runs each step's mutation over HTTP, then waits until the result
// pane holds every `until` text, and keeps the pane's text (panes) and every
// distinct text it showed meanwhile (history). Before all that, docs lists the
// subscription root's fields in the Documentation Explorer, and complete types
// its text into the editor and lists Monaco's suggestions.
// It prints one JSON line: what it saw, for the Python test to judge.
import { chromium } from 'playwright-core';

const config = JSON.parse(process.argv[2]);
const LOCAL = new Set(['127.0.0.1', 'localhost', '[::1]']);
const WAIT = 30_000;

const browser = await chromium.launch({
  executablePath: process.env.FORGEGRAPH_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // Root in a container has no user namespace for chromium's sandbox.
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
const seen = { blocked: [], local: 0, console: [] };
try {
  const context = await browser.newContext({ viewport: { width: 1600, height: 900 } });
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith('data:') || url.startsWith('blob:') || LOCAL.has(new URL(url).hostname)) {
      seen.local += 1;
      return route.continue();
    }
    seen.blocked.push(url);
    return route.abort('blockedbyclient');
  });
  const page = await context.newPage();
  page.on('websocket', (ws) => {
    if (!LOCAL.has(new URL(ws.url()).hostname)) seen.blocked.push(ws.url());
  });
  page.on('console', (message) => {
    if (message.type() === 'error') seen.console.push(message.text());
  });
  page.on('pageerror', (error) => seen.console.push(`pageerror: ${error.message}`));

  await page.goto(`${config.url}/playground`);
  const editor = page.locator('.graphiql-query-editor .monaco-editor').first();
  await editor.waitFor({ timeout: WAIT });

  if (config.token) {
    await page.fill('input[name=token]', config.token);
    await page.locator('.fg-identity').filter({ hasNotText: 'anonymous' }).waitFor({ timeout: WAIT });
  }
  seen.identity = await page.locator('.fg-identity').innerText();

  if (config.docs) {
    // The explorer reads the schema GraphiQL introspected, as autocomplete does.
    await page.getByRole('button', { name: 'Show Documentation Explorer' }).click();
    await page.locator('.graphiql-doc-explorer a', { hasText: /^subscription_root$/ }).click();
    const fields = page.locator('.graphiql-doc-explorer .graphiql-doc-explorer-field-name');
    await fields.first().waitFor({ timeout: WAIT });
    seen.subscriptionFields = await fields.allInnerTexts();
  }

  // Replace the editor's text with one line (a newline typed after "{" would
  // make Monaco close the brace).
  const replaceText = async (line) => {
    await editor.click();
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.insertText(line);
  };

  if (config.complete) {
    await replaceText(config.complete);
    await page.keyboard.press('Control+Space');
    const suggestions = page.locator('.suggest-widget .monaco-list-row');
    await suggestions.first().waitFor({ timeout: WAIT });
    seen.suggestions = (await suggestions.allInnerTexts()).map((row) => row.split('\n')[0]);
    await page.keyboard.press('Escape');
  }

  // Type the query on one line, then let GraphiQL prettify it; with runAtOnce,
  // run it straight away instead, as a paste then Ctrl-Enter would (before
  // GraphiQL has re-read the document's operations).
  await replaceText(config.query.replace(/\s+/g, ' '));
  if (!config.runAtOnce) await page.getByRole('button', { name: /prettify/i }).click();
  await page.locator('.graphiql-execute-button').click();

  const response = page.locator('.graphiql-response');
  const text = async (locator) => (await locator.innerText()).replace(/\u00a0/g, ' ');
  // The result pane is a Monaco editor, whose DOM need not list lines in order:
  // sort the rendered lines by their position to get the text as shown.
  const paneText = () =>
    page.evaluate(() =>
      [...document.querySelectorAll('.graphiql-response .view-line')]
        .sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))
        .map((line) => line.innerText.replace(/\u00a0/g, ' '))
        .join('\n'),
    );

  if (config.steps) {
    seen.panes = [];
    seen.history = [];
    for (const step of config.steps) {
      if (step.mutation) {
        const reply = await fetch(`${config.url}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(config.headers ?? {}) },
          body: JSON.stringify(step.mutation),
        }).then((r) => r.json());
        if (reply.errors) throw new Error(`the mutation failed: ${JSON.stringify(reply.errors)}`);
      }
      const deadline = Date.now() + WAIT;
      let pane = await paneText();
      while (!step.until.every((part) => pane.includes(part))) {
        if (pane.includes('"errors"')) throw new Error(`GraphiQL shows errors: ${pane}`);
        if (Date.now() > deadline) {
          throw new Error(`the result pane never showed ${JSON.stringify(step.until)}; it shows:\n${pane}`);
        }
        if (pane && seen.history.at(-1) !== pane) seen.history.push(pane);
        await page.waitForTimeout(25);
        pane = await paneText();
      }
      if (seen.history.at(-1) !== pane) seen.history.push(pane);
      seen.panes.push(pane);
    }
  } else if (config.expectError) {
    await page.locator('.fg-live .fg-error').first().waitFor({ timeout: WAIT });
    await page.waitForFunction(
      () => /\S/.test(document.querySelector('.graphiql-response')?.innerText ?? ''),
      null,
      { timeout: WAIT },
    );
    seen.panelErrors = await page.locator('.fg-live .fg-error').allInnerTexts();
    seen.response = await text(response);
  } else {
    await page.locator('.fg-live .fg-status.fg-connected').waitFor({ timeout: WAIT });
    seen.inserted = [];
    // A subscribe has no acknowledgement, so a first insert may beat it: insert
    // again until one event has reached both the result pane and the panel.
    for (let attempt = 0; attempt < 10 && !seen.matched; attempt += 1) {
      const marker = `playground-${Date.now()}-${attempt}`;
      const variables = JSON.parse(JSON.stringify(config.insert.variables).replaceAll('MARKER', marker));
      const reply = await fetch(`${config.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(config.headers ?? {}) },
        body: JSON.stringify({ query: config.insert.query, variables }),
      }).then((r) => r.json());
      if (reply.errors) throw new Error(`the insert failed: ${JSON.stringify(reply.errors)}`);
      const id = Object.values(reply.data)[0].id;
      seen.inserted.push({ marker, id });
      const deadline = Date.now() + 3000;
      while (Date.now() < deadline && !seen.matched) {
        const pane = await text(response);
        if (pane.includes('"errors"')) throw new Error(`GraphiQL shows errors: ${pane}`);
        const rows = await page.locator('.fg-live .fg-change').allInnerTexts();
        const hit = seen.inserted.find(
          (row) => pane.includes(row.marker) && rows.some((r) => r.includes(config.table) && r.split(/\s+/).includes(String(row.id))),
        );
        if (hit) seen.matched = { ...hit, pane, rows };
        else await page.waitForTimeout(100);
      }
    }
  }
  if (config.screenshot) await page.screenshot({ path: config.screenshot });
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
