/**
 * The floor: a bare Fastify server, no authentication, doing the same database work as the
 * service's routes on the same pool settings; and the same argon2id verify on the same
 * thread pool. Ratios to it say what the service's own machinery costs.
 */
import Fastify from 'fastify';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { verifyPassword } from '../src/auth/passwords.js';
import { USER_COLUMNS } from '../src/users/view.js';
import type { TenantDatabase } from '../src/db/types.js';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DATABASE_POOL_MAX ?? 10) });
const db = new Kysely<TenantDatabase>({ dialect: new PostgresDialect({ pool }) });
const app = Fastify({ logger: false });
const hash = process.env.FLOOR_HASH ?? '';

app.get<{ Params: { schema: string; id: string } }>('/floor/:schema/users/:id', async (request) =>
  db.withSchema(request.params.schema).selectFrom('users').select(USER_COLUMNS).where('id', '=', request.params.id).where('deleted_at', 'is', null).executeTakeFirst(),
);
app.post('/floor/argon2', async () => ({ ok: await verifyPassword(hash, 'benchmark password 123') }));

await app.listen({ port: 0, host: '127.0.0.1' });
const address = app.server.address();
process.stdout.write(`FLOOR_PORT=${typeof address === 'object' && address ? address.port : 0}\n`);
process.on('SIGTERM', () => void app.close().then(() => pool.end()).then(() => process.exit(0)));
