// Signs in to celeriac from Debian's Chromium (playwright-core) through a
// real OpenID provider (tests/oidc/provider.mjs): celeriac's redirect to
// the provider, its login and consent pages, the callback. Run by
// tests/oidc.rs.
//
// MODE=roles: olga (operator by group), vera (viewer by email domain),
//   mallory (not allowed); CSRF on control requests; the websocket with
//   the session; a tampered session cookie; sign-out ends the session.
//   DASHBOARD=1 when the binary embeds the dashboard: the header shows who
//   is signed in and the sign-out button is used.
// MODE=refused: LOGIN signs in, and the callback must fail with a page
//   containing EXPECT (a tampered or expired ID token); no session results.
'use strict';
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const base = process.env.CELERIAC_URL; // no trailing slash
const issuer = process.env.ISSUER;
const T = 30000;
const log = (...a) => console.error('[signin]', ...a);
function check(cond, what) { if (!cond) throw new Error('check failed: ' + what); log('ok:', what); }

async function newPage(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (e) => log('page error:', e.message));
  return { context, page };
}

// From a celeriac page without a session to the provider and back: to
// where the browser started, or (refused) the callback's own page.
async function signIn(page, login, start = '/', refused = false) {
  await page.goto(base + start);
  // celeriac sent the browser to the provider's login page.
  await page.waitForURL((u) => u.href.startsWith(issuer), { timeout: T });
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', 'any-password');
  await page.click('button[type=submit]');
  // The consent page (first sign-in of this account with this client).
  await page.waitForSelector('form input[name=prompt][value=consent]', { state: 'attached', timeout: T });
  await page.click('button[type=submit]');
  const callback = (u) => u.pathname.endsWith('/login/callback');
  await page.waitForURL((u) => u.href.startsWith(base) && callback(u) === refused, { timeout: T });
}

// fetch from the page (same origin, the browser's cookies).
async function call(page, method, path, headers = {}) {
  return page.evaluate(async ([method, path, headers]) => {
    const r = await fetch(path, { method, headers });
    return { status: r.status, text: await r.text() };
  }, [method, base + path, headers]);
}

async function csrf(context) {
  const c = (await context.cookies()).find((c) => c.name === 'celeriac_csrf');
  return c && c.value;
}

async function sessionCookie(context) {
  return (await context.cookies()).find((c) => c.name === 'celeriac_session');
}

// A fresh context holding only `cookie` (a celeriac_session value).
async function withCookie(browser, cookie) {
  const { context, page } = await newPage(browser);
  await context.addCookies([{ ...cookie }]);
  return { context, page };
}

const REVOKE = '/api/task/revoke/00000000-0000-4000-8000-00000000abcd';

async function roles(browser) {
  // --- olga: operator through the celeriac-ops group.
  const { context, page } = await newPage(browser);
  await signIn(page, 'olga', '/api/workers?from=deep-link');
  check(new URL(page.url()).pathname.endsWith('/api/workers') && page.url().includes('from=deep-link'),
    'back where the browser started after signing in: ' + page.url());
  const me = JSON.parse((await call(page, 'GET', '/api/me')).text);
  check(me.role === 'operator' && me.session === true && me.email === 'olga@ops.example'
    && me.user === 'olga@ops.example' && me.can_control === true, 'olga is an operator: ' + JSON.stringify(me));
  const session = await sessionCookie(context);
  check(session && session.httpOnly && session.sameSite === 'Lax' && session.expires > Date.now() / 1000 + 3600,
    'the session cookie is HttpOnly, SameSite=Lax, with an expiry: ' + JSON.stringify(session));
  const token = await csrf(context);
  check(!!token, 'a CSRF cookie the page can read');

  // CSRF: a control request from the session needs the header.
  let r = await call(page, 'POST', REVOKE);
  check(r.status === 403 && JSON.parse(r.text).error.includes('CSRF token missing'),
    'a control POST without X-CSRF-Token is refused: ' + r.text);
  r = await call(page, 'POST', REVOKE, { 'X-CSRF-Token': token.slice(0, -2) + 'AA' });
  check(r.status === 403 && JSON.parse(r.text).error.includes('CSRF token wrong'),
    'a wrong X-CSRF-Token is refused: ' + r.text);
  r = await call(page, 'POST', REVOKE, { 'X-CSRF-Token': token });
  check(r.status === 200 && JSON.parse(r.text).message.includes('Revoked'),
    'with the token the revoke goes through: ' + r.text);
  const audit = JSON.parse((await call(page, 'GET', '/api/audit')).text);
  const entry = (audit.entries || audit).find((e) => e.command === 'revoke');
  check(entry && entry.user === 'olga@ops.example (oidc sub olga)' && entry.role === 'operator',
    'the audit log names the email and the subject: ' + JSON.stringify(entry));

  // The websocket, authenticated by the session cookie.
  const first = await page.evaluate((url) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onmessage = (m) => { ws.close(); resolve(String(m.data).slice(0, 40)); };
    ws.onerror = () => resolve('error');
    ws.onclose = (e) => resolve('closed ' + e.code);
  }), base.replace(/^http/, 'ws') + '/ws');
  check(first.startsWith('{'), 'the websocket streams to the session: ' + first);

  // A tampered session cookie (the payload's email rewritten, the
  // signature kept) is refused.
  const [payload, sig] = session.value.split('.');
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
  const forged = Buffer.from(JSON.stringify({ ...claims, email: 'root@ops.example' })).toString('base64url');
  {
    const t = await withCookie(browser, { ...session, value: `${forged}.${sig}` });
    const resp = await t.context.request.get(base + '/api/me');
    check(resp.status() === 401 && (await resp.text()).includes('signature'),
      'a tampered session cookie is refused');
    await t.context.close();
  }

  // --- Dashboard: who is signed in, and the sign-out button.
  if (process.env.DASHBOARD === '1') {
    // The task page's Retry check is a POST the dashboard makes itself.
    const dry = page.waitForRequest((r) => r.method() === 'POST' && r.url().includes('/api/task/retry/'), { timeout: T });
    await page.goto(`${base}/tasks/${process.env.TASK}`);
    const req = await dry;
    const resp = await req.response();
    check(req.headers()['x-csrf-token'] === token && resp.status() === 200,
      `the dashboard sends X-CSRF-Token with its control requests (${resp.status()} ${await resp.text()})`);
    await page.goto(base + '/');
    const badge = page.locator('[data-testid=me]');
    await badge.waitFor({ timeout: T });
    check((await badge.textContent()).includes('olga@ops.example') && (await badge.getAttribute('data-session')) === 'true',
      'the header shows who is signed in');
    await page.click('[data-testid=sign-out]');
    await page.waitForSelector('[data-testid=signed-out]', { timeout: T });
    check(true, 'the dashboard\'s sign-out button signs out');
  } else {
    log('no dashboard embedded: signing out with a POST');
    r = await call(page, 'POST', '/logout', { 'X-CSRF-Token': token });
    check(r.status === 200 && r.text.includes('signed out'), 'POST /logout signs out');
  }
  check(!(await sessionCookie(context)), 'sign-out cleared the session cookie');
  {
    // The old cookie, replayed, no longer works.
    const t = await withCookie(browser, session);
    const resp = await t.context.request.get(base + '/api/me');
    check(resp.status() === 401 && (await resp.text()).includes('signed out'),
      'the session ended: its cookie is refused after sign-out');
    // A browser without a session asking for a page goes to sign in.
    await t.page.goto(base + '/');
    check(t.page.url().startsWith(issuer), 'a page without a session redirects to the provider');
    await t.context.close();
  }
  await context.close();

  // --- vera: viewer through *@example.com.
  {
    const { context, page } = await newPage(browser);
    await signIn(page, 'vera');
    const me = JSON.parse((await call(page, 'GET', '/api/me')).text);
    check(me.role === 'viewer' && me.can_control === false && me.session === true, 'vera is a viewer: ' + JSON.stringify(me));
    const r = await call(page, 'POST', REVOKE, { 'X-CSRF-Token': await csrf(context) });
    check(r.status === 403 && JSON.parse(r.text).error.includes('viewer'), 'a viewer cannot control: ' + r.text);
    await context.close();
  }

  // --- mallory: signed in at the provider, but in no list.
  {
    const { context, page } = await newPage(browser);
    const refused = page.waitForResponse((r) => r.url().includes('/login/callback'), { timeout: T });
    await signIn(page, 'mallory', '/', true);
    check((await refused).status() === 403, 'the callback answers 403 for a user outside the lists');
    const text = await page.locator('[data-testid=not-allowed]').textContent();
    check(text.includes('Signed in as mallory@elsewhere.example, but not allowed'), 'the page says so: ' + text);
    check(!(await sessionCookie(context)), 'and no session was opened');
    // (The API request context carries the browser's cookies; a fetch
    // from the page would make Chromium prompt for Basic credentials.)
    const me = await context.request.get(base + '/api/me');
    check(me.status() === 401, 'mallory gets nothing');
    await context.close();
  }
}

async function refused(browser) {
  const { context, page } = await newPage(browser);
  await signIn(page, process.env.LOGIN, '/', true);
  const text = await page.locator('[data-testid=signin-error]').textContent();
  check(text.includes(process.env.EXPECT), `sign-in fails with "${process.env.EXPECT}": ${text}`);
  check(!(await sessionCookie(context)), 'no session was opened');
  const me = await context.request.get(base + '/api/me');
  check(me.status() === 401, 'the browser is not signed in');
  await context.close();
}

(async () => {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  try {
    if (process.env.MODE === 'refused') await refused(browser); else await roles(browser);
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
