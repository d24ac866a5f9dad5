/**
 * The permission catalogue: `<resource>.<action>`, `<resource>.*` and `*`.
 * Seeded into every tenant's `permissions` table; the default roles' grants below are
 * documented in docs/PERMISSIONS.md.
 */
export const CORE_RESOURCES = ['users', 'roles', 'permissions', 'teams', 'settings', 'audit_logs', 'sessions', 'api_keys', 'webhooks', 'oidc_clients'] as const;
export const EXTENDED_RESOURCES = [
  'notes',
  'logacalls',
  'tasks',
  'attachments',
  'events',
  'carbon_footprints',
  'channel_configs',
  'reviews',
] as const;
export const RESOURCES = [...CORE_RESOURCES, ...EXTENDED_RESOURCES] as const;
export type Resource = (typeof RESOURCES)[number];

export const ACTIONS = ['read', 'create', 'update', 'delete'] as const;
export type Action = (typeof ACTIONS)[number];

/** Every concrete permission (`<resource>.<action>`), the set "effective permissions" range over. */
export const CONCRETE_PERMISSIONS: readonly string[] = RESOURCES.flatMap((r) => ACTIONS.map((a) => `${r}.${a}`));

export interface PermissionDefinition {
  readonly name: string;
  readonly resource: string;
  readonly action: string;
  readonly description: string;
}

const ACTION_VERB: Record<Action, string> = { read: 'Read', create: 'Create', update: 'Update', delete: 'Delete' };

function label(resource: string): string {
  return resource.replace(/_/g, ' ');
}

export const PERMISSION_CATALOGUE: readonly PermissionDefinition[] = [
  { name: '*', resource: '*', action: '*', description: 'Every permission on every resource' },
  ...RESOURCES.flatMap((resource) => [
    { name: `${resource}.*`, resource, action: '*', description: `Every action on ${label(resource)}` },
    ...ACTIONS.map((action) => ({
      name: `${resource}.${action}`,
      resource,
      action,
      description: `${ACTION_VERB[action]} ${label(resource)}`,
    })),
  ]),
];

export interface RoleDefinition {
  readonly name: string;
  readonly description: string;
  readonly priority: number;
  readonly grants: readonly string[];
}

const reads = (resources: readonly string[]) => resources.map((r) => `${r}.read`);
const writes = (resources: readonly string[]) => resources.flatMap((r) => [`${r}.create`, `${r}.update`]);
/**
 * Webhook endpoints send every change out of the tenant, and OpenID clients decide which
 * applications may sign the tenant's users in: admins only by default.
 */
const ADMIN_ONLY: readonly string[] = ['webhooks', 'oidc_clients'];
/** What a viewer may read: everything but the security-sensitive trails and credentials. */
const VIEWER_READABLE = RESOURCES.filter((r) => !['audit_logs', 'sessions', 'api_keys', ...ADMIN_ONLY].includes(r));

export const DEFAULT_ROLES: readonly RoleDefinition[] = [
  { name: 'admin', description: 'Full access to the tenant', priority: 100, grants: ['*'] },
  {
    name: 'manager',
    description: 'Reads everything but webhooks and OpenID clients; creates and updates users, teams and records',
    priority: 75,
    grants: [...reads(RESOURCES.filter((r) => !ADMIN_ONLY.includes(r))), ...writes(['users', 'teams', ...EXTENDED_RESOURCES])],
  },
  {
    name: 'user',
    description: 'Reads users and teams; reads, creates and updates records',
    priority: 50,
    // Not channel configs: their fields hold mail passwords and webhook URLs.
    grants: [...reads(['users', 'teams', ...EXTENDED_RESOURCES]), ...writes(EXTENDED_RESOURCES.filter((r) => r !== 'channel_configs'))],
  },
  { name: 'viewer', description: 'Read-only access, without audit logs, sessions, API keys, webhooks or OpenID clients', priority: 10, grants: reads(VIEWER_READABLE) },
];
