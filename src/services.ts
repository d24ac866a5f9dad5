import type { Kysely } from 'kysely';
import { AccessService } from './access/service.js';
import { ApiKeyService } from './auth/api-keys.js';
import { derivedKey, type JwtKeys } from './auth/keys.js';
import { AuthService } from './auth/service.js';
import { MfaService } from './auth/mfa/service.js';
import { relyingParty } from './auth/mfa/webauthn.js';
import { AuditService } from './audit/service.js';
import { AuditAnalyticsService } from './audit/analytics.js';
import { SessionStore } from './auth/sessions.js';
import type { Cache } from './cache/cache.js';
import { Changes } from './cache/changes.js';
import { LocalCache } from './cache/local.js';
import type { PlatformDatabase } from './db/platform-types.js';
import type { Config } from './config.js';
import { DEFAULT_RETRY_DELAYS_MS, EventDispatcher, type DispatcherOptions } from './events/dispatcher.js';
import { RealtimeHub, type RealtimeOptions } from './events/realtime/hub.js';
import { RealtimeTickets } from './events/realtime/tickets.js';
import { WebhookService } from './events/webhooks/service.js';
import { callerCheck, type CallerCheck } from './auth/tenant-hook.js';
import type { Mailer } from './mail/mailer.js';
import { recordServices } from './records/index.js';
import type { RecordService } from './records/resource.js';
import type { SecretBox } from './records/secrets.js';
import type { FileStorage } from './records/storage.js';
import { PolicyReader } from './settings/policy.js';
import { TenantDirectory } from './tenancy/directory.js';
import { RoleService } from './roles/service.js';
import { SearchService } from './search/service.js';
import { SettingsService } from './settings/service.js';
import { TeamService } from './teams/service.js';
import { UserService } from './users/service.js';
import { UserAccessService } from './users/access.js';
import { OidcClientService } from './oidc/clients.js';
import { OidcKeyService } from './oidc/keys.js';
import { OidcProviders } from './oidc/provider.js';

export interface TenantServicesConfig {
  readonly publicUrl: string;
  /** CORS_ORIGINS: browser front ends whose passkey ceremonies are accepted too. */
  readonly corsOrigins?: readonly string[];
  readonly authRateLimitPerMinute: number;
  /** Events and webhooks (config.ts `events`); tests may shorten the retry schedule. */
  readonly events?: Partial<Config['events']> & { retryDelaysMs?: readonly number[] };
  /** Realtime sockets: the feed is pub/sub when the shared cache is Redis (every instance hears every event), else each instance reads the outboxes. */
  readonly realtime?: Partial<RealtimeOptions>;
}

/** The dispatcher's settings from the configuration (defaults where a test gives none). */
function dispatcherOptions(events: TenantServicesConfig['events'] = {}): DispatcherOptions {
  return {
    pollMs: events.pollMs ?? 1000,
    retryDelaysMs: events.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS,
    disableAfterMs: (events.disableAfterDays ?? 5) * 86_400_000,
    timeoutMs: events.timeoutMs ?? 10_000,
    concurrency: events.concurrency ?? 16,
    allowPrivateNetworks: events.allowPrivateNetworks ?? true,
    retentionMs: (events.retentionDays ?? 7) * 86_400_000,
  };
}

/** The services behind tenant routes, sharing one database, one local cache and one shared cache. */
export interface TenantServices {
  readonly db: Kysely<PlatformDatabase>;
  readonly keys: JwtKeys;
  readonly cache: Cache;
  readonly local: LocalCache;
  /** Where writes report what they changed; the caches listen. */
  readonly changes: Changes;
  readonly directory: TenantDirectory;
  readonly policies: PolicyReader;
  readonly sessions: SessionStore;
  readonly access: AccessService;
  readonly apiKeys: ApiKeyService;
  readonly auth: AuthService;
  /** Second factors: TOTP and recovery codes. */
  readonly mfa: MfaService;
  readonly userAccess: UserAccessService;
  readonly users: UserService;
  readonly roles: RoleService;
  readonly settings: SettingsService;
  readonly teams: TeamService;
  readonly audit: AuditService;
  readonly auditAnalytics: AuditAnalyticsService;
  /** notes, logacalls, tasks, attachments, events, carbon footprints, channel configs, reviews. */
  readonly records: readonly RecordService[];
  /** GET search over users, teams and records. */
  readonly search: SearchService;
  readonly secrets: SecretBox;
  readonly webhooks: WebhookService;
  /** The OpenID Connect provider's clients and signing keys (docs/OIDC.md). */
  readonly oidcClients: OidcClientService;
  readonly oidcKeys: OidcKeyService;
  /** One OpenID Connect provider per tenant, built on demand. */
  readonly oidcProviders: OidcProviders;
  /** Takes events out of the outboxes to endpoints and sockets; started by the runtime (and by tests that need it). */
  readonly dispatcher: EventDispatcher;
  /** This instance's realtime sockets and what they receive. */
  readonly realtime: RealtimeHub;
  readonly realtimeTickets: RealtimeTickets;
  /** Authenticates tenant callers and says whether they still stand (requests and sockets). */
  readonly callers: CallerCheck;
  readonly authRateLimitPerMinute: number;
}

export async function createTenantServices(deps: {
  db: Kysely<PlatformDatabase>;
  keys: JwtKeys;
  cache: Cache;
  mailer: Mailer;
  storage: FileStorage;
  secrets: SecretBox;
  config: TenantServicesConfig;
  onCacheError?: (error: unknown) => void;
  onDispatchError?: (error: unknown) => void;
}): Promise<TenantServices> {
  const { db, keys, cache } = deps;
  const local = new LocalCache(cache, 60_000, 50_000, deps.onCacheError);
  await local.start();
  const changes = new Changes();
  const directory = new TenantDirectory(db, local);
  changes.listen(directory);
  const policies = new PolicyReader(db, local, changes);
  const sessions = new SessionStore(db, local, derivedKey(keys, 'refresh-token-tag'), changes);
  const access = new AccessService(db, local, changes);
  const apiKeys = new ApiKeyService(db, local, access, changes);
  const options = dispatcherOptions(deps.config.events);
  const webhooks = new WebhookService(db, deps.secrets, { allowPrivateNetworks: options.allowPrivateNetworks });
  const callers = callerCheck({ keys, sessions, apiKeys, policies });
  const realtime = new RealtimeHub({
    db,
    access,
    callers,
    cache,
    changes,
    options: { feed: 'outbox', pollMs: options.pollMs, heartbeatMs: 30_000, maxBufferedBytes: 1_048_576, ...deps.config.realtime },
    onError: deps.onDispatchError,
  });
  const dispatcher = new EventDispatcher(db, webhooks, options, { onError: deps.onDispatchError, onEvent: (envelope, schema) => realtime.dispatched(envelope, schema) });
  const records = recordServices({ db, storage: deps.storage, secrets: deps.secrets, policies });
  const mfa = new MfaService({ db, changes, secrets: deps.secrets, sessions, policies, relyingParty: relyingParty(deps.config.publicUrl, deps.config.corsOrigins) });
  const auth = new AuthService({ db, changes, keys, sessions, access, policies, mailer: deps.mailer, mfa, publicUrl: deps.config.publicUrl });
  const oidcClients = new OidcClientService(db, local, changes);
  const oidcKeys = new OidcKeyService(db, deps.secrets);
  const users = new UserService({ db, changes, auth, apiKeys, sessions, policies, mailer: deps.mailer, publicUrl: deps.config.publicUrl });
  const oidcProviders = new OidcProviders({ db, keys, changes, oidcKeys, oidcClients, users, access, sessions, policies, auth, publicUrl: deps.config.publicUrl });
  return {
    db,
    keys,
    cache,
    local,
    changes,
    directory,
    policies,
    sessions,
    access,
    apiKeys,
    auth,
    mfa,
    userAccess: new UserAccessService(db, access, changes),
    roles: new RoleService(db, changes),
    settings: new SettingsService(db, changes),
    teams: new TeamService(db),
    audit: new AuditService(db),
    auditAnalytics: new AuditAnalyticsService(db),
    records,
    search: new SearchService(db, access, records),
    secrets: deps.secrets,
    webhooks,
    oidcClients,
    oidcKeys,
    oidcProviders,
    dispatcher,
    realtime,
    realtimeTickets: new RealtimeTickets(db),
    callers,
    users,
    authRateLimitPerMinute: deps.config.authRateLimitPerMinute,
  };
}
