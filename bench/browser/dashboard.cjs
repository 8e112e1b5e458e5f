// The dashboard's figures in Debian's Chromium (playwright-core, never a
// downloaded browser), driven by bench/src/dashboard.rs. Protocol: this
// script prints `FIGURE name value` lines, `NOTE text` lines, and `ASK what`
// lines that the bench answers with one line on stdin once it has done
// `what`:
//   ASK preload   -> the bench retains its task count in celeriac, answers OK
//   ASK firehose  -> the bench starts the event flow and the markers, answers OK
//   ASK markers   -> a JSON array of the publish times (epoch ms) of every
//                    marker sent so far
//   ASK stop      -> the bench stops the flow, answers with a JSON summary
// Markers are tasks named `bench.marker` whose args are `(<publish epoch ms>,)`:
// the page and the bench share the machine's clock, so a marker's delay is
// the time its row is first painted minus the time it was published.
'use strict';
const { chromium } = require(process.env.PLAYWRIGHT_CORE);
const path = require('path');
const readline = require('readline');

const base = process.env.CELERIAC_URL; // no trailing slash
const phaseMs = Number(process.env.PHASE_SECS || 20) * 1000;
const probeQueue = process.env.PROBE_QUEUE;
const probeDepth = Number(process.env.PROBE_DEPTH || 0);
const shots = process.env.SCREENSHOTS;
const T = 60000;

const answers = [];
const waiting = [];
readline.createInterface({ input: process.stdin }).on('line', (l) => {
  const w = waiting.shift();
  if (w) w(l); else answers.push(l);
});
function ask(what) {
  process.stdout.write(`ASK ${what}\n`);
  return new Promise((resolve) => {
    const a = answers.shift();
    if (a !== undefined) resolve(a); else waiting.push(resolve);
  });
}
const figure = (name, value) => process.stdout.write(`FIGURE ${name} ${value}\n`);
const note = (text) => process.stdout.write(`NOTE ${text}\n`);
const log = (...a) => console.error('[dashboard-bench]', ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

// Installed before any page script: records long main-thread tasks (> 50 ms,
// the Long Tasks API's threshold) from the start of the page.
function longtaskRecorder() {
  window.__longtasks = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__longtasks.push([e.startTime, e.duration]);
  }).observe({ type: 'longtask', buffered: true });
}

// Installed before any page script: stamps each marker row the first time
// it is in the DOM, at the next animation frame (when it is painted).
function markerRecorder() {
  // Keyed by publish time (epoch ms): null once in the DOM, the delay once painted.
  window.__markers = {};
  window.__markersSince = Date.now();
  const pending = [];
  const scan = () => {
    for (const row of document.querySelectorAll('[data-uuid]')) {
      const args = row.querySelector('.clip');
      const m = args && /\((\d{13}),?\)/.exec(args.textContent);
      if (!m || window.__markers[m[1]] !== undefined) continue;
      window.__markers[m[1]] = null;
      pending.push(Number(m[1]));
    }
    if (pending.length) {
      requestAnimationFrame(() => {
        const now = Date.now();
        for (const sent of pending.splice(0)) window.__markers[sent] = now - sent;
      });
    }
  };
  const start = () => new MutationObserver(scan).observe(document.body, { childList: true, subtree: true });
  if (document.body) start(); else document.addEventListener('DOMContentLoaded', start);
}

// Installed before any page script: times the app's websocket message
// handler (decode + apply to the model, in wasm), so a long task can be
// split into that and the reactive re-render that follows in microtasks.
function wsRecorder() {
  window.__ws = [];
  const desc = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage');
  Object.defineProperty(WebSocket.prototype, 'onmessage', {
    configurable: true,
    get() { return desc.get.call(this); },
    set(fn) {
      desc.set.call(this, fn && function (e) {
        const t0 = performance.now();
        try { return fn.call(this, e); } finally {
          window.__ws.push([typeof e.data === 'string' ? e.data.length : 0, performance.now() - t0]);
        }
      });
    },
  });
}

// Figures of the handler timings recorded since the last call.
async function wsFigures(page, prefix) {
  const ws = await page.evaluate(() => window.__ws.splice(0));
  if (!ws.length) return;
  const ms = ws.map((m) => m[1]).sort((a, b) => a - b);
  figure(`${prefix}_ws_messages`, ws.length);
  figure(`${prefix}_ws_avg_bytes`, Math.round(ws.reduce((a, m) => a + m[0], 0) / ws.length));
  figure(`${prefix}_ws_handler_p50_ms`, Math.round(quantile(ms, 0.5)));
  figure(`${prefix}_ws_handler_max_ms`, Math.round(ms[ms.length - 1]));
  figure(`${prefix}_ws_handler_total_ms`, Math.round(ms.reduce((a, b) => a + b, 0)));
}

async function firstWorkerRow(browser, label) {
  // A fresh context each time: an empty cache, as a first visit.
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  let bytes = 0;
  const encodings = {};
  page.on('requestfinished', async (req) => {
    try {
      const sizes = await req.sizes();
      bytes += sizes.responseBodySize + sizes.responseHeadersSize;
      const resp = await req.response();
      const enc = resp && (await resp.headerValue('content-encoding'));
      encodings[path.basename(new URL(req.url()).pathname) || '/'] = enc || 'identity';
    } catch (e) { /* the page went away */ }
  });
  const t0 = Date.now();
  await page.goto(`${base}/workers`);
  await page.waitForSelector('tr[data-worker]', { timeout: T });
  const ms = Date.now() - t0;
  await page.waitForLoadState('networkidle').catch(() => {});
  await context.close();
  log(`${label}: first worker row after ${ms} ms; ${bytes} B over the wire`, JSON.stringify(encodings));
  return { ms, bytes, encodings };
}

async function median3(browser, label) {
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await firstWorkerRow(browser, `${label} #${i + 1}`));
  const sorted = runs.map((r) => r.ms).sort((a, b) => a - b);
  return { ms: sorted[1], bytes: runs[0].bytes, encodings: runs[0].encodings };
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    // 1. Cold load on an idle celeriac (4 workers, a few tasks).
    const idle = await median3(browser, 'idle');
    figure('first_worker_row_ms', idle.ms);
    figure('browser_transfer_bytes', idle.bytes);
    note(`content-encoding as Chromium received it: ${JSON.stringify(idle.encodings)}`);

    // 2. The Queues page lists a real broker queue with its depth.
    if (probeQueue) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await context.newPage();
      const t0 = Date.now();
      await page.goto(`${base}/queues`);
      const sel = `tr[data-queue="${probeQueue}"] [data-testid=depth]`;
      await page.waitForFunction(([s, d]) => {
        const el = document.querySelector(s);
        return el && Number(el.textContent) === d;
      }, [sel, probeDepth], { timeout: T });
      figure('queues_page_probe_ms', Date.now() - t0);
      if (shots) await page.screenshot({ path: path.join(shots, 'queues.png') });
      await context.close();
    }

    // 3. The same with the bench's task count retained (the snapshot then
    //    carries the server's 10,000 most recent tasks).
    if ((await ask('preload')) !== 'OK') throw new Error('preload refused');
    const full = await median3(browser, 'retained');
    figure('first_worker_row_retained_ms', full.ms);

    // 4. Event-to-screen delay: the tasks view filtered to the markers,
    //    while the firehose flows.
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.addInitScript(longtaskRecorder);
    await context.addInitScript(markerRecorder);
    await context.addInitScript(wsRecorder);
    const marked = await context.newPage();
    marked.on('pageerror', (e) => log('page error:', e.message));
    await marked.goto(`${base}/tasks?name=bench.marker`);
    await marked.waitForSelector('[data-conn="live"]', { timeout: T });
    await sleep(1000);
    await marked.evaluate(() => window.__longtasks.splice(0));
    await marked.evaluate(() => window.__ws.splice(0));
    if ((await ask('firehose')) !== 'OK') throw new Error('firehose refused');
    await sleep(phaseMs);
    // Every marker published up to GRACE ms ago counts; one not on screen
    // by now counts as later than any seen, so it weighs on the p99.
    const GRACE = 3000;
    const sentTimes = JSON.parse(await ask('markers'));
    const cutoff = Date.now() - GRACE;
    const pageOpen = await marked.evaluate(() => window.__markersSince);
    const due = sentTimes.filter((t) => t >= pageOpen && t <= cutoff);
    const painted = await marked.evaluate(() => window.__markers);
    let missing = 0;
    const delays = due.map((t) => {
      const d = painted[t];
      if (d === undefined || d === null) { missing++; return Infinity; }
      return d;
    }).sort((a, b) => a - b);
    figure('markers_due', due.length);
    figure('markers_seen', due.length - missing);
    figure('event_to_screen_p50_ms', quantile(delays, 0.5));
    figure('event_to_screen_p99_ms', quantile(delays, 0.99));
    figure('event_to_screen_max_ms', delays.length ? delays[delays.length - 1] : NaN);
    const markerTasks = await marked.evaluate(() => window.__longtasks.splice(0));
    figure('marker_page_longest_task_ms', Math.round(Math.max(0, ...markerTasks.map((t) => t[1]))));
    figure('marker_page_long_task_ms_total', Math.round(markerTasks.reduce((a, t) => a + t[1], 0)));
    await wsFigures(marked, 'marker_page');
    if (shots) await marked.screenshot({ path: path.join(shots, 'tasks-markers.png') });
    await marked.close();

    // 5. Longest main-thread task on the unfiltered tasks page, still under
    //    the firehose; the initial load (snapshot decode) is reported apart.
    const all = await context.newPage();
    all.on('pageerror', (e) => log('page error:', e.message));
    await all.goto(`${base}/tasks`);
    await all.waitForSelector('.scroller [data-uuid]', { timeout: T });
    await sleep(1000);
    const loadTasks = await all.evaluate(() => window.__longtasks.splice(0));
    await all.evaluate(() => window.__ws.splice(0));
    figure('tasks_page_load_longest_task_ms', Math.round(Math.max(0, ...loadTasks.map((t) => t[1]))));
    // Scroll a little now and then, as someone reading the table would.
    const until = Date.now() + phaseMs;
    while (Date.now() < until) {
      await all.mouse.move(640, 500);
      await all.mouse.wheel(0, 600);
      await sleep(1000);
    }
    const tasks = await all.evaluate(() => window.__longtasks.splice(0));
    const durations = tasks.map((t) => t[1]).sort((a, b) => a - b);
    figure('tasks_page_longest_task_ms', Math.round(durations.length ? durations[durations.length - 1] : 0));
    figure('tasks_page_long_tasks', durations.length);
    figure('tasks_page_long_task_ms_total', Math.round(durations.reduce((a, b) => a + b, 0)));
    await wsFigures(all, 'tasks_page');
    const rowsShown = await all.evaluate(() => document.querySelector('[data-testid=count]')?.textContent || '');
    note(`tasks page while measuring: ${rowsShown}`);
    if (shots) await all.screenshot({ path: path.join(shots, 'tasks-firehose.png') });
    const summary = await ask('stop');
    log('flow summary', summary);
    await context.close();
  } catch (e) {
    log('FAILED:', e.stack || e.message);
    await browser.close().catch(() => {});
    process.exit(1);
  }
  await browser.close();
  // stdin (the bench's answers) would keep node alive.
  process.exit(0);
})();
