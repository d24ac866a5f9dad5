import type * as OidcLibrary from 'oidc-provider';
import type { Account, AdapterPayload, Configuration, KoaContextWithOIDC, default as Provider } from 'oidc-provider';
import type { Kysely } from 'kysely';
import type { AccessService } from '../access/service.js';
import type { AuditActor } from '../audit/audit.js';
import type { Change, ChangeListener, Changes } from '../cache/changes.js';
import { derivedKey, type JwtKeys } from '../auth/keys.js';
import type { AuthService } from '../auth/service.js';
import type { SessionStore } from '../auth/sessions.js';
import { sha256 } from '../auth/tokens.js';
import { tenantDb } from '../db/database.js';
import type { PlatformDatabase } from '../db/platform-types.js';
import { negotiateLocale, type Locale } from '../i18n/index.js';
import { displayName, type PolicyReader } from '../settings/policy.js';
import type { TenantContext } from '../tenancy/directory.js';
import type { UserService } from '../users/service.js';
import { kyselyAdapter, linkReadAhead, purgeExpired } from './adapter.js';
import type { ClientRecord, OidcClientService } from './clients.js';
import { LONGEST_TOKEN_MS, SIGNING_ALG, type OidcKeyService } from './keys.js';
import { loggedOutPage, logoutPage, oauthErrorPage, type OidcPageView } from './pages.js';
import type { RenderedPage } from '../account/page.js';

/**
 * oidc-provider, imported when a tenant's provider is first built: its import costs every
 * process start-up time and, on Node 20, prints a warning (the CLI and failed starts too).
 */
let library: Promise<typeof OidcLibrary> | undefined;
export const loadOidcLibrary = () => (library ??= import('oidc-provider'));

/** Providers kept at once; a tenant past this is built again on its next request (its state is in its tables). */
export const PROVIDER_CACHE_SIZE = 100;
/** How often expired provider rows and old signing keys are swept. */
export const SWEEP_INTERVAL_MS = 10 * 60_000;

/** Lifetimes (seconds): codes are used at once, tokens live no longer than a retired key stays published. */
const TTL = {
  AccessToken: LONGEST_TOKEN_MS / 1000,
  IdToken: LONGEST_TOKEN_MS / 1000,
  AuthorizationCode: 60,
  Interaction: 30 * 60,
  Session: 14 * 86_400,
  Grant: 14 * 86_400,
  RefreshToken: 14 * 86_400,
} as const;

/** The scopes and the claims each one releases (docs/OIDC.md). */
const CLAIMS = {
  // `amr`: how the user signed in (`pwd`, then `otp` after a second factor).
  openid: ['sub', 'amr'],
  profile: ['name', 'given_name', 'family_name', 'locale', 'zoneinfo', 'updated_at'],
  email: ['email', 'email_verified'],
  roles: ['roles', 'permissions'],
};

/**
 * What an interaction's result carries besides oidc-provider's own: the service session
 * (`user_sessions.id`) the sign-in opened, linked to the provider session saved with it.
 */
export interface SignInResult {
  readonly login: { readonly accountId: string; readonly amr: string[]; readonly remember: boolean };
  readonly service_session: string;
}

export interface OidcProvidersDeps {
  readonly db: Kysely<PlatformDatabase>;
  readonly keys: JwtKeys;
  readonly changes: Changes;
  readonly oidcKeys: OidcKeyService;
  readonly oidcClients: OidcClientService;
  readonly users: Pick<UserService, 'get'>;
  readonly access: Pick<AccessService, 'data' | 'allowed'>;
  readonly sessions: Pick<SessionStore, 'isLive'>;
  readonly policies: PolicyReader;
  readonly auth: Pick<AuthService, 'logout'>;
  /** PUBLIC_URL: the issuers are `<PUBLIC_URL>/api/v1/tenants/{slug}/oidc`. */
  readonly publicUrl: string;
}

export type ProviderErrorHandler = (error: unknown, tenant: TenantContext) => void;

interface Entry {
  readonly slug: string;
  readonly schema: string;
  readonly provider: Provider;
  readonly validUntil: number;
  /** The keys it was built with and the role of each: an unchanged keystore keeps the provider. */
  readonly keysInUse: string;
}

/** What of a keystore the provider depends on: which keys, in which order, which of them signs. */
const keysInUse = (keys: readonly { kid?: string; key_ops?: string[] }[]) => JSON.stringify(keys.map((k) => [k.kid, k.key_ops ?? null]));

/** The issuer of a tenant: every endpoint of its provider is under it. */
export const issuerOf = (publicUrl: string, slug: string): string => `${new URL(publicUrl).origin}/api/v1/tenants/${slug}/oidc`;

/** The path the issuer is mounted at (where its catch-all route starts). */
export const mountPathOf = (slug: string): string => `/api/v1/tenants/${slug}/oidc`;

/** A client as oidc-provider's metadata: public clients authenticate with nothing (and must use PKCE), confidential ones with HTTP Basic. */
export function clientMetadata(client: ClientRecord): AdapterPayload {
  return {
    client_id: client.id,
    client_name: client.name,
    ...(client.client_secret_hash ? { client_secret: client.client_secret_hash, token_endpoint_auth_method: 'client_secret_basic' } : { token_endpoint_auth_method: 'none' }),
    // Copies: the record may be a cached one, shared by every request.
    redirect_uris: [...client.redirect_uris],
    post_logout_redirect_uris: [...client.post_logout_redirect_uris],
    grant_types: [...client.grant_types],
    response_types: ['code'],
    id_token_signed_response_alg: SIGNING_ALG,
    application_type: client.redirect_uris.every((u) => /^https?:/.test(u)) ? 'web' : 'native',
  };
}

/** The origins (or private-use schemes) a client's redirects lead to: a page's `form-action` must allow them, or a browser stops the redirect after the post. */
export function redirectTargets(uris: readonly string[]): string[] {
  return [
    ...new Set(
      uris.flatMap((u) => {
        try {
          const url = new URL(u);
          return /^https?:$/.test(url.protocol) ? [url.origin] : [url.protocol];
        } catch {
          return [];
        }
      }),
    ),
  ];
}

/** A page's policy with its forms also allowed to lead to `targets`. */
export const withFormTargets = (page: RenderedPage, targets: readonly string[]): RenderedPage =>
  targets.length ? { ...page, csp: page.csp.replace(`form-action 'self'`, `form-action 'self' ${targets.join(' ')}`) } : page;

/**
 * One oidc-provider `Provider` per tenant, built on demand and kept in a bounded LRU: its
 * storage the tenant's tables (adapter.ts), its keys the tenant's signing keys (rebuilt when
 * its keystore's validity ends, at least once a minute), its accounts the tenant's users as
 * long as the service session their sign-in opened is live. Dropped when the tenant changes.
 */
export class OidcProviders implements ChangeListener {
  private readonly entries = new Map<string, Entry>();
  /** Keystore loads under way, by tenant: requests arriving meanwhile wait for the same one. */
  private readonly loading = new Map<string, Promise<Provider>>();
  /** Counts forget() calls: a load that started before one is not kept. */
  private forgotten = 0;
  private readonly cookieKey: string;
  private sweeper: NodeJS.Timeout | undefined;
  private onError: ProviderErrorHandler = () => undefined;

  constructor(private readonly deps: OidcProvidersDeps) {
    this.cookieKey = derivedKey(deps.keys, 'oidc provider cookies').toString('base64url');
    deps.changes.listen(this);
  }

  /** PUBLIC_URL, which every issuer starts with. */
  get publicUrl(): string {
    return this.deps.publicUrl;
  }

  /** Where server errors of the providers and of the sweep are reported (the app's logger). */
  reportErrors(handler: ProviderErrorHandler): void {
    this.onError = handler;
  }

  /** The tenant's provider (built, or rebuilt with fresh keys, when needed). */
  async get(tenant: TenantContext, now = Date.now()): Promise<Provider> {
    const known = this.entries.get(tenant.id);
    const current = known && known.slug === tenant.slug && known.schema === tenant.schema ? known : undefined;
    if (current && now < current.validUntil) {
      // Most recently used last: the first entry is the one evicted.
      this.entries.delete(tenant.id);
      this.entries.set(tenant.id, current);
      return current.provider;
    }
    let load = this.loading.get(tenant.id);
    if (!load) {
      const started = this.load(tenant, current, now).finally(() => {
        if (this.loading.get(tenant.id) === started) this.loading.delete(tenant.id);
      });
      this.loading.set(tenant.id, (load = started));
    }
    return load;
  }

  /**
   * Reads the tenant's keystore: a provider whose keys are still the same ones in the same roles
   * is kept (its clients, its imported keys and its routes with it), else a new one is built.
   */
  private async load(tenant: TenantContext, current: Entry | undefined, now: number): Promise<Provider> {
    const forgotten = this.forgotten;
    const keystore = await this.deps.oidcKeys.keystore(tenant, now);
    const keys = keysInUse(keystore.keys);
    const provider = current?.keysInUse === keys ? current.provider : this.build(tenant, keystore.keys as Record<string, unknown>[], (await loadOidcLibrary()).default);
    if (forgotten !== this.forgotten) return provider;
    this.entries.delete(tenant.id);
    this.entries.set(tenant.id, { slug: tenant.slug, schema: tenant.schema, validUntil: keystore.validUntil, provider, keysInUse: keys });
    while (this.entries.size > PROVIDER_CACHE_SIZE) this.entries.delete(this.entries.keys().next().value!);
    return provider;
  }

  /** A suspended, deleted, restored or renamed tenant (or new settings) gets a new provider (ChangeListener). */
  forget(tenant: TenantContext, change: Change): Promise<void> | undefined {
    if (change.kind === 'tenant' || change.kind === 'settings') {
      this.forgotten++;
      this.entries.delete(tenant.id);
      this.loading.delete(tenant.id);
    }
    return undefined;
  }

  /** The words and look of a provider page for this tenant, in the reader's language. */
  async view(tenant: TenantContext, acceptLanguage: string | undefined, client: string): Promise<OidcPageView> {
    const policy = await this.deps.policies.policy(tenant);
    const locale: Locale = negotiateLocale({ acceptLanguage, tenantDefault: policy.defaultLocale });
    return { locale, product: displayName(tenant, policy), branding: policy.branding, client, mfa: policy.mfa };
  }

  /** Starts the periodic sweep of expired rows and old keys of the tenants whose providers are kept; the timer never holds the process open. */
  start(intervalMs = SWEEP_INTERVAL_MS): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(() => void this.sweep(), intervalMs);
    this.sweeper.unref();
  }

  stop(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  /** One sweep: expired provider rows and keys out of the JWKS for a day, of each kept tenant; answers the rows deleted. */
  async sweep(): Promise<number> {
    let deleted = 0;
    for (const [id, entry] of [...this.entries]) {
      const tenant: TenantContext = { id, slug: entry.slug, schema: entry.schema, name: entry.slug };
      try {
        deleted += await purgeExpired(tenantDb(this.deps.db, tenant.schema));
        await this.deps.oidcKeys.purge(tenant);
      } catch (error) {
        this.onError(error, tenant);
      }
    }
    return deleted;
  }

  /**
   * The service session a provider request stands on: the one a sign-in of this very request
   * opened (its interaction result), else the one linked to the provider session `uid`.
   */
  private async serviceSession(tenant: TenantContext, ctx: KoaContextWithOIDC | undefined, uid: string | undefined): Promise<string | undefined> {
    const here = this.linkedHere(ctx, uid);
    if (here) return here;
    if (!uid) return undefined;
    // Read along with the token this request presented (adapter.ts), when it did.
    const readAhead = linkReadAhead(ctx, uid);
    if (readAhead !== undefined) return readAhead ?? undefined;
    const row = await tenantDb(this.deps.db, tenant.schema).selectFrom('oidc_payloads').select('session_id').where('model', '=', 'Session').where('uid', '=', uid).executeTakeFirst();
    return row?.session_id ?? undefined;
  }

  /** The link known in this request without a read: a fresh sign-in's session, or the one a session's identifier rotation carries over. */
  private linkedHere(ctx: KoaContextWithOIDC | undefined, uid: string | undefined): string | undefined {
    if (!ctx?.oidc) return undefined;
    const result = ctx.oidc.result as Partial<SignInResult> | undefined;
    if (result?.login && result.service_session && ctx.oidc.entities.Session?.uid === uid) return result.service_session;
    const carried = (ctx.state as { carriedSession?: { uid: string; id: string } }).carriedSession;
    return carried && carried.uid === uid ? carried.id : undefined;
  }

  private build(tenant: TenantContext, keys: Record<string, unknown>[], Provider: typeof OidcLibrary.default): Provider {
    const { deps } = this;
    const db = tenantDb(deps.db, tenant.schema);
    const adapter = kyselyAdapter(db, tenant.schema, {
      client: async (id) => {
        const client = await deps.oidcClients.record(tenant, id);
        return client ? clientMetadata(client) : undefined;
      },
      request: () => Provider.ctx,
      sessionOf: (uid) => this.linkedHere(Provider.ctx, uid),
      sessionDestroyed: async (uid, sessionId) => {
        if (!sessionId) return;
        const ctx = Provider.ctx;
        // A session's identifier changes after each interaction (the row is replaced): the link carries over.
        if (ctx?.oidc?.route === 'resume') {
          (ctx.state as { carriedSession?: { uid: string; id: string } }).carriedSession = { uid, id: sessionId };
          return;
        }
        // Signing out at the provider ends the service session the sign-in opened.
        await deps.auth.logout(tenant, sessionId, actorOf(ctx, sessionId));
      },
    });

    const findAccount = async (ctx: KoaContextWithOIDC, sub: string, token?: { sessionUid?: string; scope?: string }): Promise<Account | undefined> => {
      const uid = token ? token.sessionUid : ctx.oidc.entities.Session?.uid;
      const sessionId = await this.serviceSession(tenant, ctx, uid);
      if (!sessionId) return undefined;
      // The sign-in stands while its service session does: logout, a revocation, a password change or suspension end it here too.
      if (!(await deps.sessions.isLive(tenant, sessionId, sub, await deps.policies.policy(tenant)))) return undefined;
      // A token of scope `openid` (a grant's or userinfo's) is answered with claims: read them while the provider stores its new tokens.
      if (token?.scope?.split(' ').includes('openid')) {
        const claims = this.claims(tenant, sub);
        claims.catch(() => undefined);
        return { accountId: sub, claims: () => claims };
      }
      return { accountId: sub, claims: () => this.claims(tenant, sub) };
    };

    const page = async (ctx: KoaContextWithOIDC, render: (view: OidcPageView) => RenderedPage, targets: readonly string[] = []) => {
      const client = ctx.oidc?.client;
      const view = await this.view(tenant, ctx.get('accept-language') || undefined, client ? (client.clientName ?? client.clientId) : '');
      const rendered = withFormTargets(render(view), targets);
      ctx.set('content-security-policy', rendered.csp);
      ctx.set('cache-control', 'no-store');
      ctx.set('x-frame-options', 'DENY');
      ctx.set('referrer-policy', 'no-referrer');
      ctx.type = 'html';
      ctx.body = rendered.html;
    };

    const mount = mountPathOf(tenant.slug);
    const configuration: Configuration = {
      adapter,
      findAccount: findAccount as Configuration['findAccount'],
      jwks: { keys: keys as never },
      claims: CLAIMS,
      scopes: ['openid', 'profile', 'email', 'roles', 'offline_access'],
      // The claims of the granted scopes are in the ID token too, not only at userinfo.
      conformIdTokenClaims: false,
      pkce: { required: (_ctx, client) => client.clientAuthMethod === 'none' },
      features: {
        devInteractions: { enabled: false },
        // A client revokes its own tokens only; another's is left alone (still answered 200, RFC 7009).
        revocation: { enabled: true, allowedPolicy: (_ctx, client, token) => token.clientId === client.clientId },
        userinfo: { enabled: true },
        rpInitiatedLogout: {
          enabled: true,
          logoutSource: async (ctx) => {
            const xsrf = (ctx.oidc.session?.state as { secret?: string } | undefined)?.secret ?? '';
            await page(ctx, (view) => logoutPage(view, { action: ctx.oidc.urlFor('end_session_confirm'), xsrf }), redirectTargets(ctx.oidc.client?.postLogoutRedirectUris ?? []));
          },
          postLogoutSuccessSource: (ctx) => page(ctx, loggedOutPage),
        },
      },
      interactions: { url: (_ctx, interaction) => `${mount}/interaction/${interaction.uid}` },
      renderError: (ctx, out) => page(ctx, (view) => oauthErrorPage(view, out)),
      // A refresh token for clients allowed the grant that asked for offline access.
      issueRefreshToken: (_ctx, client, code) => client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
      // Browser apps may call the token and userinfo endpoints from the origins they redirect to.
      clientBasedCORS: (_ctx, origin, client) => redirectTargets(client.redirectUris ?? []).includes(origin),
      cookies: {
        names: { session: `oidc_${tenant.slug}_session`, interaction: `oidc_${tenant.slug}_interaction`, resume: `oidc_${tenant.slug}_resume` },
        long: { httpOnly: true, sameSite: 'lax', signed: true },
        short: { httpOnly: true, sameSite: 'lax', signed: true },
        keys: [this.cookieKey],
      },
      ttl: { ...TTL },
      enabledJWA: { idTokenSigningAlgValues: [SIGNING_ALG] },
    };
    const provider = new Provider(issuerOf(deps.publicUrl, tenant.slug), configuration);
    // The route sets the forwarded host and protocol from PUBLIC_URL: every URL matches the issuer.
    provider.proxy = true;
    // A confidential client's secret is stored as its SHA-256: what the client sends is hashed, then compared.
    const compare = provider.Client.prototype.compareClientSecret;
    provider.Client.prototype.compareClientSecret = function (this: InstanceType<typeof provider.Client>, actual: string) {
      return compare.call(this, sha256(actual));
    };
    provider.on('server_error', (_ctx, error) => this.onError(error, tenant));
    return provider;
  }

  /** The claims of a user: the profile, and the roles and permissions access tokens carry (the same rule). */
  private async claims(tenant: TenantContext, userId: string) {
    const [user, data] = await Promise.all([this.deps.users.get(tenant, userId), this.deps.access.data(tenant, userId)]);
    const name = [user.first_name, user.last_name].filter(Boolean).join(' ');
    const present = <T>(value: T | null) => value ?? undefined;
    return {
      sub: user.id,
      name: name || undefined,
      given_name: present(user.first_name),
      family_name: present(user.last_name),
      locale: present(user.locale),
      zoneinfo: present(user.timezone),
      updated_at: Math.floor(new Date(user.updated_at).getTime() / 1000),
      email: user.email,
      email_verified: user.is_email_verified,
      roles: data.roles.map((r) => r.name),
      permissions: [...this.deps.access.allowed(data)],
    };
  }
}

/** Who ended a session at the provider: the user of that session, from the request's address. */
function actorOf(ctx: KoaContextWithOIDC | undefined, sessionId: string): AuditActor {
  const accountId = ctx?.oidc?.session?.accountId;
  return {
    actorUserId: typeof accountId === 'string' ? accountId : null,
    actorType: typeof accountId === 'string' ? 'user' : 'anonymous',
    sessionId,
    ip: ctx?.ip ?? null,
    userAgent: ctx?.get('user-agent') || null,
    requestId: null,
  };
}

