import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline/promises';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { loadJwtKeys } from './auth/keys.js';
import { issueSystemToken, SYSTEM_TOKEN_MAX_TTL_SECONDS } from './auth/system-token.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { DomainError, text } from './errors.js';
import type { Runtime } from './runtime.js';
import type { ExportProgress } from './tenancy/archive.js';
import type { MigrateAllProgress, MigrationState } from './tenancy/schema-manager.js';

const USAGE = `Usage: system-service <command>

  schema create <schema>            create or complete a schema with every tenant table
  schema list <schema>              list the tables of a schema
  schema info <schema> [--json]     tables, estimated rows, size, version, status
  schema drop <schema> [--yes]      drop a schema and everything in it (asks to confirm)
  tenants create <slug> [--name NAME] [--admin-email EMAIL --admin-password PASSWORD]
  tenants list [--json]
  tenants migrate (--all | <slug>) [--concurrency N]
  tenants migrate --all [--canary N] [--wave M]   N schemas first (stop if one fails), then waves of M
  tenants migrate --retry-failed    migrate the quarantined schemas again
  tenants migrations [--state S] [--json]   each schema's state: pending, running, done, failed
  tenants export <slug> [-o FILE]   write the tenant's archive (gzip tar; default <slug>-<date>.tar.gz, "-" for stdout)
  tenants import <file> --slug S [--name NAME]   create a tenant from an archive
  tenants fork <slug> <new-slug> [--name NAME]   copy a tenant inside the database (no sessions, keys, webhooks; mail off)
  tenants backup <slug>             back the tenant up now (into BACKUP_DIR)
  tenants backups <slug> [--json]   list the tenant's backups, newest first
  tenants restore <slug> <backup-id>   return the tenant to a backup (its sessions end)
  tenants suspend <slug> | tenants resume <slug>   a suspended tenant answers 403 on its routes
  tenants delete <slug> [--no-backup] [--yes]   remove the tenant (after a final backup unless --no-backup)
  users reset-password <slug> <email>   set a new random password (printed once); ends the user's sessions
  audit verify <slug> [--json]      walk the tenant's audit hash chain; exit 1 at the first broken row
  secrets rotate                    re-encrypt channel secrets under the current CHANNEL_SECRETS_KEY
  token system [--ttl SECONDS] [--subject NAME]   print a short-lived system token (at most 3600 s)

Configuration comes from the same environment variables as the service (see README).`;

class UsageError extends Error {}

const options = {
  json: { type: 'boolean' },
  yes: { type: 'boolean', short: 'y' },
  all: { type: 'boolean' },
  name: { type: 'string' },
  'admin-email': { type: 'string' },
  'admin-password': { type: 'string' },
  concurrency: { type: 'string' },
  canary: { type: 'string' },
  wave: { type: 'string' },
  'retry-failed': { type: 'boolean' },
  state: { type: 'string' },
  ttl: { type: 'string' },
  subject: { type: 'string' },
  output: { type: 'string', short: 'o' },
  slug: { type: 'string' },
  'no-backup': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Flags = ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>['values'];

const out = (line = ''): void => void process.stdout.write(`${line}\n`);

function positiveInt(value: string | undefined, flag: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`--${flag} must be an integer from 1 to ${max}`);
  return n;
}

const MIGRATION_STATES: readonly MigrationState[] = ['pending', 'running', 'done', 'failed'];

/** What `tenants migrate` is asked to migrate: one tenant, or all (pending, or the failed with --retry-failed). */
function migrateTarget(flags: Flags, slug: string | undefined): 'one' | 'all' {
  const all = Boolean(flags.all) || flags['retry-failed'] === true;
  if (all === (slug !== undefined)) throw new UsageError('tenants migrate takes either --all, --retry-failed or one slug');
  if (slug !== undefined && (flags.canary !== undefined || flags.wave !== undefined)) throw new UsageError('--canary and --wave go with --all');
  return all ? 'all' : 'one';
}

function table(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const row of rows) out(row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
}

function progressReporter(): { onProgress: (p: MigrateAllProgress) => void; finish: () => void } {
  if (!process.stdout.isTTY) {
    return {
      onProgress: (p) => out(`[${p.done}/${p.total}] ${p.phase}: ${p.schema_name} ${p.ok ? 'ok' : `FAILED: ${p.error}`}`),
      finish: () => {},
    };
  }
  const width = 30;
  return {
    onProgress: (p) => {
      const filled = Math.round((p.done / p.total) * width);
      const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
      if (!p.ok) process.stdout.write(`\r\x1b[K${p.schema_name} FAILED: ${p.error}\n`);
      process.stdout.write(`\r\x1b[K[${bar}] ${p.done}/${p.total} ${p.phase}: ${p.schema_name}`);
    },
    finish: () => process.stdout.write('\n'),
  };
}

async function confirmDrop(schema: string, flags: Flags): Promise<boolean> {
  if (flags.yes) return true;
  if (!process.stdin.isTTY) throw new UsageError(`refusing to drop ${schema} without --yes (no terminal to confirm on)`);
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  const answer = await rl.question(`This drops schema ${schema} and all of its data. Type the schema name to confirm: `);
  rl.close();
  return answer.trim() === schema;
}

async function schemaCommand(runtime: Runtime, action: string | undefined, schema: string | undefined, flags: Flags): Promise<void> {
  if (!schema) throw new UsageError(`schema ${action ?? ''} needs a schema name`);
  switch (action) {
    case 'create': {
      const result = await runtime.schemas.initializeTenantSchema(null, schema);
      out(`${result.schema_name}: version ${result.schema_version}, ${result.tables.length} tables (${result.created_tables.length} created) in ${result.duration_ms} ms`);
      return;
    }
    case 'list':
      for (const name of await runtime.schemas.listTablesInSchema(schema)) out(name);
      return;
    case 'info': {
      const info = await runtime.schemas.getSchemaInfo(schema);
      if (!info.exists && info.status === 'absent') throw new DomainError('schema.not_found', text('detail.schema_missing', { schema }));
      if (flags.json) return out(JSON.stringify(info, null, 2));
      out(`schema   ${info.schema_name}${info.exists ? '' : ' (does not exist)'}`);
      out(`status   ${info.status}, version ${info.version} of ${info.latest_version}`);
      if (info.last_error) out(`error    ${info.last_error}`);
      out(`size     ${info.total_size_bytes} bytes in ${info.tables.length} tables`);
      if (info.tables.length) table([['table', 'rows (est.)', 'bytes'], ...info.tables.map((t) => [t.name, String(t.estimated_rows), String(t.size_bytes)])]);
      return;
    }
    case 'drop': {
      if (!(await runtime.schemas.exists(schema))) return out(`${schema} does not exist: nothing to drop`);
      const owner = (await runtime.tenants.list({ page: 1, page_size: 100_000 })).items.find((t) => t.schema_name === schema);
      if (owner) out(`${schema} holds the data of tenant ${owner.slug} (${owner.id}); the tenant stays registered and 'tenants migrate' would recreate an empty schema.`);
      if (!(await confirmDrop(schema, flags))) return out('not dropped');
      out((await runtime.schemas.dropSchema(schema)) ? `dropped ${schema}` : `${schema} did not exist`);
      return;
    }
    default:
      throw new UsageError(`unknown schema command: ${action ?? '(none)'}`);
  }
}

/** The CLI as the tenant's audit records it. */
const CLI_ACTOR = { actorUserId: null, actorType: 'system', sessionId: null, ip: null, userAgent: 'system-service cli', requestId: null } as const;

/** An operator's way back into a tenant whose admin password is lost (the demo's, printed once). */
async function usersResetPassword(runtime: Runtime, slug: string, email: string): Promise<void> {
  const tenant = await runtime.services.directory.resolve(slug);
  const password = await runtime.services.auth.resetPasswordByOperator(tenant, email, CLI_ACTOR);
  out(`New password for ${email} in ${slug} (shown once; the user's sessions ended):`);
  out(password);
}

async function tenantsCommand(runtime: Runtime, action: string | undefined, arg: string | undefined, extra: string | undefined, flags: Flags): Promise<void> {
  switch (action) {
    case 'create': {
      if (!arg) throw new UsageError('tenants create needs a slug');
      const email = flags['admin-email'];
      const password = flags['admin-password'];
      if ((email === undefined) !== (password === undefined)) throw new UsageError('--admin-email and --admin-password go together');
      const tenant = await runtime.tenants.create({ slug: arg, name: flags.name, admin: email && password ? { email, password } : undefined });
      out(`created tenant ${tenant.slug} (${tenant.id}), schema ${tenant.schema_name} ${tenant.status} at version ${tenant.schema_version}`);
      if (tenant.admin_user_id) out(`admin user ${email} (${tenant.admin_user_id})`);
      return;
    }
    case 'list': {
      const page = await runtime.tenants.list({ page: 1, page_size: 100_000 });
      if (flags.json) return out(JSON.stringify(page.items, null, 2));
      if (page.items.length === 0) return out('no tenants');
      table([['slug', 'id', 'schema', 'status', 'version'], ...page.items.map((t) => [t.slug, t.id, t.schema_name, t.status, String(t.schema_version)])]);
      return;
    }
    case 'migrate': {
      if (migrateTarget(flags, arg) === 'one') {
        const result = await runtime.tenants.migrate(arg!);
        out(`${result.schema_name}: version ${result.from_version} -> ${result.schema_version}${result.applied.length ? ` (applied ${result.applied.join(', ')})` : ' (up to date)'}`);
        return;
      }
      const progress = progressReporter();
      const result = await runtime.tenants.migrateAll({
        concurrency: positiveInt(flags.concurrency, 'concurrency', runtime.config.migrationConcurrency, 64),
        canary: flags.canary === undefined ? undefined : positiveInt(flags.canary, 'canary', 0, 1_000_000),
        wave: flags.wave === undefined ? undefined : positiveInt(flags.wave, 'wave', 0, 1_000_000),
        retryFailed: flags['retry-failed'] === true,
        onProgress: progress.onProgress,
      });
      progress.finish();
      out(`${result.total} tenant schemas (${result.spares} of them spares): ${result.migrated} migrated, ${result.up_to_date} already up to date, ${result.failed.length} failed (${result.duration_ms} ms)`);
      for (const f of result.failed) out(`  ${f.schema_name}: ${f.error} (quarantined: it answers 503 until 'tenants migrate --retry-failed')`);
      if (result.stopped_after) out(`stopped after the failed canary: ${result.not_started} schemas not started (fix the migration, then run again)`);
      if (result.failed.length > 0) process.exitCode = 1;
      return;
    }
    case 'migrations': {
      const state = flags.state;
      if (state !== undefined && !MIGRATION_STATES.includes(state as MigrationState)) throw new UsageError(`--state must be one of ${MIGRATION_STATES.join(', ')}`);
      const states = await runtime.tenants.migrationStates({ state: state as MigrationState | undefined, page: 1, page_size: 100_000 });
      if (flags.json) return out(JSON.stringify(states, null, 2));
      const { summary } = states;
      out(`latest version ${states.latest_version}: ${summary.done} done, ${summary.pending} pending, ${summary.running} running, ${summary.failed} failed`);
      if (states.items.length === 0) return;
      table([['schema', 'tenant', 'version', 'state', 'error'], ...states.items.map((i) => [i.schema_name, i.slug ?? (i.spare ? '(spare)' : ''), String(i.version), i.state, i.last_error ?? ''])]);
      return;
    }
    default:
      return lifecycleCommand(runtime, action, arg, extra, flags);
  }
}

const megabytes = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** Rows and bytes as they go: one rewritten line on a terminal (stderr, so that stdout can carry an archive), nothing otherwise. */
function rowsProgress(verb: string): { onProgress: (p: ExportProgress) => void; finish: () => void } {
  if (!process.stderr.isTTY) return { onProgress: () => {}, finish: () => {} };
  let rows = 0;
  let bytes = 0;
  const done = new Map<string, number>();
  return {
    onProgress: (p) => {
      done.set(p.table, p.rows);
      rows = [...done.values()].reduce((a, b) => a + b, 0);
      bytes += p.bytes;
      process.stderr.write(`\r\x1b[K${verb}: ${p.table}, ${rows} rows${bytes ? `, ${megabytes(bytes)}` : ''}`);
    },
    finish: () => process.stderr.write(done.size ? '\n' : ''),
  };
}

async function lifecycleCommand(runtime: Runtime, action: string | undefined, arg: string | undefined, extra: string | undefined, flags: Flags): Promise<void> {
  const { lifecycle } = runtime;
  const { counting } = await import('./tenancy/lifecycle.js');
  const needs = (what: string) => {
    if (!arg) throw new UsageError(`tenants ${action} needs ${what}`);
    return arg;
  };
  switch (action) {
    case 'export': {
      const slug = needs('a slug');
      const progress = rowsProgress('export');
      const prepared = await lifecycle.export(slug, progress.onProgress);
      progress.finish();
      const target = flags.output ?? `${prepared.manifest.tenant.slug}-${prepared.manifest.created_at.slice(0, 10)}.tar.gz`;
      let bytes = 0;
      const sink = target === '-' ? process.stdout : createWriteStream(target, { mode: 0o600 });
      await pipeline(prepared.stream(), counting((n) => (bytes = n)), sink);
      const rows = Object.values(prepared.manifest.tables).reduce((a, t) => a + t.rows, 0);
      process.stderr.write(`exported ${slug}: ${rows} rows in ${Object.keys(prepared.manifest.tables).length} tables, ${Object.keys(prepared.manifest.attachments).length} files, ${megabytes(bytes)}${target === '-' ? '' : ` to ${target}`}\n`);
      return;
    }
    case 'import': {
      const file = needs('an archive file');
      if (!flags.slug) throw new UsageError('tenants import needs --slug');
      const size = (await stat(file).catch(() => undefined))?.size;
      if (size === undefined) throw new UsageError(`cannot read ${file}`);
      const progress = rowsProgress('import');
      const tenant = await lifecycle.import(createReadStream(file), { slug: flags.slug, name: flags.name }, { onProgress: progress.onProgress, actor: CLI_ACTOR });
      progress.finish();
      out(`imported ${file} (${megabytes(size)}) as tenant ${tenant.slug} (${tenant.id}), schema ${tenant.schema_name} at version ${tenant.schema_version}`);
      return;
    }
    case 'fork': {
      const source = needs('a slug and a new slug');
      if (!extra) throw new UsageError('tenants fork needs a slug and a new slug');
      const started = Date.now();
      const fork = await lifecycle.fork(source, { slug: extra, name: flags.name }, CLI_ACTOR);
      out(`forked ${source} into ${fork.slug} (${fork.id}) in ${Date.now() - started} ms: no sessions, API keys or webhooks; channels and mail off until an admin turns them on`);
      return;
    }
    case 'backup': {
      const backup = await lifecycle.backup(needs('a slug'));
      out(`backup ${backup.id} of ${backup.tenant_slug}: ${megabytes(backup.size_bytes)}, sha256 ${backup.sha256}`);
      return;
    }
    case 'backups': {
      const list = await lifecycle.backups(needs('a slug'));
      if (flags.json) return out(JSON.stringify(list, null, 2));
      if (list.length === 0) return out('no backups');
      table([['id', 'created', 'kind', 'size', 'version'], ...list.map((b) => [b.id, b.created_at.toISOString(), b.kind, megabytes(b.size_bytes), String(b.schema_version)])]);
      return;
    }
    case 'restore': {
      const slug = needs('a slug and a backup id');
      if (!extra) throw new UsageError('tenants restore needs a slug and a backup id');
      const tenant = await lifecycle.restore(slug, extra, CLI_ACTOR);
      out(`restored ${tenant.slug} to backup ${extra}; its sessions ended`);
      return;
    }
    case 'suspend':
    case 'resume': {
      const tenant = await lifecycle.setStatus(needs('a slug'), action === 'suspend' ? 'suspended' : 'active', CLI_ACTOR);
      out(`${tenant.slug} is ${tenant.tenant_status}`);
      return;
    }
    case 'delete': {
      const slug = needs('a slug');
      if (!flags.yes) {
        if (!process.stdin.isTTY) throw new UsageError(`refusing to delete ${slug} without --yes (no terminal to confirm on)`);
        const rl = createInterface({ input: process.stdin, output: process.stdout });
        const answer = await rl.question(`This deletes tenant ${slug}${flags['no-backup'] ? ' without a final backup' : ' (after a final backup)'}. Type the slug to confirm: `);
        rl.close();
        if (answer.trim() !== slug) return out('not deleted');
      }
      const result = await lifecycle.delete(slug, { backup: !flags['no-backup'] });
      out(`deleted ${result.slug} (${result.id})${result.backup ? `; final backup ${result.backup.id} (${megabytes(result.backup.size_bytes)})` : ''}`);
      return;
    }
    default:
      throw new UsageError(`unknown tenants command: ${action ?? '(none)'}`);
  }
}

async function secretsCommand(runtime: Runtime, action: string | undefined): Promise<void> {
  if (action !== 'rotate') throw new UsageError(`unknown secrets command: ${action ?? '(none)'}`);
  const { rotateChannelSecrets, rotationTargets } = await import('./records/rotate.js');
  const started = Date.now();
  const box = runtime.services.secrets;
  const targets = await rotationTargets(runtime.database.db);
  out(`re-encrypting channel secrets under key ${box.currentKeyId} in ${targets.ready.length} tenant schemas`);
  const result = await rotateChannelSecrets(runtime.database.db, box, targets.ready, (p) =>
    out(`[${p.done}/${p.total}] ${p.schema} ${p.ok ? `ok, ${p.rotated} re-encrypted` : `FAILED: ${p.error}`}`),
  );
  out(`${result.schemas} tenant schemas: ${result.rotated} secrets re-encrypted, ${result.failed.length} failed (${Date.now() - started} ms)`);
  for (const f of result.failed) out(`  ${f.schema}: ${f.error}`);
  // Not ready (a failed migration, say) yet holding channel configs: rotated by a later run, once migrated.
  for (const s of targets.notReady) out(`  ${s.schema}: skipped, schema is ${s.status} (migrate it, then run secrets rotate again)`);
  if (result.failed.length > 0 || targets.notReady.length > 0) {
    out('keep the previous keys in CHANNEL_SECRETS_PREVIOUS_KEYS until a run ends with no failures');
    process.exitCode = 1;
  }
}

/** `audit verify`: exit status 1 when the chain is broken, so a cron job can alert on it. */
async function auditVerify(runtime: Runtime, slug: string, flags: Flags): Promise<void> {
  const tenant = await runtime.services.directory.resolve(slug);
  const progress = process.stderr.isTTY ? (checked: number) => process.stderr.write(`\rchecked ${checked} rows`) : undefined;
  const report = await runtime.services.audit.verify(tenant, progress);
  if (progress) process.stderr.write('\n');
  if (flags.json) out(JSON.stringify(report, null, 2));
  else if (report.valid) out(`${slug}: the audit chain is intact: ${report.checked} rows, head seq ${report.head?.seq} hash ${report.head?.hash}`);
  else out(`${slug}: the audit chain is BROKEN after ${report.checked} intact rows, at ${report.first_invalid_id ? `row ${report.first_invalid_id} (seq ${report.first_invalid_seq})` : 'its end'}: ${report.reason}`);
  if (!report.valid) process.exitCode = 1;
}

async function tokenCommand(config: Config, kind: string | undefined, flags: Flags): Promise<void> {
  if (kind !== 'system') throw new UsageError('token takes: system');
  // Verifiers refuse a system token that lives longer than an hour (SPEC §10).
  const ttlSeconds = positiveInt(flags.ttl, 'ttl', SYSTEM_TOKEN_MAX_TTL_SECONDS, SYSTEM_TOKEN_MAX_TTL_SECONDS);
  out(await issueSystemToken(loadJwtKeys(config), { subject: flags.subject ?? 'cli', ttlSeconds }));
}

async function run(argv: string[]): Promise<void> {
  const { values: flags, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  const [group, action, arg, extra, ...rest] = positionals;
  if (flags.help) return out(USAGE);
  if (!group) throw new UsageError('a command is required');
  if (group === 'audit' && arg === undefined) throw new UsageError('audit verify needs a tenant slug');
  const twoArgs = group === 'users' || (group === 'tenants' && (action === 'fork' || action === 'restore'));
  const unexpected = twoArgs ? rest[0] : extra;
  if (unexpected !== undefined) throw new UsageError(`unexpected argument: ${unexpected}`);
  if (group === 'users' && (arg === undefined || extra === undefined)) throw new UsageError('users reset-password needs a tenant slug and an email');
  const config = loadConfig();
  if (group === 'token') return tokenCommand(config, action, flags);
  const actions: Record<string, readonly string[]> = { schema: ['create', 'list', 'info', 'drop'], tenants: ['create', 'list', 'migrate', 'migrations', 'export', 'import', 'fork', 'backup', 'backups', 'restore', 'suspend', 'resume', 'delete'], users: ['reset-password'], secrets: ['rotate'], audit: ['verify'] };
  if (!Object.hasOwn(actions, group)) throw new UsageError(`unknown command: ${group}`);
  if (!actions[group]!.includes(action ?? '')) throw new UsageError(`unknown ${group} command: ${action ?? '(none)'}`);
  if (group === 'secrets' && arg !== undefined) throw new UsageError(`unexpected argument: ${arg}`);
  if (group === 'tenants' && action === 'migrate') migrateTarget(flags, arg);
  // Loaded only for commands that need the database: usage errors and tokens answer at once.
  const { openRuntime } = await import('./runtime.js');
  const runtime = await openRuntime(config, pino({ level: process.env.LOG_LEVEL ?? 'warn' }, pino.destination(2)));
  try {
    if (group === 'schema') await schemaCommand(runtime, action, arg, flags);
    else if (group === 'secrets') await secretsCommand(runtime, action);
    else if (group === 'users') await usersResetPassword(runtime, arg!, extra!);
    else if (group === 'audit') await auditVerify(runtime, arg!, flags);
    else await tenantsCommand(runtime, action, arg, extra, flags);
  } finally {
    await runtime.close();
  }
}

// `system-service tenants list | head` closes the pipe early: that is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

try {
  await run(process.argv.slice(2));
} catch (error) {
  if (error instanceof UsageError || (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))) {
    process.stderr.write(`${error.message}\n\n${USAGE}\n`);
    process.exitCode = 2;
  } else if (error instanceof DomainError || error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}
