import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { gunzipSync } from 'node:zlib';
import { sql } from 'kysely';
import tar from 'tar-stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { tenantDb } from '../src/db/database.js';
import { queryWords, snippetHtml, wordSimilarity } from '../src/search/highlight.js';
import { tsqueryOf } from '../src/search/query.js';
import { useTenants } from './support/fixture.js';
import { caller } from './support/records.js';
import { bearer, login, seedUser } from './support/tenants.js';

/*
 * GET search: full-text and trigram search over users, teams and records, in two tenants: typos,
 * prefixes, words of a note, an exact email first, only the caller's tenant and readable types,
 * deleted rows and rows of deleted targets left out, safe snippets, the language setting.
 */

const t = useTenants(['sa', 'sb']);
let call: ReturnType<typeof caller>;
const ids: Record<string, string> = {};

interface Hit {
  type: string;
  id: string;
  title: string;
  snippet: string;
  score: number;
}

async function search(slug: string, params: Record<string, string | number>, token: string | undefined = t.tokens[slug as 'sa' | 'sb'], headers: Record<string, string> = {}) {
  const query = new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)])).toString();
  return t.app.inject({ method: 'GET', url: `/api/v1/tenants/${slug}/search?${query}`, headers: { ...(token ? bearer(token) : {}), ...headers } });
}

async function hits(slug: string, q: string, extra: Record<string, string | number> = {}, token?: string): Promise<{ items: Hit[]; total: number }> {
  const res = await search(slug, { q, ...extra }, token);
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
}

async function created(slug: 'sa' | 'sb', path: string, body: Record<string, unknown>): Promise<string> {
  const res = await call(t.tokens[slug], 'POST', `${slug}/${path}`, body);
  expect(res.statusCode, res.body).toBe(201);
  return res.json().id as string;
}

beforeAll(async () => {
  call = caller(t.app);
  ids.jonathan = await created('sa', 'users', { email: 'jonathan.smyth@sa.example', username: 'jsmyth', first_name: 'Jonathan', last_name: 'Smyth' });
  ids.jonas = await created('sa', 'users', { email: 'jonas.berg@sa.example', first_name: 'Jonas', last_name: 'Berg' });
  ids.ann = await created('sa', 'users', { email: 'ann@sa.example', first_name: 'Ann', last_name: 'Lee' });
  ids.anna = await created('sa', 'users', { email: 'anna@sa.example', first_name: 'Anna', last_name: 'Ann' });
  ids.team = await created('sa', 'teams', { name: 'Photosynthesis research', description: 'Plants and light' });
  ids.note = await created('sa', 'notes', { title: 'Workshop', content: 'The photosynthesis workshop moved to Thursday; bring the ann@sa.example slides.' });
  ids.task = await created('sa', 'tasks', { title: 'Order chlorophyll samples' });
  ids.event = await created('sa', 'events', { title: 'Greenhouse tour', location: 'Building 7', starts_at: '2026-04-01T09:00:00Z', ends_at: '2026-04-01T10:00:00Z' });
  ids.call = await created('sa', 'logacalls', { direction: 'inbound', phone_number: '+14155550123', called_at: '2026-03-01T10:00:00Z', notes: 'Asked about the greenhouse' });
  ids.review = await created('sa', 'reviews', { rating: 4, title: 'Lovely greenhouse', body: 'Warm and bright' });
  // The other tenant holds a Jonathan Smyth and a word of its own.
  ids.otherJonathan = await created('sb', 'users', { email: 'jonathan.smyth@sb.example', first_name: 'Jonathan', last_name: 'Smyth' });
  ids.otherNote = await created('sb', 'notes', { title: 'Travel', content: 'Flights to Zanzibar and the photosynthesis conference' });
});

describe('GET search', () => {
  it('finds "Jonathan Smyth" for `jonathon smith` (typos in both names), with the names marked', async () => {
    const { items } = await hits('sa', 'jonathon smith');
    const jonathan = items.find((h) => h.id === ids.jonathan);
    expect(jonathan).toMatchObject({ type: 'users', title: 'Jonathan Smyth' });
    expect(jonathan!.snippet).toContain('<mark>Jonathan</mark> <mark>Smyth</mark>');
    expect(items[0]!.id).toBe(ids.jonathan);
  });

  it('matches the last word as a prefix: a first name as it is typed, an email and a username prefix', async () => {
    for (const q of ['jon', 'jonathan.sm', 'jsmy', 'Jonathan Smy']) {
      const { items } = await hits('sa', q);
      expect(items.map((h) => h.id), q).toContain(ids.jonathan);
    }
    // "jon" also finds Jonas (a prefix), but a whole word that is no prefix does not match others.
    expect((await hits('sa', 'jon')).items.map((h) => h.id)).toContain(ids.jonas);
    expect((await hits('sa', 'berg', { types: 'users' })).items.map((h) => h.id)).toEqual([ids.jonas]);
  });

  it('finds a note by a word in its content, as soon as it is written, with the word marked', async () => {
    const { items } = await hits('sa', 'photosynthesis');
    const note = items.find((h) => h.id === ids.note)!;
    expect(note).toMatchObject({ type: 'notes', title: 'Workshop' });
    expect(note.snippet).toContain('<mark>photosynthesis</mark>');
    // The team of the same name is found too (its name weighs more than a note's text).
    expect(items.map((h) => h.type)).toEqual(expect.arrayContaining(['teams', 'notes']));
    expect(items[0]!.id).toBe(ids.team);
    // A change is searchable in the same instant.
    const changed = await call(t.tokens.sa, 'PATCH', `sa/notes/${ids.note}`, { content: 'The chemosynthesis workshop moved to Friday.' });
    expect(changed.statusCode, changed.body).toBe(200);
    expect((await hits('sa', 'photosynthesis')).items.map((h) => h.id)).not.toContain(ids.note);
    // (The team is close by trigrams, "…synthesis", and comes after the note that holds the word.)
    expect((await hits('sa', 'chemosynthesis')).items.map((h) => h.id)).toEqual([ids.note, ids.team]);
  });

  it('finds every type by its words: task, event (by location), call log (by its number and its notes), review', async () => {
    expect((await hits('sa', 'chlorophyll')).items.map((h) => [h.type, h.id])).toEqual([['tasks', ids.task]]);
    expect((await hits('sa', 'building 7')).items.map((h) => h.id)).toContain(ids.event);
    expect((await hits('sa', '4155550123')).items.map((h) => h.id)).toContain(ids.call);
    const greenhouse = (await hits('sa', 'greenhouse')).items;
    expect(greenhouse.map((h) => h.type).sort()).toEqual(['events', 'logacalls', 'reviews']);
    expect(greenhouse.find((h) => h.type === 'logacalls')!.title).toBe('+14155550123 (inbound)');
  });

  it('ranks an exact email match first, above a prefix of it and a note that mentions it', async () => {
    const { items } = await hits('sa', 'ann@sa.example');
    expect(items[0]).toMatchObject({ type: 'users', id: ids.ann });
    expect(items[0]!.score).toBeGreaterThanOrEqual(2);
    for (const other of items.slice(1)) expect(other.score).toBeLessThan(2);
    // The username too, whatever its case.
    expect((await hits('sa', 'JSMYTH')).items[0]!.id).toBe(ids.jonathan);
  });

  it("never returns another tenant's row", async () => {
    expect(await hits('sa', 'zanzibar')).toEqual({ items: [], total: 0, page: 1, page_size: 20 });
    expect((await hits('sb', 'zanzibar')).items.map((h) => h.id)).toEqual([ids.otherNote]);
    const found = [...(await hits('sa', 'jonathon smith')).items, ...(await hits('sa', 'photosynthesis')).items].map((h) => h.id);
    expect(found).not.toContain(ids.otherJonathan);
    expect(found).not.toContain(ids.otherNote);
    expect((await hits('sb', 'jonathon smith')).items.map((h) => h.id)).toEqual([ids.otherJonathan]);
    // A token of one tenant does not search the other.
    expect((await search('sb', { q: 'jonathan' }, t.tokens.sa)).statusCode).toBe(403);
  });

  it('searches only the types the caller may read: the others are left out when types is omitted, and a 403 naming types when asked for', async () => {
    const member = await seedUser(t, 'sa', { email: 'member@sa.example', roles: ['user'] });
    const denied = await call(t.tokens.sa, 'PUT', `sa/users/${member.id}/permissions/notes.read`, { effect: 'deny' });
    expect(denied.statusCode, denied.body).toBe(200);
    const token = (await login(t.app, 'sa', 'member@sa.example')).access_token;
    expect((await hits('sa', 'workshop')).items.map((h) => h.id)).toContain(ids.note);
    expect((await hits('sa', 'workshop', {}, token)).items.map((h) => h.type)).not.toContain('notes');
    expect((await hits('sa', 'photosynthesis', {}, token)).items.map((h) => h.id)).toEqual([ids.team]);
    const refused = await search('sa', { q: 'workshop', types: 'users,notes' }, token);
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toMatchObject({ code: 'permission.denied', errors: [{ field: 'querystring.types', reason: expect.stringContaining('notes.read') }] });
    expect((await hits('sa', 'jonathan', { types: 'users' }, token)).items.map((h) => h.type)).toEqual(['users']);
    // The refusal is audited like a route's.
    const audited = await tenantDb(t.db.database.db, 'tenant_sa').selectFrom('audit_logs').select('metadata').where('action', '=', 'auth.permission_denied').where('actor_user_id', '=', member.id).execute();
    expect(audited.map((a) => a.metadata)).toContainEqual(expect.objectContaining({ permission: 'notes.read', route: 'search' }));
  });

  it('bounds an API key by its scope, and refuses a caller who may read no searchable type', async () => {
    const key = async (permissions: string[]) => {
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/sa/me/api-keys', headers: bearer(t.tokens.sa), payload: { name: permissions.join(' '), permissions } });
      expect(res.statusCode, res.body).toBe(201);
      return res.json().key as string;
    };
    const usersOnly = await key(['users.read']);
    const res = await search('sa', { q: 'ann' }, '', { 'x-api-key': usersOnly });
    expect(res.statusCode, res.body).toBe(200);
    expect(new Set(res.json().items.map((h: Hit) => h.type))).toEqual(new Set(['users']));
    expect((await search('sa', { q: 'ann', types: 'notes' }, '', { 'x-api-key': usersOnly })).statusCode).toBe(403);
    const rolesOnly = await key(['roles.read']);
    expect((await search('sa', { q: 'ann' }, '', { 'x-api-key': rolesOnly })).json()).toMatchObject({ status: 403, code: 'permission.denied' });
    expect((await search('sa', { q: 'ann' }, '')).statusCode).toBe(401);
  });

  it('leaves out deleted rows and records whose target is deleted, and shows them again once restored', async () => {
    const visitor = await created('sa', 'users', { email: 'marzipan.visitor@sa.example', first_name: 'Mira', last_name: 'Visitor' });
    const note = await created('sa', 'notes', { title: 'Marzipan order', content: 'Two boxes', notable_type: 'users', notable_id: visitor });
    const task = await created('sa', 'tasks', { title: 'Marzipan delivery', taskable_type: 'notes', taskable_id: note });
    const found = async () => (await hits('sa', 'marzipan')).items.map((h) => h.id).sort();
    expect(await found()).toEqual([visitor, note, task].sort());
    expect((await call(t.tokens.sa, 'DELETE', `sa/notes/${note}`)).statusCode).toBe(204);
    // The note is deleted; the task pointing at it is hidden with it.
    expect(await found()).toEqual([visitor]);
    expect((await call(t.tokens.sa, 'POST', `sa/notes/${note}/restore`)).statusCode).toBe(200);
    expect((await call(t.tokens.sa, 'DELETE', `sa/users/${visitor}`)).statusCode).toBe(204);
    // The user is deleted: the note attached to them goes too.
    expect(await found()).toEqual([task]);
    expect((await call(t.tokens.sa, 'POST', `sa/users/${visitor}/restore`)).statusCode).toBe(200);
    expect(await found()).toEqual([visitor, note, task].sort());
  });

  it('returns snippets safe to put in HTML: the text escaped, matches in <mark>', async () => {
    await created('sa', 'notes', { title: 'Markup', content: 'Tangerine <img src=x onerror="alert(1)"> & <script>alert(\'x\')</script> "quoted" tangerines' });
    const [hit] = (await hits('sa', 'tangerine')).items;
    expect(hit!.snippet).toContain('<mark>Tangerine</mark>');
    expect(hit!.snippet).toContain('&amp;');
    const withoutMarks = hit!.snippet.replace(/<\/?mark>/g, '');
    expect(withoutMarks).not.toMatch(/[<>"']/);
    expect(hit!.title).toBe('Markup');
  });

  it('pages the hits, best first, with the total', async () => {
    const all = await hits('sa', 'greenhouse', { page_size: 100 });
    expect(all.total).toBe(3);
    const scores = all.items.map((h) => h.score);
    expect([...scores].sort((a, b) => b - a)).toEqual(scores);
    const pages = [];
    for (let page = 1; page <= 3; page++) pages.push(...(await hits('sa', 'greenhouse', { page, page_size: 1 })).items);
    expect(pages.map((h) => h.id)).toEqual(all.items.map((h) => h.id));
    expect(await hits('sa', 'greenhouse', { page: 9, page_size: 1 })).toEqual({ items: [], total: 3, page: 9, page_size: 1 });
  });

  it('refuses an empty or blank q, a long one, an unknown type and a page past 100 rows (400 naming the field)', async () => {
    const refusal = async (params: Record<string, string | number>) => {
      const res = await search('sa', params);
      expect(res.statusCode, JSON.stringify(params)).toBe(400);
      return res.json().errors.map((e: { field: string }) => e.field);
    };
    expect(await refusal({ q: '' })).toEqual(['querystring.q']);
    expect(await refusal({ q: '   ' })).toEqual(['querystring.q']);
    expect(await refusal({ q: 'x'.repeat(201) })).toEqual(['querystring.q']);
    expect(await refusal({})).toEqual(['querystring.q']);
    expect(await refusal({ q: 'ann', types: 'users,roles' })).toEqual(['querystring.types']);
    expect(await refusal({ q: 'ann', types: '' })).toEqual(['querystring.types']);
    expect(await refusal({ q: 'ann', page_size: 101 })).toEqual(['querystring.page_size']);
    // Punctuation alone is a query that finds nothing, not an error.
    expect(await hits('sa', '@@ -- %')).toMatchObject({ items: [], total: 0 });
  });

  it('follows the search.language setting: stemming after a change to english, every row indexed again, and a configuration PostgreSQL lacks refused', async () => {
    const runners = await created('sa', 'notes', { title: 'Track', content: 'The runners were running late' });
    expect((await hits('sa', 'runs')).items.map((h) => h.id)).not.toContain(runners);
    const refused = await call(t.tokens.sa, 'PUT', 'sa/settings/search.language', { value: 'klingon' });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().errors[0]).toMatchObject({ field: 'value', reason: expect.stringContaining('english') });
    expect((await call(t.tokens.sa, 'PUT', 'sa/settings/search.language', { value: 'english' })).statusCode).toBe(200);
    expect((await hits('sa', 'runs')).items.map((h) => h.id)).toContain(runners);
    const db = tenantDb(t.db.database.db, 'tenant_sa');
    const configs = await sql<{ config: string }>`SELECT DISTINCT search_config::text AS config FROM ${sql.id('tenant_sa', 'notes')} UNION SELECT DISTINCT search_config::text FROM ${sql.id('tenant_sa', 'users')}`.execute(db);
    expect(configs.rows.map((r) => r.config)).toEqual(['english']);
    // A row written afterwards takes the tenant's language; the other tenant keeps its own.
    const later = await created('sa', 'notes', { title: 'Later', content: 'Walked slowly' });
    expect((await hits('sa', 'walking')).items.map((h) => h.id)).toEqual([later]);
    expect((await db.selectFrom('notes').select('search_config').where('id', '=', later).executeTakeFirstOrThrow()).search_config).toBe('english');
    expect((await tenantDb(t.db.database.db, 'tenant_sb').selectFrom('notes').select('search_config').where('id', '=', ids.otherNote!).executeTakeFirstOrThrow()).search_config).toBe('simple');
    expect((await call(t.tokens.sa, 'PUT', 'sa/settings/search.language', { value: 'simple' })).statusCode).toBe(200);
    expect((await hits('sa', 'runs')).items.map((h) => h.id)).not.toContain(runners);
  });

  it('leaves the generated vectors out of an export, and a fork searches like its source', async () => {
    const platform = async (method: 'GET' | 'POST', url: string, payload?: object) =>
      t.app.inject({ method, url: `/api/v1/tenants${url}`, headers: bearer(await t.systemToken()), ...(payload ? { payload } : {}) });
    const archive = await platform('GET', '/sb/export');
    expect(archive.statusCode).toBe(200);
    const files = new Map<string, Buffer>();
    const extract = tar.extract();
    extract.on('entry', (header, stream, next) => void buffer(stream).then((b) => (files.set(header.name, b), next())));
    await pipeline(Readable.from(gunzipSync(archive.rawPayload)), extract);
    const notes = files.get('tables/notes.ndjson')!.toString().trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatchObject({ id: ids.otherNote, search_config: 'simple' });
    expect(notes[0]).not.toHaveProperty('search_tsv');
    const fork = await platform('POST', '/sb/fork', { slug: 'sb_copy' });
    expect(fork.statusCode, fork.body).toBe(201);
    const token = (await login(t.app, 'sb_copy', 'admin@sb.example')).access_token;
    expect((await hits('sb_copy', 'zanzibar', {}, token)).items.map((h) => h.id)).toEqual([ids.otherNote]);
    expect((await hits('sb_copy', 'jonathon smith', {}, token)).items.map((h) => h.id)).toEqual([ids.otherJonathan]);
  });

  it('is documented in the OpenAPI document, the snippet as HTML with <mark>', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const route = doc.paths['/api/v1/tenants/{tenant_slug}/search'].get;
    expect(route.summary).toMatch(/^Search/);
    expect(route.parameters.map((p: { name: string }) => p.name)).toEqual(expect.arrayContaining(['q', 'types', 'page', 'page_size']));
    expect(JSON.stringify(doc.components.schemas.SearchHit)).toContain('<mark>');
  });
});

describe('the users list search', () => {
  it('keeps matching any of email, username, first and last name as a substring, case-insensitively', async () => {
    const list = async (search: string) => (await call(t.tokens.sa, 'GET', `sa/users?search=${encodeURIComponent(search)}&page_size=100`)).json().items.map((u: { id: string }) => u.id);
    expect(await list('ONATHAN.SM')).toEqual([ids.jonathan]);
    expect(await list('smy')).toEqual([ids.jonathan]);
    expect(await list('nas')).toEqual([ids.jonas]);
    // A pattern across two fields matches none of them alone.
    expect(await list('jonathan smyth')).toEqual([]);
    expect(await list('100%')).toEqual([]);
  });
});

describe('query words, full-text queries and snippets', () => {
  it('splits on whitespace and ASCII punctuation, the last word a prefix when it has two characters or more', () => {
    expect(queryWords(" Jonathan.Smyth@Example.com O'Brien  ")).toEqual(['jonathan', 'smyth', 'example', 'com', 'o', 'brien']);
    expect(queryWords('Zoë Müller')).toEqual(['zoë', 'müller']);
    expect(tsqueryOf(['jonathan', 'sm'])).toBe("'jonathan' & 'sm':*");
    expect(tsqueryOf(['ann', 'j'])).toBe("'ann' & 'j'");
    expect(tsqueryOf([])).toBeNull();
  });

  it('escapes the text and marks what PostgreSQL matched, prefixes and close words', () => {
    const words = queryWords('jonathon smith');
    expect(snippetHtml('Jonathan Smyth · jonathan.smyth@example.com · <b>', words)).toBe(
      '<mark>Jonathan</mark> <mark>Smyth</mark> · <mark>jonathan</mark>.<mark>smyth</mark>@example.com · &lt;b&gt;',
    );
    expect(snippetHtml('a \uE000<match>\uE001 & "b"', ['zzz'])).toBe('a <mark>&lt;match&gt;</mark> &amp; &quot;b&quot;');
    expect(wordSimilarity('jonathan', 'jonathon')).toBeCloseTo(0.5, 2);
  });
});
