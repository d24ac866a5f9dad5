import type { Kysely } from 'kysely';
import { AccessService } from './access/service.js';
import { ApiKeyService } from './auth/api-keys.js';
import { derivedKey, type JwtKeys } from './auth/keys.js';
import { AuthService } from './auth/service.js';
import { AuditService } from './audit/service.js';
import { SessionStore } from './auth/sessions.js';
import type { Cache } from './cache/cache.js';
import { Changes } from './cache/changes.js';
import { LocalCache } from './cache/local.js';
import type { PlatformDatabase } from './db/platform-types.js';
import type { Mailer } from './mail/mailer.js';
import { recordServices } from './records/index.js';
import type { RecordService } from './records/resource.js';
import type { SecretBox } from './records/secrets.js';
import type { FileStorage } from './records/storage.js';
import { PolicyReader } from './settings/policy.js';
import { TenantDirectory } from './tenancy/directory.js';
import { RoleService } from './roles/service.js';
import { SettingsService } from './settings/service.js';
import { TeamService } from './teams/service.js';
import { UserService } from './users/service.js';
import { UserAccessService } from './users/access.js';

export interface TenantServicesConfig {
  readonly publicUrl: string;
  readonly authRateLimitPerMinute: number;
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
  readonly userAccess: UserAccessService;
  readonly users: UserService;
  readonly roles: RoleService;
  readonly settings: SettingsService;
  readonly teams: TeamService;
  readonly audit: AuditService;
  /** notes, logacalls, tasks, attachments, events, carbon footprints, channel configs, reviews. */
  readonly records: readonly RecordService[];
  readonly secrets: SecretBox;
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
}): Promise<TenantServices> {
  const { db, keys, cache } = deps;
  const local = new LocalCache(cache, 60_000, 50_000, deps.onCacheError);
  await local.start();
  const changes = new Changes();
  const directory = new TenantDirectory(db, local);
  const policies = new PolicyReader(db, local, changes);
  const sessions = new SessionStore(db, local, derivedKey(keys, 'refresh-token-tag'), changes);
  const access = new AccessService(db, local, changes);
  const apiKeys = new ApiKeyService(db, local, access, changes);
  const auth = new AuthService({ db, changes, keys, sessions, access, policies, mailer: deps.mailer, publicUrl: deps.config.publicUrl });
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
    userAccess: new UserAccessService(db, access, changes),
    roles: new RoleService(db, changes),
    settings: new SettingsService(db, changes),
    teams: new TeamService(db),
    audit: new AuditService(db),
    records: recordServices({ db, storage: deps.storage, secrets: deps.secrets, policies }),
    secrets: deps.secrets,
    users: new UserService({ db, changes, auth, apiKeys, sessions, policies, mailer: deps.mailer, publicUrl: deps.config.publicUrl }),
    authRateLimitPerMinute: deps.config.authRateLimitPerMinute,
  };
}
