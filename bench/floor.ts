/**
 * The floor: a bare Fastify server, no authentication, doing the same database work as the
 * service's routes on the same pool settings; and the same argon2id verify on the same
 * thread pool. Ratios to it say what the service's own machinery costs.
 */
import Fastify from 'fastify';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { analyticsStatement, resolveAnalyticsQuery, type AnalyticsQuery } from '../src/audit/analytics.js';
import { verifyPassword } from '../src/auth/passwords.js';
import { floorSearchStatement } from './search.js';
import { userById } from '../src/users/view.js';
import { DEFAULT_PREPARED_STATEMENTS } from '../src/config.js';
import { prepared } from '../src/db/database.js';
import type { TenantDatabase } from '../src/db/types.js';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DATABASE_POOL_MAX ?? 10) });
const db = new Kysely<TenantDatabase>({ dialect: new PostgresDialect({ pool }) });
const app = Fastify({ logger: false });
const hash = process.env.FLOOR_HASH ?? '';

// The same SQL as get_user (one live user by primary key, with its role names and version),
// compiled once per schema and sent straight to the pool: the cheapest way to do that work.
// Named and prepared when the service prepares its statements (DATABASE_PREPARED_STATEMENTS > 0).
const prepare = Number(process.env.DATABASE_PREPARED_STATEMENTS ?? DEFAULT_PREPARED_STATEMENTS) > 0;
const statements = new Map<string, { text: string; name?: string }>();
function userStatement(schema: string): { text: string; name?: string } {
  let statement = statements.get(schema);
  if (!statement) {
    const sql = userById(db.withSchema(schema), '00000000-0000-0000-0000-000000000000').compile().sql;
    statement = prepare ? { text: sql, name: prepared(sql) } : { text: sql };
    statements.set(schema, statement);
  }
  return statement;
}
app.get<{ Params: { schema: string; id: string } }>('/floor/:schema/users/:id', async (request) => (await pool.query({ ...userStatement(request.params.schema), values: [request.params.id] })).rows[0]);
// The statement of `GET audit-logs/analytics` for the same query, sent straight to the pool.
app.get<{ Params: { schema: string }; Querystring: AnalyticsQuery }>('/floor/:schema/audit-analytics', async (request) => {
  const { sql, parameters } = analyticsStatement(db.withSchema(request.params.schema), resolveAnalyticsQuery(request.query, new Date())).compile();
  return (await pool.query(sql, [...parameters])).rows;
});
// The statement of `GET search` for a caller who reads every type, compiled once per schema and
// sent straight to the pool (named and prepared when the service prepares its statements).
const searches = new Map<string, ReturnType<typeof floorSearchStatement> & { name?: string }>();
app.get<{ Params: { schema: string }; Querystring: { q: string; page_size?: string } }>('/floor/:schema/search', async (request) => {
  let statement = searches.get(request.params.schema);
  if (!statement) searches.set(request.params.schema, (statement = floorSearchStatement(db, request.params.schema)));
  const name = prepare ? prepared(statement.text) : undefined;
  return (await pool.query({ text: statement.text, ...(name ? { name } : {}), values: statement.values(request.query.q, Number(request.query.page_size ?? 20)) })).rows;
});
app.post('/floor/argon2', async () => ({ ok: await verifyPassword(hash, 'benchmark password 123') }));

await app.listen({ port: 0, host: '127.0.0.1' });
const address = app.server.address();
process.stdout.write(`FLOOR_PORT=${typeof address === 'object' && address ? address.port : 0}\n`);
process.on('SIGTERM', () => void app.close().then(() => pool.end()).then(() => process.exit(0)));
