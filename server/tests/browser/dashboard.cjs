// Drives the dashboard in Debian's Chromium (playwright-core, never a
// downloaded browser). Run by tests/browser.rs, which answers two requests
// on stdin: `SEND task args-json [count]` -> JSON array of ids, and
// `RESTART` -> `OK` once celeriac is back on the same port.
// Prints `FIGURE name value` lines for the benchmark.
'use strict';
const { chromium } = require(process.env.PLAYWRIGHT_CORE);
const path = require('path');
const readline = require('readline');

const base = process.env.CELERIAC_URL; // with the URL prefix, no trailing slash
const worker = process.env.WORKER;
const shots = process.env.SCREENSHOTS;
const T = 30000;

const answers = [];
const waiting = [];
readline.createInterface({ input: process.stdin }).on('line', (l) => {
  const w = waiting.shift();
  if (w) w(l); else answers.push(l);
});
function ask(line) {
  process.stdout.write(line + '\n');
  return new Promise((resolve) => {
    const a = answers.shift();
    if (a !== undefined) resolve(a); else waiting.push(resolve);
  });
}
const send = async (task, args, count = 1) => JSON.parse(await ask(`SEND ${task} ${JSON.stringify(args)} ${count}`));
const log = (...a) => console.error('[browser]', ...a);
function check(cond, what) { if (!cond) throw new Error('check failed: ' + what); log('ok:', what); }

(async () => {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') log('console:', m.text()); });
  page.on('pageerror', (e) => log('page error:', e.message));
  const shot = (name) => page.screenshot({ path: path.join(shots, name + '.png'), fullPage: false });
  try {
    // 1. A worker appears online (deep link to /workers, first row timed).
    const t0 = Date.now();
    await page.goto(`${base}/workers`);
    await page.waitForSelector(`tr[data-worker="${worker}"] .pill.ok`, { timeout: T });
    console.log(`FIGURE first_worker_row_ms ${Date.now() - t0}`);
    check(true, 'worker online on /workers');
    await page.waitForSelector('[data-conn="live"]', { timeout: T });
    await shot('workers');

    // 2. Tasks appear and change state without a reload.
    await page.click(`a[href="${new URL(base).pathname}/tasks"]`);
    await page.waitForURL(/\/tasks$/);
    await page.evaluate(() => { window.__noReload = 42; });
    const [slow] = await send('sleep', [2]);
    await page.waitForSelector(`[data-uuid="${slow}"][data-state="STARTED"]`, { timeout: T });
    check(true, 'a sent task appears as STARTED');
    await page.waitForSelector(`[data-uuid="${slow}"][data-state="SUCCESS"]`, { timeout: T });
    check(await page.evaluate(() => window.__noReload) === 42, 'it turned SUCCESS without a reload');

    // 3. Filters and search narrow the table (and live in the URL).
    const [failed] = await send('fail', ['boom-from-the-browser-test']);
    const adds = await send('add', [2, 3], 5);
    await page.waitForSelector(`[data-uuid="${failed}"][data-state="FAILURE"]`, { timeout: T });
    await page.waitForSelector(`[data-uuid="${adds[4]}"][data-state="SUCCESS"]`, { timeout: T });
    await shot('tasks');
    const rows = () => page.$$eval('.scroller [data-uuid]', (els) => els.map((e) => [e.dataset.uuid, e.dataset.state]));
    const all = await rows();
    check(all.length >= 7, `table shows every task (${all.length})`);
    await page.selectOption('select[name=state]', 'FAILURE');
    await page.waitForURL(/state=FAILURE/);
    await page.waitForFunction(() => [...document.querySelectorAll('.scroller [data-uuid]')].every((e) => e.dataset.state === 'FAILURE'), null, { timeout: T });
    const onlyFailed = await rows();
    check(onlyFailed.length === 1 && onlyFailed[0][0] === failed, 'state filter keeps the failed task only');
    await shot('tasks-filtered');
    await page.selectOption('select[name=state]', '');
    await page.fill('input[name=q]', 'boom-from-the');
    await page.waitForURL(/q=boom-from-the/);
    await page.waitForFunction((id) => {
      const r = [...document.querySelectorAll('.scroller [data-uuid]')];
      return r.length === 1 && r[0].dataset.uuid === id;
    }, failed, { timeout: T });
    check(true, 'search by exception substring finds the failed task');
    await page.fill('input[name=q]', adds[0].slice(0, 13));
    await page.waitForFunction((id) => {
      const r = [...document.querySelectorAll('.scroller [data-uuid]')];
      return r.length === 1 && r[0].dataset.uuid === id;
    }, adds[0], { timeout: T });
    check(true, 'search by uuid');

    // 4. The failed task's page shows its traceback.
    await page.fill('input[name=q]', '');
    await page.click(`[data-uuid="${failed}"]`);
    await page.waitForSelector('[data-testid=traceback]', { timeout: T });
    const tb = await page.textContent('[data-testid=traceback]');
    check(tb.includes('ValueError') && tb.includes('boom-from-the-browser-test'), 'task page shows the traceback');
    await shot('task-failed');

    // 5. Deep links load directly (SPA fallback under the prefix).
    const deep = await context.newPage();
    const resp = await deep.goto(`${base}/tasks/${failed}`);
    check(resp.status() === 200, 'deep link answers 200');
    await deep.waitForSelector('[data-testid=traceback]', { timeout: T });
    check(true, 'deep link to a task renders it');
    await deep.goto(`${base}/workers/${encodeURIComponent(worker)}`);
    await deep.waitForSelector('h1 .pill.ok', { timeout: T });
    await deep.screenshot({ path: path.join(shots, 'worker.png') });
    await deep.goto(`${base}/tasks?state=SUCCESS&name=tasks.add`);
    await deep.waitForFunction(() => {
      const r = [...document.querySelectorAll('.scroller [data-uuid]')];
      return r.length === 5 && r.every((e) => e.dataset.state === 'SUCCESS');
    }, null, { timeout: T });
    check(true, 'filters from a shared URL apply on load');
    await deep.close();

    // 6. The other pages, and the other theme.
    await page.goto(`${base}/`);
    await page.waitForSelector('[data-testid=online]', { timeout: T });
    await page.waitForFunction(() => document.querySelector('[data-testid=online]').textContent === '1', null, { timeout: T });
    await shot('overview');
    await page.goto(`${base}/types`);
    await page.waitForSelector('text=tasks.add', { timeout: T });
    await shot('types');
    await page.click('button.theme');
    await page.goto(`${base}/tasks`);
    await page.waitForSelector('.scroller [data-uuid]', { timeout: T });
    await shot('tasks-other-theme');

    // 7. celeriac restarts: the page says so, reconnects and resumes.
    await page.evaluate(() => { window.__noReload = 7; });
    const restart = ask('RESTART');
    await page.waitForSelector('[data-conn="down"], [data-conn="connecting"]', { timeout: T });
    await shot('disconnected');
    check(true, 'the page shows the lost connection');
    await restart;
    await page.waitForSelector('[data-conn="live"]', { timeout: T });
    const [after] = await send('add', [40, 2]);
    await page.waitForSelector(`[data-uuid="${after}"][data-state="SUCCESS"]`, { timeout: T });
    check(await page.evaluate(() => window.__noReload) === 7, 'after the restart new tasks stream in, no reload');
    await shot('after-restart');
  } catch (e) {
    log('FAILED:', e.message);
    await shot('failure').catch(() => {});
    await browser.close();
    process.exit(1);
  }
  await browser.close();
  // stdin (the test's answers) would keep node alive.
  process.exit(0);
})();
