import { Writable } from 'node:stream';
import { Type } from 'typebox';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { schemaController, validatorCompiler } from '../src/http/compilers.js';
import { bearerToken } from '../src/http/bearer.js';
import { useTenants } from './support/fixture.js';

/** Log lines as written, parsed. */
const lines: Record<string, unknown>[] = [];
const logger = pino(
  { level: 'warn' },
  new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  }),
);

const t = useTenants(['la', 'lb'], { logger });

const get = (url: string, headers: Record<string, string>) => t.app.inject({ method: 'GET', url: `/api/v1/tenants/${url}`, headers });

describe('request logs', () => {
  it('at warn, requests that only log below it write nothing; a warning carries its request id', async () => {
    logger.level = 'warn';
    lines.length = 0;
    expect((await get('la/users', { authorization: `Bearer ${t.tokens.la}`, 'x-request-id': 'quiet-1' })).statusCode).toBe(200);
    expect((await get('lb/users/00000000-0000-4000-8000-000000000000', { authorization: `Bearer ${t.tokens.lb}`, 'x-request-id': 'quiet-2' })).statusCode).toBe(404);
    expect(lines).toEqual([]);

    // An invitation whose mail cannot be sent: created, and a warning naming the request.
    const send = t.mailer.send;
    t.mailer.send = async () => {
      throw new Error('mail server down');
    };
    try {
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/la/users', headers: { authorization: `Bearer ${t.tokens.la}`, 'x-request-id': 'invite-1' }, payload: { email: 'invitee@la.example' } });
      expect(res.statusCode).toBe(201);
    } finally {
      t.mailer.send = send;
    }
    expect(lines).toEqual([expect.objectContaining({ level: 40, reqId: 'invite-1', msg: 'invitation mail failed', err: expect.objectContaining({ message: 'mail server down' }) })]);
  });

  it('at info, every request logs one line when answered, and a refusal its reason, each with its request id', async () => {
    logger.level = 'info';
    lines.length = 0;
    try {
      await get('la/users', { authorization: `Bearer ${t.tokens.la}`, 'x-request-id': 'info-a' });
      await get('lb/users/00000000-0000-4000-8000-000000000000', { authorization: `Bearer ${t.tokens.lb}`, 'x-request-id': 'info-b' });
    } finally {
      logger.level = 'warn';
    }
    expect(lines.map((l) => [l.reqId, l.msg])).toEqual([
      ['info-a', 'request'],
      ['info-b', 'request refused'],
      ['info-b', 'request'],
    ]);
    expect(lines[0]).toMatchObject({ method: 'GET', route: '/api/v1/tenants/:tenant_slug/users', status: 200, tenant: 'la' });
    expect(lines[2]).toMatchObject({ status: 404, tenant: 'lb', path: '/api/v1/tenants/lb/users/00000000-0000-4000-8000-000000000000' });
  });
});

describe('Authorization header', () => {
  it('takes the token of the usual spelling and of other spacings and cases; refuses anything else', async () => {
    expect(bearerToken('Bearer abc.def.ghi')).toBe('abc.def.ghi');
    expect(bearerToken('bearer   abc.def.ghi  ')).toBe('abc.def.ghi');
    expect(bearerToken('BEARER\tabc')).toBe('abc');
    for (const header of [undefined, '', 'Bearer', 'Bearer ', 'Bearer a b', 'Basic abc', 'Bearerabc']) expect(bearerToken(header)).toBeUndefined();

    for (const [slug, token] of [['la', t.tokens.la], ['lb', t.tokens.lb]] as const) {
      expect((await get(`${slug}/users`, { authorization: `bearer  ${token}` })).statusCode).toBe(200);
      const split = await get(`${slug}/users`, { authorization: `Bearer ${token.slice(0, 20)} ${token.slice(20)}` });
      expect(split.statusCode).toBe(401);
      expect(split.headers['content-type']).toContain('application/problem+json');
    }
  });
});

describe('schema compilers', () => {
  it('compile equal response schemas once per context, and serialize only what the schema names', () => {
    const build = schemaController().compilersFactory!.buildSerializer!({}, {});
    const one = build({ method: 'GET', url: '/a', httpStatus: '200', schema: Type.Object({ id: Type.String(), n: Type.Integer() }) });
    const same = build({ method: 'GET', url: '/b', httpStatus: '200', schema: Type.Object({ id: Type.String(), n: Type.Integer() }) });
    const other = build({ method: 'GET', url: '/c', httpStatus: '200', schema: Type.Object({ id: Type.String() }) });
    expect(same).toBe(one);
    expect(other).not.toBe(one);
    expect(JSON.parse(one({ id: 'x', n: 2, secret: 'no' }))).toEqual({ id: 'x', n: 2 });
    expect(JSON.parse(other({ id: 'x', n: 2 }))).toEqual({ id: 'x' });
    // Another context (its own shared schemas) compiles its own.
    const elsewhere = schemaController().compilersFactory!.buildSerializer!({}, {});
    expect(elsewhere({ method: 'GET', url: '/a', httpStatus: '200', schema: Type.Object({ id: Type.String(), n: Type.Integer() }) })).not.toBe(one);
  });

  it('compile equal validators once; bodies are taken as sent, path and query strings coerced', () => {
    const compile = validatorCompiler();
    const schema = () => Type.Object({ n: Type.Integer() });
    const body = compile({ schema: schema(), httpPart: 'body' });
    expect(compile({ schema: schema(), httpPart: 'body' })).toBe(body);
    const query = compile({ schema: schema(), httpPart: 'querystring' });
    expect(query).not.toBe(body);
    expect(body({ n: '2' })).toBe(false);
    const text = { n: '2' };
    expect(query(text)).toBe(true);
    expect(text).toEqual({ n: 2 });
  });
});
