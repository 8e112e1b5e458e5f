// Drives the dashboard in Debian's Chromium (playwright-core, never a
// downloaded browser). Run by tests/browser.rs, which answers two requests
// on stdin: `SEND task args-json [count [countdown]]` -> JSON array of ids,
// `WORKFLOW chain` -> `{"root": id, "last": id}` of a three-task chain whose
// last task fails, and `RESTART` -> `OK` once celeriac is back on the same port.
// MODE=live (default): the live pages, no users configured; prints
// `FIGURE name value` lines for the benchmark. MODE=controls: remote
// control as OPERATOR (user:password) and VIEWER. MODE=readonly: celeriac
// runs with --read-only. MODE=eventsoff: a worker without -E, the banner
// and its enable_events button.
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
const send = async (task, args, count = 1, countdown = 0) =>
  JSON.parse(await ask(`SEND ${task} ${JSON.stringify(args)} ${count} ${countdown}`));
const log = (...a) => console.error('[browser]', ...a);
function check(cond, what) { if (!cond) throw new Error('check failed: ' + what); log('ok:', what); }

async function newPage(browser, credentials) {
  const opts = { viewport: { width: 1280, height: 800 } };
  // Sent with every request, the websocket's included (a browser that
  // logged in with Basic does the same).
  if (credentials) opts.extraHTTPHeaders = { Authorization: 'Basic ' + Buffer.from(credentials).toString('base64') };
  const context = await browser.newContext(opts);
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') log('console:', m.text()); });
  page.on('pageerror', (e) => log('page error:', e.message));
  page.missing = [];
  page.on('response', (r) => { if (r.status() === 404) page.missing.push(r.url()); });
  return { context, page };
}

async function live(browser, shot, pageOut) {
  const { context, page } = await newPage(browser);
  pageOut.page = page;
  {
    // 1. A worker appears online (deep link to /workers, first row timed).
    const t0 = Date.now();
    await page.goto(`${base}/workers`);
    await page.waitForSelector(`tr[data-worker="${worker}"] .pill.ok`, { timeout: T });
    console.log(`FIGURE first_worker_row_ms ${Date.now() - t0}`);
    check(true, 'worker online on /workers');
    check(page.missing.length === 0, `loading the dashboard asks for nothing that is missing: ${page.missing}`);
    await page.waitForSelector('[data-conn="live"]', { timeout: T });
    await shot('workers');

    // No users configured: every page says so, and who may act.
    await page.waitForSelector('[data-testid=noauth]', { timeout: T });
    const banner = await page.textContent('[data-testid=noauth]');
    check(banner.includes('Anyone who can reach this address can revoke tasks and shut down workers')
      && banner.includes('--basic-auth'), 'the no-auth banner is shown');
    await page.waitForSelector('[data-testid=me][data-role="no login"]', { timeout: T });

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
    // The server's history, searched with the same filters.
    await page.click('[data-testid=history-search]');
    await page.waitForSelector(`[data-testid=history-rows] tr[data-uuid="${failed}"]`, { timeout: T });
    const historyRows = await page.$$eval('[data-testid=history-rows] tbody tr', (els) => els.map((e) => e.dataset.uuid));
    check(historyRows.length === 1 && historyRows[0] === failed, 'history search finds the failed task on the server');
    await shot('tasks-history');
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
    await page.waitForFunction(() => document.querySelector('[data-testid=alerts-badge]')?.textContent === 'alerting off', null, { timeout: T });
    check(true, 'the overview badge says alerting is off');
    // The Advice panel (/api/advice): on the overview, and on the queues
    // page with each queue's load against its processes.
    await page.waitForSelector('[data-testid=advice] :is([data-testid=advice-none], [data-testid=advice-finding])', { timeout: T });
    check(true, 'the overview shows the Advice panel');
    await shot('overview');
    await page.goto(`${base}/queues`);
    await page.waitForSelector('[data-testid=capacity] tr[data-queue="celery"]', { timeout: T });
    check(true, "the queues page's Advice panel lists the celery queue's capacity");
    await shot('queues-advice');
    await page.goto(`${base}/types`);
    await page.waitForSelector('text=tasks.add', { timeout: T });
    // Runtime quantiles from the server's sketches (/api/task/stats, 1 %
    // relative error), not the histogram's bucket bound ("500 ms").
    await send('sleep', [0.29], 4);
    await page.waitForFunction(() => {
      const row = [...document.querySelectorAll('[data-testid=task-types] tbody tr')]
        .find((r) => r.cells[0].textContent === 'tasks.sleep');
      return row && /^(29\d|30\d) ms$/.test(row.querySelector('[data-testid=p95]').textContent);
    }, null, { timeout: T });
    check(true, 'the task types page shows the p95 of tasks of 0.29 s as 0.29 s, not a bucket bound');
    // The last hour's successes per second, from the series the server
    // kept before the page opened (sampled every 10 s).
    await page.waitForFunction(() => {
      const row = [...document.querySelectorAll('[data-testid=task-types] tbody tr')]
        .find((r) => r.cells[0].textContent === 'tasks.add');
      const spark = row && row.querySelector('[data-testid=rate-spark]');
      return spark && Number(spark.dataset.points) > 0;
    }, null, { timeout: T });
    check(true, "the task types page draws each type's last hour from the server's series");
    await shot('types');
    // Anonymous (no users) may act: the controls are there.
    check(await page.$('[data-testid=limits]') !== null, 'with no users configured the controls show');
    await page.goto(`${base}/alerts`);
    await page.waitForSelector('[data-testid=alerts-off]', { timeout: T });
    check((await page.textContent('[data-testid=alerts-off]')).includes('--alerts FILE'), 'without --alerts the page says how to turn alerting on');
    await shot('alerts-off');
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
    await page.waitForSelector(`.scroller [data-uuid="${failed}"][data-state="FAILURE"]`, { timeout: T });
    check(true, 'tasks from before the restart are back, from history');
    await shot('after-restart');
    check(await page.isVisible('[data-testid=noauth]'), 'the banner is still there on every page');

    // 8. A chain's page draws its workflow, the failed path marked, and
    // lists its tasks on the tasks page.
    const flow = JSON.parse(await ask('WORKFLOW chain'));
    await page.goto(`${base}/tasks/${flow.last}`);
    // The tree is fetched again while a member is unfinished: wait for the
    // finished one (three nodes, the last FAILURE, parents above children).
    await page.waitForFunction(() => {
      const n = [...document.querySelectorAll('[data-testid=tree-node]')];
      return n.length === 3 && n[2].textContent.includes('FAILURE')
        && n.map((e) => e.dataset.depth).join() === '0,1,2';
    }, null, { timeout: T }).catch(async (e) => {
      const seen = await page.$$eval('[data-testid=tree-node]', (n) => n.map((x) => `${x.dataset.depth}:${x.textContent}`));
      throw new Error(`the chain's tree never showed as a line: ${JSON.stringify(seen)} (${e.message})`);
    });
    const nodes = await page.$$eval('[data-testid=tree-node]', (n) => n.map((e) => ({
      depth: e.dataset.depth, failed: e.classList.contains('failed'), here: e.classList.contains('here'),
    })));
    check(nodes.map((n) => n.depth).join() === '0,1,2', 'the chain is drawn as a line, parent above child');
    check(nodes.every((n) => n.failed), 'the failed path is marked from the root down');
    check(nodes[2].here, 'the task shown is highlighted in its tree');
    await shot('task-workflow');
    await page.click('[data-testid=workflow-tasks]');
    await page.waitForSelector('[data-testid=root-filter]', { timeout: T });
    await page.waitForFunction(() => document.querySelectorAll('.scroller [data-uuid]').length === 3, null, { timeout: T });
    check(page.url().includes(`root=${flow.root}`), 'the workflow filter lives in the URL');
    await page.click('[data-testid=root-filter] button');
    await page.waitForFunction(() => !document.querySelector('[data-testid=root-filter]'), null, { timeout: T });
    check(true, 'the workflow filter can be cleared');
  }
}

// Waits for the dialog's outcome and returns {ok, replies: {worker: kind}}.
async function outcome(page) {
  await page.waitForSelector('[data-testid=outcome]', { timeout: T });
  return page.evaluate(() => ({
    ok: document.querySelector('[data-testid=outcome]').dataset.ok === 'true',
    text: document.querySelector('[data-testid=outcome]').textContent,
    replies: Object.fromEntries([...document.querySelectorAll('[data-testid=replies] tr[data-worker]')]
      .map((r) => [r.dataset.worker, r.dataset.reply + ': ' + r.textContent])),
  }));
}
const focused = (page) => page.evaluate(() => document.activeElement && document.activeElement.dataset.testid);

async function controls(browser, shot, pageOut) {
  const { page } = await newPage(browser, process.env.OPERATOR);
  pageOut.page = page;
  await page.goto(`${base}/workers`);
  await page.waitForSelector(`tr[data-worker="${worker}"] .pill.ok`, { timeout: T });
  await page.waitForSelector('[data-testid=me][data-role=operator]', { timeout: T });
  check(await page.$('[data-testid=noauth]') === null, 'no no-auth banner once users are configured');

  // 1. Terminate a running task from its page, after confirming.
  const [long] = await send('sleep', [60]);
  await page.goto(`${base}/tasks/${long}`);
  await page.waitForFunction(() => document.querySelector('[data-testid=state]')?.textContent === 'STARTED', null, { timeout: T });
  await page.waitForSelector('[data-testid=task-actions]', { timeout: T });
  await page.selectOption('[data-testid=task-actions] select[name=signal]', 'SIGKILL');
  await page.click('[data-testid=terminate]');
  await page.waitForSelector('[data-testid=dialog]', { timeout: T });
  check(await focused(page) === 'confirm', 'focus lands on the confirm button');
  check((await page.textContent('[data-testid=dialog] h2')) === 'Terminate with SIGKILL', 'the dialog names the action');
  check((await page.textContent('[data-testid=target]')).includes(long), 'the dialog names the task');
  await page.keyboard.press('Escape');
  await page.waitForSelector('[data-testid=dialog]', { state: 'detached', timeout: T });
  check(true, 'Escape cancels');
  await page.click('[data-testid=terminate]');
  await page.waitForSelector('[data-testid=dialog]', { timeout: T });
  check((await page.textContent('[data-testid=dialog] h2')) === 'Terminate with SIGKILL', 'the signal chosen is kept');
  await shot('confirm-terminate');
  await page.keyboard.press('Enter');
  const done = await outcome(page);
  log('terminate outcome:', JSON.stringify(done));
  check(done.ok && (done.replies[worker] || '').startsWith('ok'), `the worker replied ok (${done.replies[worker]})`);
  await page.waitForFunction(() => document.querySelector('[data-testid=state]')?.textContent === 'REVOKED', null, { timeout: T });
  check(true, 'the terminated task turns REVOKED');
  await shot('terminate-reply');
  check(await focused(page) === 'close', 'focus moves to Close');
  await page.keyboard.press('Enter');
  await page.waitForSelector('[data-testid=dialog]', { state: 'detached', timeout: T });
  check(await page.$('[data-testid=task-actions]') === null, 'a finished task offers no revoke');

  // Retry: a finished task runs again as a new task, linked both ways; one
  // whose arguments Celery cut is not offered, with the reason.
  const [sum] = await send('add', [4, 5]);
  await page.goto(`${base}/tasks/${sum}`);
  await page.waitForFunction(() => document.querySelector('[data-testid=state]')?.textContent === 'SUCCESS', null, { timeout: T });
  await page.waitForSelector('[data-testid=retry]:not([disabled])', { timeout: T });
  page.once('dialog', (d) => d.accept());
  await page.click('[data-testid=retry]');
  await page.waitForSelector('[data-testid=reruns] a', { timeout: T });
  const rerun = (await page.textContent('[data-testid=reruns] a')).trim();
  check(rerun.length > 0 && rerun !== sum, `the re-run is a new task (${rerun})`);
  await shot('retry-done');
  await page.goto(`${base}/tasks/${rerun}`);
  await page.waitForFunction(() => document.querySelector('[data-testid=state]')?.textContent === 'SUCCESS', null, { timeout: T });
  await page.waitForSelector('[data-testid=retry-of] a', { timeout: T });
  check((await page.textContent('[data-testid=retry-of] a')).trim() === sum, 'the re-run ran and links to the original');
  // Edit the arguments and re-run: a bad edit is refused in the form, a
  // good one runs with the new arguments.
  await page.goto(`${base}/tasks/${sum}`);
  await page.waitForSelector('[data-testid=edit-rerun]:not([disabled])', { timeout: T });
  await page.click('[data-testid=edit-rerun]');
  await page.waitForSelector('[data-testid=rerun-form]', { timeout: T });
  check((await page.inputValue('[data-testid=rerun-form] textarea[name=args]')) === '[4,5]', 'the form starts from the original arguments');
  await page.fill('[data-testid=rerun-form] textarea[name=args]', '{"a": 1}');
  await page.click('[data-testid=rerun-submit]');
  await page.waitForSelector('[data-testid=rerun-form-error]', { timeout: T });
  check((await page.textContent('[data-testid=rerun-form-error]')).includes('args must be a JSON array'), 'a bad edit is refused with the reason');
  await page.fill('[data-testid=rerun-form] textarea[name=args]', '[40, 2]');
  page.once('dialog', (d) => d.accept());
  await page.click('[data-testid=rerun-submit]');
  await page.waitForSelector('[data-testid=retry-done] a', { timeout: T });
  const edited = (await page.textContent('[data-testid=retry-done] a')).trim();
  await page.goto(`${base}/tasks/${edited}`);
  await page.waitForFunction(() => document.querySelector('[data-testid=state]')?.textContent === 'SUCCESS', null, { timeout: T });
  const fields = await page.evaluate(() => document.body.innerText);
  check(fields.includes('42') && fields.includes('(40, 2)'), 'the edited re-run ran with the new arguments');
  await shot('retry-edited');
  const [cut] = await send('add', ['x'.repeat(2000), 'y']);
  await page.goto(`${base}/tasks/${cut}`);
  await page.waitForFunction(() => document.querySelector('[data-testid=state]')?.textContent === 'SUCCESS', null, { timeout: T });
  await page.waitForSelector('[data-testid=retry-blocked]', { timeout: T });
  check((await page.textContent('[data-testid=retry-blocked]')).includes('cut'), 'a cut repr is not offered for retry, and says why');
  check(await page.$eval('[data-testid=retry]', (b) => b.disabled), 'its Retry button is disabled');

  // 2. The worker page: inspect tabs, and a consumer added after confirming.
  await page.goto(`${base}/workers/${encodeURIComponent(worker)}`);
  await page.waitForSelector('[data-testid=worker-controls]', { timeout: T });
  await page.click('button[data-tab=registered]');
  await page.waitForFunction(() => document.querySelector('[data-testid=tabpanel]').textContent.includes('tasks.add'), null, { timeout: T });
  check(true, 'the Registered tab lists the worker\'s tasks');
  await page.click('button[data-tab=stats]');
  await page.waitForFunction(() => document.querySelector('[data-testid=tabpanel]').textContent.includes('max concurrency'), null, { timeout: T });
  await shot('worker-inspect');
  await page.fill('[data-testid=worker-controls] input[name=queue]', '');
  await page.click('[data-testid=add-consumer]');
  await page.waitForSelector('[data-testid=input-error]', { timeout: T });
  check(await page.$('[data-testid=dialog]') === null, 'a missing queue name is refused before asking');
  await page.fill('[data-testid=worker-controls] input[name=queue]', 'browser-extra');
  await page.click('[data-testid=add-consumer]');
  await page.waitForSelector('[data-testid=dialog]', { timeout: T });
  await page.keyboard.press('Enter');
  const added = await outcome(page);
  check(added.ok && (added.replies[worker] || '').includes('browser-extra'), `add consumer: ${added.replies[worker]}`);
  await page.keyboard.press('Escape');
  check(await focused(page) === 'add-consumer', 'closing the dialog returns focus to its button');
  await page.click('button[data-tab=active_queues]');
  await page.waitForFunction(() => document.querySelector('[data-testid=tabpanel]').textContent.includes('browser-extra'), null, { timeout: T });
  check(true, 'the Queues tab shows the new consumer');
  await shot('worker-controls');
  const processes = () => page.evaluate(() => {
    const row = [...document.querySelectorAll('[data-testid=tabpanel] tr')].find((r) => r.cells[0].textContent === 'processes');
    return row ? row.cells[1].textContent.split(',').length : 0;
  });
  await page.click('button[data-tab=stats]');
  await page.waitForFunction(() => document.querySelector('[data-testid=tabpanel]').textContent.includes('processes'), null, { timeout: T });
  const before = await processes();
  await page.fill('[data-testid=worker-controls] input[name=n]', '1');
  await page.click('[data-testid=pool-grow]');
  await page.keyboard.press('Enter');
  const grown = await outcome(page);
  check(grown.ok && (grown.replies[worker] || '').startsWith('ok'), `pool grow: ${grown.replies[worker]}`);
  await page.keyboard.press('Enter');
  // The pool starts the process a few seconds later: ask again as a user would.
  const deadline = Date.now() + T;
  while (await processes() !== before + 1) {
    if (Date.now() > deadline) throw new Error(`the pool still has ${await processes()} processes`);
    await page.waitForTimeout(1000);
    await page.click('[data-testid=refresh]');
  }
  check(true, `the pool grew from ${before} to ${before + 1} processes (stats tab, refresh)`);

  // 2b. The tasks table: terminate the unfinished tasks it shows.
  const pair = await send('sleep', [45], 2);
  await page.goto(`${base}/tasks?name=tasks.sleep&state=STARTED`);
  await page.waitForFunction((ids) => ids.every((id) => document.querySelector(`[data-uuid="${id}"][data-state=STARTED]`)), pair, { timeout: T });
  await page.click('[data-testid=revoke-shown] button.danger');
  await page.waitForSelector('[data-testid=dialog]', { timeout: T });
  check((await page.textContent('[data-testid=target]')) === '2 unfinished tasks', 'the dialog counts the shown tasks');
  await page.keyboard.press('Enter');
  const bulk = await outcome(page);
  check(bulk.ok && (bulk.replies[worker] || '').startsWith('ok'), `terminate shown: ${bulk.replies[worker]}`);
  await page.keyboard.press('Escape');
  await page.goto(`${base}/tasks?name=tasks.sleep&state=REVOKED`);
  await page.waitForFunction((ids) => ids.every((id) => document.querySelector(`[data-uuid="${id}"][data-state=REVOKED]`)), pair, { timeout: T });
  check(true, 'both shown tasks turn REVOKED');

  // 2c. One row: revoke a task waiting on its countdown from the row's ⋯
  // menu, by keyboard, after confirming; Tab stays in the dialog.
  const [later] = await send('add', [5, 6], 1, 10);
  await page.goto(`${base}/tasks?name=tasks.add`);
  await page.waitForSelector(`[data-uuid="${later}"][data-state=RECEIVED]`, { timeout: T });
  await page.focus(`button[data-row-menu="${later}"]`);
  await page.keyboard.press('Enter');
  await page.waitForSelector(`[data-testid=row-menu][data-for="${later}"]`, { timeout: T });
  check(await focused(page) === 'row-revoke', 'the row menu opens from the keyboard, focus on Revoke');
  await shot('row-menu');
  await page.keyboard.press('Enter');
  await page.waitForSelector('[data-testid=dialog]', { timeout: T });
  check(await page.$('[data-testid=row-menu]') === null, 'the menu closes when the dialog opens');
  check((await page.textContent('[data-testid=dialog] h2')) === 'Revoke', 'the dialog names the action');
  check((await page.textContent('[data-testid=target]')).includes(later), 'the dialog names the row\'s task');
  const inDialog = () => page.evaluate(() => document.querySelector('[data-testid=dialog]').contains(document.activeElement));
  for (let i = 0; i < 4; i++) {
    await page.keyboard.press('Tab');
    check(await inDialog(), `Tab ${i + 1} stays in the dialog`);
  }
  check(await focused(page) === 'confirm', 'four Tabs over two buttons come back to confirm');
  for (let i = 0; i < 3; i++) {
    await page.keyboard.press('Shift+Tab');
    check(await inDialog(), `Shift-Tab ${i + 1} stays in the dialog`);
  }
  await page.click('[data-testid=confirm]');
  const rowDone = await outcome(page);
  check(rowDone.ok && (rowDone.replies[worker] || '').startsWith('ok'), `row revoke: ${rowDone.replies[worker]}`);
  await page.keyboard.press('Tab');
  check(await focused(page) === 'close', 'with only Close, Tab stays on it');
  await page.keyboard.press('Escape');
  await page.waitForSelector(`[data-uuid="${later}"][data-state=REVOKED]`, { timeout: T });
  check(await page.$(`button[data-row-menu="${later}"]`) === null, 'the revoked row offers no menu');

  // 3. A rate limit on a task type, for every worker.
  await page.goto(`${base}/types`);
  await page.waitForSelector('[data-testid=limits]', { timeout: T });
  await page.waitForSelector('[data-testid=limits] select[name=task] option[value="tasks.sleep"]', { state: 'attached', timeout: T });
  await page.selectOption('[data-testid=limits] select[name=task]', 'tasks.sleep');
  check((await page.textContent('[data-testid=time-limit-note]')).includes('keep applying the old limits'),
    'the time-limit form says running workers keep the old limits until a pool restart');
  await page.fill('[data-testid=limits] input[name=rate]', '10/fortnight');
  await page.click('[data-testid=set-rate]');
  check((await page.textContent('[data-testid=input-error]')).includes('10/fortnight'), 'a bad rate limit is named');
  await page.fill('[data-testid=limits] input[name=rate]', '10/m');
  await page.click('[data-testid=set-rate]');
  await page.waitForSelector('[data-testid=dialog]', { timeout: T });
  check((await page.textContent('[data-testid=target]')).includes('every worker'), 'the rate limit targets every worker');
  await page.click('[data-testid=confirm]');
  const limited = await outcome(page);
  check(limited.ok && (limited.replies[worker] || '').startsWith('ok'), `rate limit: ${limited.replies[worker]}`);
  await shot('types-limits');
  await page.click('[data-testid=close]');

  // 4. The audit page lists the actions, newest first.
  await page.goto(`${base}/audit`);
  await page.waitForSelector('[data-testid=audit] tr[data-command=revoke]', { timeout: T });
  const audit = await page.$$eval('[data-testid=audit] tbody tr', (rows) => rows.map((r) => [r.dataset.command, r.textContent]));
  check(audit.map((a) => a[0]).join(',') === 'rate_limit,revoke,revoke,pool_grow,add_consumer,retry,retry,revoke', `audit order ${audit.map((a) => a[0])}`);
  const first = audit[audit.length - 1][1];
  log('oldest audit row:', first);
  check(first.includes('ann') && first.includes('SIGKILL') && first.includes(long), 'the audit row names who, the signal and the task');
  await shot('audit');

  // 5. Alerts: the page and the overview badge.
  await page.goto(`${base}/alerts`);
  await page.waitForSelector('[data-testid=rules] tr[data-rule=FewWorkers][data-state=firing]', { timeout: T });
  check(await page.$('[data-testid=rules] tr[data-rule=NoEvents][data-state=inactive]') !== null, 'the alerts page shows a firing and an inactive rule');
  await page.waitForFunction(() => /127\.0\.0\.1:9/.test(document.querySelector('[data-testid=notifiers]')?.textContent || ''), null, { timeout: T });
  check(true, 'the notifier\'s last error is shown');
  await shot('alerts');
  await page.goto(`${base}/`);
  await page.waitForSelector('[data-testid=alerts-badge][data-firing="1"]', { timeout: T });
  check((await page.textContent('[data-testid=alerts-badge]')) === '1 firing', 'the overview badge counts the firing alert');
  await page.click('[data-testid=alerts-badge]');
  await page.waitForURL(/\/alerts$/);
  check(true, 'the badge links to the alerts page');
  await shot('overview-badge');

  // 6. A viewer sees no control and is refused one.
  const v = (await newPage(browser, process.env.VIEWER)).page;
  pageOut.page = v;
  const [other] = await send('sleep', [8]);
  await v.goto(`${base}/tasks/${other}`);
  await v.waitForSelector('[data-testid=me][data-role=viewer]', { timeout: T });
  await v.waitForFunction(() => document.querySelector('[data-testid=state]')?.textContent === 'STARTED', null, { timeout: T });
  check(await v.$('[data-testid=task-actions]') === null && await v.$('[data-testid=terminate]') === null, 'a viewer sees no revoke/terminate');
  await v.screenshot({ path: path.join(shots, 'viewer-task.png') });
  await v.goto(`${base}/tasks/${sum}`);
  await v.waitForFunction(() => document.querySelector('[data-testid=state]')?.textContent === 'SUCCESS', null, { timeout: T });
  await v.waitForSelector('[data-testid=reruns] a', { timeout: T });
  check(await v.$('[data-testid=retry]') === null, 'a viewer sees the re-runs but no Retry');
  await v.goto(`${base}/workers/${encodeURIComponent(worker)}`);
  await v.waitForSelector('[data-testid=tabpanel]', { timeout: T });
  check(await v.$('[data-testid=worker-controls]') === null, 'a viewer sees the inspect tabs but no worker controls');
  await v.goto(`${base}/types`);
  await v.waitForSelector('text=tasks.sleep', { timeout: T });
  check(await v.$('[data-testid=limits]') === null, 'a viewer sees no limits form');
  await v.goto(`${base}/tasks`);
  await v.waitForSelector('.scroller [data-uuid]', { timeout: T });
  check(await v.$('[data-testid=revoke-shown]') === null, 'a viewer sees no bulk revoke');
  check(await v.$('[data-row-menu]') === null, 'a viewer sees no row menu');
  await v.goto(`${base}/queues`);
  await v.waitForSelector('tr[data-queue="celery"]', { timeout: T });
  check(await v.$('[data-testid=queue-pause-toggle]') === null, 'a viewer sees no pause button');
  const refused = await v.evaluate(async (url) => (await fetch(url, { method: 'POST' })).status, `${base}/api/task/revoke/${other}`);
  check(refused === 403, `a viewer's control request is refused (${refused})`);

  // 7. Failure groups: two failures of one bug are one group; the operator
  // resolves it, the viewer sees it but cannot.
  pageOut.page = page;
  await send('fail', ['boom-1']);
  await send('fail', ['boom-2']);
  await page.goto(`${base}/failures`);
  const group = 'tr[data-state=open][data-count="2"]:has-text("ValueError")';
  await page.waitForSelector(group, { timeout: T });
  const fp = await page.getAttribute(group, 'data-fingerprint');
  check(!!fp, 'two failures of one bug show as one open group');
  await shot('failures');
  await page.click(`tr[data-fingerprint="${fp}"] [data-testid=failure-mark]`);
  await page.waitForSelector(`tr[data-fingerprint="${fp}"]`, { state: 'detached', timeout: T });
  await page.selectOption('[data-testid=failures-state]', 'resolved');
  await page.waitForSelector(`tr[data-fingerprint="${fp}"][data-state=resolved]`, { timeout: T });
  check(true, 'the operator resolved the group');
  pageOut.page = v;
  await v.goto(`${base}/failures`);
  await v.selectOption('[data-testid=failures-state]', '');
  await v.waitForSelector(`tr[data-fingerprint="${fp}"]`, { timeout: T });
  check(await v.$('[data-testid=failure-mark]') === null, 'a viewer sees failure groups but no resolve');

  // 7b. Pausing a queue from the queues page: confirmed, every worker's
  // reply shown, a `paused` pill (who, since when) until it is resumed.
  pageOut.page = page;
  await page.goto(`${base}/queues`);
  const toggle = 'tr[data-queue="celery"] [data-testid=queue-pause-toggle]';
  await page.waitForSelector(toggle, { timeout: T });
  check((await page.textContent(toggle)) === 'pause', 'an unpaused queue offers pause');
  await page.click(toggle);
  await page.waitForSelector('[data-testid=dialog]', { timeout: T });
  await page.keyboard.press('Enter');
  const paused = await outcome(page);
  check(paused.ok && paused.replies[worker] !== undefined, `pause: the worker answered ${paused.replies[worker]}`);
  await page.keyboard.press('Escape');
  const pill = 'tr[data-queue="celery"] [data-testid=queue-paused]';
  await page.waitForSelector(pill, { timeout: T });
  check((await page.getAttribute(pill, 'title')).startsWith(`paused by ${process.env.OPERATOR.split(':')[0]} since `), 'the pill says who paused it');
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === 'resume', toggle, { timeout: T });
  await shot('queue-paused');
  await page.click(toggle);
  await page.waitForSelector('[data-testid=dialog]', { timeout: T });
  await page.keyboard.press('Enter');
  const resumed = await outcome(page);
  check(resumed.ok, `resume: ${resumed.text}`);
  await page.keyboard.press('Escape');
  await page.waitForSelector(pill, { state: 'detached', timeout: T });
  check(true, 'the pill goes once the queue is resumed');

  // 8. Last, as the worker goes: a task running on a killed worker turns
  // LOST once its heartbeats expire.
  pageOut.page = page;
  const [doomed] = await send('sleep', [120]);
  await page.goto(`${base}/tasks/${doomed}`);
  await page.waitForFunction(() => document.querySelector('[data-testid=state]')?.textContent === 'STARTED', null, { timeout: T });
  await ask('KILL');
  await page.waitForSelector('[data-testid=state].pill.lost', { timeout: T });
  check((await page.textContent('[data-testid=state]')) === 'LOST', 'a task running on a killed worker shows LOST');
  await shot('task-lost');
}

async function readonly(browser, shot, pageOut) {
  const { page } = await newPage(browser);
  pageOut.page = page;
  await page.goto(`${base}/workers/${encodeURIComponent(worker)}`);
  await page.waitForSelector('[data-testid=me]', { timeout: T });
  check((await page.textContent('[data-testid=me]')).includes('read-only'), 'the header says read-only');
  await page.waitForSelector('[data-testid=noauth]', { timeout: T });
  check(true, 'the no-auth banner still warns');
  await page.waitForSelector('[data-testid=tabpanel] table', { timeout: T });
  check(await page.$('[data-testid=worker-controls]') === null, 'read-only: inspect tabs but no worker controls');
  await shot('worker');
  const [id] = await send('sleep', [6]);
  await page.goto(`${base}/tasks/${id}`);
  await page.waitForFunction(() => document.querySelector('[data-testid=state]')?.textContent === 'STARTED', null, { timeout: T });
  check(await page.$('[data-testid=task-actions]') === null, 'read-only: no revoke/terminate');
  await page.goto(`${base}/tasks`);
  await page.waitForSelector('.scroller [data-uuid]', { timeout: T });
  check(await page.$('[data-testid=revoke-shown]') === null, 'read-only: no bulk revoke');
  check(await page.$('[data-row-menu]') === null, 'read-only: no row menu');
  const refused = await page.evaluate(async (url) => {
    const r = await fetch(url, { method: 'POST' });
    return [r.status, (await r.json()).error];
  }, `${base}/api/task/revoke/${id}`);
  check(refused[0] === 403 && refused[1] === 'Read only mode is enabled', `read-only refuses control (${refused})`);
}

async function eventsOff(browser, shot, pageOut) {
  const { page } = await newPage(browser);
  pageOut.page = page;
  await page.goto(`${base}/`);
  await send('add', [1, 2], 3);
  await page.waitForSelector('[data-testid=events-off]', { timeout: T });
  check((await page.textContent('[data-testid=events-off]')).includes(worker), 'the overview names the worker without task events');
  check((await page.textContent('[data-testid=events-off]')).includes('Lost when a worker restarts'), 'the fix says it is lost on restart');
  await shot('overview');
  await page.click('[data-testid=enable-events]');
  await page.waitForSelector('[data-testid=events-off] p.ok', { timeout: T });
  check(true, 'enable_events was sent');
  // The next task's events reach celeriac and clear the diagnosis; the
  // producer still sends no task-sent, which the second banner says.
  await send('add', [2, 3], 1);
  await page.waitForSelector('[data-testid=events-off]', { state: 'detached', timeout: T });
  check(true, 'the banner goes once task events flow');
  await page.waitForFunction(() => (document.querySelector('[data-testid=sent-missing]')?.textContent || '').includes('celery ('), null, { timeout: T });
  check(true, 'the queue without task-sent is named');
  await shot('sent-missing');
  const [long] = await send('sleep', [60]);
  await page.waitForSelector(`[data-testid=stuck] a[href$="/tasks/${long}"]`, { timeout: T });
  check((await page.textContent('[data-testid=stuck]')).includes('tasks.sleep on ' + worker), 'a task past --stuck-after is marked stuck, linked');
  await shot('stuck');
}

(async () => {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const current = {};
  const mode = process.env.MODE || 'live';
  const prefix = mode === 'live' ? '' : mode + '-';
  const shot = (name) => current.page.screenshot({ path: path.join(shots, prefix + name + '.png'), fullPage: false });
  try {
    if (mode === 'controls') await controls(browser, shot, current);
    else if (mode === 'readonly') await readonly(browser, shot, current);
    else if (mode === 'eventsoff') await eventsOff(browser, shot, current);
    else await live(browser, shot, current);
  } catch (e) {
    log('FAILED:', e.message);
    if (current.page) await shot('failure').catch(() => {});
    await browser.close();
    process.exit(1);
  }
  await browser.close();
  // stdin (the test's answers) would keep node alive.
  process.exit(0);
})();
