/**
 * The `oidc_token` scenario's preparation: a confidential client registered in a tenant, one
 * sign-in through the provider's pages (password, consent), then authorization codes minted
 * without a page (the grant is remembered), each for one exchange at the token endpoint.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { randomToken, sha256 } from '../src/auth/tokens.js';
import { tenantDb } from '../src/db/database.js';
import type { PlatformDatabase } from '../src/db/platform-types.js';

export interface BenchClient {
  readonly id: string;
  readonly secret: string;
  readonly redirectUri: string;
  /** The HTTP Basic header of the token endpoint. */
  readonly authorization: string;
}

/** Registers a confidential client straight in the tenant's table (the API is not what is measured). */
export async function registerClient(db: Kysely<PlatformDatabase>, slug: string, base: string): Promise<BenchClient> {
  const id = randomUUID();
  const secret = randomToken('ocs_');
  const redirectUri = `${base}/callback`;
  await tenantDb(db, `tenant_${slug}`)
    .insertInto('oidc_clients')
    .values({ id, name: 'Bench', type: 'confidential', client_secret_hash: sha256(secret), redirect_uris: [redirectUri], post_logout_redirect_uris: [], grant_types: ['authorization_code', 'refresh_token'] })
    .execute();
  return { id, secret, redirectUri, authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` };
}

/** A browser without script: cookies by name, redirects followed until the client's redirect URI. */
class Browser {
  private readonly cookies = new Map<string, string>();

  constructor(private readonly stopAt: string) {}

  async go(url: string, form?: Record<string, string>): Promise<{ status: number; location: string | null; body: string }> {
    let next: { url: string; form?: Record<string, string> } | undefined = { url, form };
    for (;;) {
      const res: Response = await fetch(next.url, {
        method: next.form ? 'POST' : 'GET',
        redirect: 'manual',
        headers: { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '), ...(next.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
        ...(next.form ? { body: new URLSearchParams(next.form).toString() } : {}),
      });
      for (const line of res.headers.getSetCookie()) {
        const [name, ...value] = line.split(';')[0]!.split('=');
        if (value.join('=')) this.cookies.set(name!.trim(), value.join('='));
        else this.cookies.delete(name!.trim());
      }
      const location = res.headers.get('location');
      const absolute: string | null = location ? new URL(location, next.url).href : null;
      if (!absolute || absolute.startsWith(this.stopAt)) return { status: res.status, location: absolute, body: await res.text() };
      await res.arrayBuffer();
      next = { url: absolute };
    }
  }
}

const actionOf = (html: string, base: string) => new URL(/<form method="post" action="([^"]+)"/.exec(html)![1]!.replaceAll('&amp;', '&'), base).href;

/** Signs `email` in once through the pages, then mints `count` codes for the client (each asks consent again: offline access needs `prompt=consent`). */
export async function mintCodes(base: string, slug: string, client: BenchClient, email: string, password: string, count: number): Promise<string[]> {
  const browser = new Browser(client.redirectUri);
  const authorize = `${base}/api/v1/tenants/${slug}/oidc/auth?${new URLSearchParams({ client_id: client.id, response_type: 'code', redirect_uri: client.redirectUri, scope: 'openid email roles offline_access', prompt: 'consent' })}`;
  const codes: string[] = [];
  while (codes.length < count) {
    let page = await browser.go(authorize);
    if (page.body.includes('name="password"')) page = await browser.go(actionOf(page.body, base), { email, password });
    if (!page.location) page = await browser.go(actionOf(page.body, base), {});
    const code = page.location && new URL(page.location).searchParams.get('code');
    if (!code) throw new Error(`oidc: no code (${page.status} ${page.location ?? page.body.slice(0, 200)})`);
    codes.push(code);
  }
  return codes;
}
