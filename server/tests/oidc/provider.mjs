// A real OpenID provider for tests/oidc.rs: the certified `oidc-provider`
// package (ESM, hence .mjs), with its development login and consent
// pages. Prints `READY` once listening.
//
// Environment:
//   NODE_MODULES   where oidc-provider is installed
//   PORT           port to listen on (issuer http://127.0.0.1:PORT)
//   REDIRECT_URI   celeriac's callback, the one registered redirect URI
//   MODE           normal | tamper | expired
//     tamper:  the token endpoint's answer is altered on its way out: the
//              ID token's payload gains the operators' group, its signature
//              is left as it was (what a man in the middle would try)
//     expired: the provider's clock runs 300 s behind and ID tokens live
//              60 s, so every ID token it issues expired 240 s ago
//
// Accounts (the dev login page takes any password; the login is the
// account id): olga (group celeriac-ops), vera (vera@example.com, no
// groups), mallory (mallory@elsewhere.example, group other).
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

const modules = process.env.NODE_MODULES;
const { default: Provider } = await import(
  pathToFileURL(join(modules, 'oidc-provider', 'lib', 'index.js')).href
);
const port = Number(process.env.PORT);
const mode = process.env.MODE || 'normal';
const issuer = `http://127.0.0.1:${port}`;

if (mode === 'expired') {
  const realNow = Date.now;
  Date.now = () => realNow() - 300_000;
}

const accounts = {
  olga: { email: 'olga@ops.example', email_verified: true, name: 'Olga Operator', groups: ['celeriac-ops'] },
  vera: { email: 'vera@example.com', email_verified: true, name: 'Vera Viewer', groups: [] },
  mallory: { email: 'mallory@elsewhere.example', email_verified: true, name: 'Mallory', groups: ['other'] },
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'celeriac',
    client_secret: 'celeriac-test-client-secret',
    redirect_uris: [process.env.REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  pkce: { required: () => true },
  // Email and groups in the ID token itself, as Google, Keycloak and Okta
  // (with a groups claim) put them.
  conformIdTokenClaims: false,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...account }; } };
  },
  ttl: { IdToken: mode === 'expired' ? 60 : 3600 },
  cookies: { keys: ['celeriac-test-cookie-key'] },
  features: { devInteractions: { enabled: true } },
});

if (mode === 'tamper') {
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/token' && ctx.body && ctx.body.id_token) {
      const [h, p, s] = ctx.body.id_token.split('.');
      const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
      claims.groups = ['celeriac-ops'];
      const forged = Buffer.from(JSON.stringify(claims)).toString('base64url');
      ctx.body = { ...ctx.body, id_token: `${h}.${forged}.${s}` };
      console.error('[provider] tampered with an ID token');
    }
  });
}

provider.on('server_error', (ctx, err) => console.error('[provider] server_error', err));
provider.listen(port, '127.0.0.1', () => {
  console.log('READY');
});
