import { randomBytes, createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { tenantDb } from '../src/db/database.js';
import { revealConfig } from '../src/records/resources/channel-configs.js';
import { SecretBox } from '../src/records/secrets.js';
import { occurrences } from '../src/records/resources/events.js';
import { createTestApp } from './support/app.js';
import { useTenants } from './support/fixture.js';
import { caller, multipart, upload } from './support/records.js';
import { bearer, login, seedUser, type SeededUser } from './support/tenants.js';

/* What each extended resource adds to the shared contract (test/records.test.ts). */

const t = useTenants(['fa', 'fb']);
let call: ReturnType<typeof caller>;
let member: string;
let memberUser: SeededUser;

beforeAll(async () => {
  call = caller(t.app);
  memberUser = await seedUser(t, 'fa', { email: 'member@fa.example', roles: ['user'] });
  member = (await login(t.app, 'fa', memberUser.email)).access_token;
});

const db = (slug: string) => tenantDb(t.db.database.db, `tenant_${slug}`);

describe('tasks', () => {
  it('moves through todo -> in_progress -> done, keeping completed_at in step, and refuses other moves with 409', async () => {
    const task = (await call(member, 'POST', 'fa/tasks', { title: 'Ship it' })).json();
    expect(task).toMatchObject({ status: 'todo', completed_at: null });
    const skip = await call(member, 'PATCH', `fa/tasks/${task.id}`, { status: 'done' });
    expect(skip.statusCode).toBe(409);
    expect(skip.json().detail).toContain('todo to done');

    expect((await call(member, 'PATCH', `fa/tasks/${task.id}`, { status: 'in_progress' })).json()).toMatchObject({ status: 'in_progress', completed_at: null });
    const done = (await call(member, 'PATCH', `fa/tasks/${task.id}`, { status: 'done' })).json();
    expect(done.status).toBe('done');
    expect(Date.now() - Date.parse(done.completed_at)).toBeLessThan(60_000);
    expect((await call(member, 'PATCH', `fa/tasks/${task.id}`, { status: 'cancelled' })).statusCode).toBe(409);
    // Reopening clears completed_at.
    expect((await call(member, 'PATCH', `fa/tasks/${task.id}`, { status: 'in_progress' })).json()).toMatchObject({ status: 'in_progress', completed_at: null });
    expect((await call(member, 'PATCH', `fa/tasks/${task.id}`, { status: 'cancelled' })).json()).toMatchObject({ status: 'cancelled', completed_at: null });
    expect((await call(member, 'PATCH', `fa/tasks/${task.id}`, { status: 'in_progress' })).statusCode).toBe(409);
    expect((await call(member, 'PATCH', `fa/tasks/${task.id}`, { status: 'todo' })).json().status).toBe('todo');
    // A refused move changed nothing.
    const audit = (await call(t.tokens.fa, 'GET', `fa/audit-logs?entity_id=${task.id}&action=tasks.update&page_size=100`)).json();
    expect(audit.total).toBe(5);
  });

  it('filters overdue tasks: open and past due', async () => {
    const past = new Date(Date.now() - 3_600_000).toISOString();
    const future = new Date(Date.now() + 3_600_000).toISOString();
    const late = (await call(member, 'POST', 'fa/tasks', { title: 'Late', due_at: past })).json();
    const later = (await call(member, 'POST', 'fa/tasks', { title: 'Not yet', due_at: future })).json();
    const lateButDone = (await call(member, 'POST', 'fa/tasks', { title: 'Late, done', due_at: past, status: 'in_progress' })).json();
    await call(member, 'PATCH', `fa/tasks/${lateButDone.id}`, { status: 'done' });
    const overdue = (await call(member, 'GET', 'fa/tasks?overdue=true&page_size=100')).json().items.map((i: { id: string }) => i.id);
    expect(overdue).toContain(late.id);
    expect(overdue).not.toContain(later.id);
    expect(overdue).not.toContain(lateButDone.id);
    const notOverdue = (await call(member, 'GET', 'fa/tasks?overdue=false&page_size=100')).json().items.map((i: { id: string }) => i.id);
    expect(notOverdue).toEqual(expect.arrayContaining([later.id, lateButDone.id]));
    expect(notOverdue).not.toContain(late.id);
    const sorted = (await call(member, 'GET', 'fa/tasks?sort=due_at&page_size=100')).json().items.filter((i: { due_at: string | null }) => i.due_at).map((i: { due_at: string }) => i.due_at);
    expect(sorted).toEqual([...sorted].sort());
  });

  it('assigns only users of the tenant', async () => {
    expect((await call(member, 'POST', 'fa/tasks', { title: 'Mine', assigned_to: memberUser.id })).statusCode).toBe(201);
    const foreign = await call(member, 'POST', 'fa/tasks', { title: 'Theirs', assigned_to: t.admins.fb.id });
    expect(foreign.statusCode).toBe(400);
    expect(foreign.json().errors[0].field).toBe('assigned_to');
  });
});

describe('notes', () => {
  it('keeps priority, pinned and assignee, and filters by them', async () => {
    const note = (await call(member, 'POST', 'fa/notes', { title: 'Pinned', content: 'x', priority: 'urgent', is_pinned: true, assigned_to: memberUser.id })).json();
    expect(note).toMatchObject({ priority: 'urgent', is_pinned: true, assigned_to: memberUser.id });
    const pinned = (await call(member, 'GET', `fa/notes?is_pinned=true&assigned_to=${memberUser.id}`)).json();
    expect(pinned.items.map((n: { id: string }) => n.id)).toEqual([note.id]);
    expect((await call(member, 'GET', `fa/notes?search=pinn`)).json().items.map((n: { id: string }) => n.id)).toContain(note.id);
    expect((await call(member, 'POST', 'fa/notes', { title: '   ', content: 'x' })).statusCode).toBe(400);
    expect((await call(member, 'POST', 'fa/notes', { title: 'x', content: 'x', assigned_to: t.admins.fb.id })).statusCode).toBe(400);
  });
});

describe('logacalls', () => {
  it('stores numbers in E.164 and refuses others', async () => {
    const call1 = await call(member, 'POST', 'fa/logacalls', { direction: 'outbound', phone_number: '+44 20 7946-0958', called_at: '2026-04-01T08:00:00Z', duration_seconds: 95, outcome: 'answered', notes: 'Agreed' });
    expect(call1.statusCode).toBe(201);
    expect(call1.json().phone_number).toBe('+442079460958');
    for (const bad of ['020 7946 0958', '+0123', '+1234567890123456', 'call me']) {
      const res = await call(member, 'POST', 'fa/logacalls', { direction: 'inbound', phone_number: bad, called_at: '2026-04-01T08:00:00Z' });
      expect(res.statusCode, bad).toBe(400);
      expect(res.json().errors[0].field).toBe('phone_number');
    }
    expect((await call(member, 'POST', 'fa/logacalls', { direction: 'inbound', phone_number: '+14155550100', called_at: '2026-04-01T08:00:00Z', duration_seconds: -1 })).statusCode).toBe(400);
    expect((await call(member, 'POST', 'fa/logacalls', { direction: 'inbound', phone_number: '+14155550100', called_at: 'yesterday' })).statusCode).toBe(400);
  });

  it('filters by number (in any notation) and time range', async () => {
    const a = (await call(member, 'POST', 'fa/logacalls', { direction: 'inbound', phone_number: '+33142685300', called_at: '2026-05-01T09:00:00Z' })).json();
    const b = (await call(member, 'POST', 'fa/logacalls', { direction: 'inbound', phone_number: '+33142685300', called_at: '2026-05-03T09:00:00Z' })).json();
    const byNumber = (await call(member, 'GET', `fa/logacalls?phone_number=${encodeURIComponent('+33 1 42 68 53 00')}`)).json();
    expect(byNumber.items.map((i: { id: string }) => i.id).sort()).toEqual([a.id, b.id].sort());
    const ranged = (await call(member, 'GET', 'fa/logacalls?phone_number=%2B33142685300&called_from=2026-05-02T00:00:00Z&called_to=2026-05-04T00:00:00Z')).json();
    expect(ranged.items.map((i: { id: string }) => i.id)).toEqual([b.id]);
  });
});

describe('events', () => {
  it('validates the range, the RRULE, the time zone and the attendees', async () => {
    const base = { title: 'Review', starts_at: '2026-06-01T09:00:00Z', ends_at: '2026-06-01T10:00:00Z' };
    expect((await call(member, 'POST', 'fa/events', { ...base, ends_at: base.starts_at })).statusCode).toBe(400);
    for (const rrule of ['FREQ=SOMETIMES', 'garbage', 'DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY', 'FREQ=DAILY;INTERVAL=0']) {
      const res = await call(member, 'POST', 'fa/events', { ...base, rrule });
      expect(res.statusCode, rrule).toBe(400);
      expect(res.json().errors[0].field).toBe('rrule');
    }
    expect((await call(member, 'POST', 'fa/events', { ...base, timezone: 'Mars/Olympus' })).statusCode).toBe(400);
    const foreign = await call(member, 'POST', 'fa/events', { ...base, attendees: [memberUser.id, t.admins.fb.id] });
    expect(foreign.statusCode).toBe(400);
    expect(foreign.json().errors[0]).toEqual({ field: 'attendees', reason: expect.stringContaining(t.admins.fb.id) });
    const ok = await call(member, 'POST', 'fa/events', { ...base, timezone: 'Europe/Paris', attendees: [memberUser.id, memberUser.id, t.admins.fa.id] });
    expect(ok.statusCode).toBe(201);
    expect(ok.json().attendees.sort()).toEqual([memberUser.id, t.admins.fa.id].sort());
    expect((await call(member, 'GET', `fa/events?attendee=${t.admins.fa.id}`)).json().items.map((e: { id: string }) => e.id)).toContain(ok.json().id);
    // A partial update is checked against the stored other end.
    expect((await call(member, 'PATCH', `fa/events/${ok.json().id}`, { ends_at: '2026-06-01T08:00:00Z' })).statusCode).toBe(400);
  });

  it('expands recurring events into the occurrences that overlap a range', async () => {
    const weekly = (await call(member, 'POST', 'fa/events', { title: 'Weekly sync', starts_at: '2026-07-06T09:00:00Z', ends_at: '2026-07-06T10:00:00Z', rrule: 'FREQ=WEEKLY;BYDAY=MO,TH;COUNT=8', eventable_type: 'users', eventable_id: t.admins.fa.id })).json();
    const single = (await call(member, 'POST', 'fa/events', { title: 'Offsite', starts_at: '2026-07-15T08:00:00Z', ends_at: '2026-07-17T18:00:00Z' })).json();
    const outside = (await call(member, 'POST', 'fa/events', { title: 'Later', starts_at: '2026-09-01T08:00:00Z', ends_at: '2026-09-01T09:00:00Z' })).json();

    // Expected, computed here: Mondays and Thursdays from 2026-07-06, 8 in all.
    const expected: string[] = [];
    for (let d = new Date('2026-07-06T09:00:00Z'); expected.length < 8; d = new Date(d.getTime() + 86_400_000)) {
      if (d.getUTCDay() === 1 || d.getUTCDay() === 4) expected.push(d.toISOString());
    }
    const from = '2026-07-09T09:30:00Z'; // inside the Thursday 9 July occurrence: it overlaps
    const to = '2026-07-20T09:00:00Z'; // the Monday 20 July occurrence starts at `to`: it does not
    const inRange = expected.filter((s) => Date.parse(s) < Date.parse(to) && Date.parse(s) + 3_600_000 > Date.parse(from));
    const res = await call(member, 'GET', `fa/events/occurrences?from=${from}&to=${to}&page_size=100`);
    expect(res.statusCode, res.body).toBe(200);
    const items = res.json().items as { event_id: string; starts_at: string; ends_at: string; recurring: boolean }[];
    expect(items.filter((o) => o.event_id === weekly.id).map((o) => o.starts_at)).toEqual(inRange);
    expect(items.find((o) => o.event_id === single.id)).toMatchObject({ starts_at: single.starts_at, ends_at: single.ends_at, recurring: false });
    expect(items.map((o) => o.event_id)).not.toContain(outside.id);
    expect(items.map((o) => o.starts_at)).toEqual([...items.map((o) => o.starts_at)].sort());
    // Filtered by target.
    const byTarget = (await call(member, 'GET', `fa/events/occurrences?from=${from}&to=${to}&eventable_type=users&eventable_id=${t.admins.fa.id}&page_size=100`)).json();
    expect(new Set(byTarget.items.map((o: { event_id: string }) => o.event_id))).toEqual(new Set([weekly.id]));
    // Lists take the same range.
    const listed = (await call(member, 'GET', `fa/events?from=${from}&to=${to}&page_size=100`)).json().items.map((e: { id: string }) => e.id);
    expect(listed).toEqual(expect.arrayContaining([weekly.id, single.id]));
    expect(listed).not.toContain(outside.id);
    expect((await call(member, 'GET', `fa/events/occurrences?from=${to}&to=${from}`)).statusCode).toBe(400);
    // Pages.
    const page2 = (await call(member, 'GET', `fa/events/occurrences?from=${from}&to=${to}&page=2&page_size=2`)).json();
    expect(page2.items.map((o: { starts_at: string }) => o.starts_at)).toEqual(items.slice(2, 4).map((o) => o.starts_at));
    expect(page2.total).toBe(items.length);
  });

  it('bounds how much one query expands, and refuses rules that never end quickly', async () => {
    for (const rrule of ['FREQ=MINUTELY', 'FREQ=SECONDLY', 'FREQ=DAILY;COUNT=ABC', 'FREQ=DAILY;COUNT=0', 'FREQ=DAILY;BYDAY=XX', 'FREQ=DAILY;BYMONTH=13', 'FREQ=YEARLY;BYYEARDAY=400', 'FREQ=DAILY;BYHOUR=99', 'FREQ=DAILY;WKST=ZZ', 'FREQ=DAILY;UNTIL=20261345T000000Z', 'FREQ=DAILY;COUNT=2;UNTIL=20270101', 'FREQ=DAILY;UNTIL=20250101']) {
      const res = await call(member, 'POST', 'fa/events', { title: 'Bad rule', starts_at: '2026-01-01T00:00:00Z', ends_at: '2026-01-01T00:30:00Z', rrule });
      expect(res.statusCode, rrule).toBe(400);
      expect(res.json().errors[0].field).toBe('rrule');
      expect(res.json().detail).not.toMatch(/undefined|Cannot read/);
    }
    const owner = await seedUser(t, 'fa', { email: 'calendar@fa.example', roles: ['user'] });
    const token = (await login(t.app, 'fa', owner.email)).access_token;
    // Four occurrences an hour: a four-month range holds more than can be answered at once.
    await call(token, 'POST', 'fa/events', { title: 'Quarter-hourly', starts_at: '2030-01-01T00:00:00Z', ends_at: '2030-01-01T00:10:00Z', rrule: 'FREQ=HOURLY;BYMINUTE=0,15,30,45', eventable_type: 'users', eventable_id: owner.id });
    const many = await call(token, 'GET', `fa/events/occurrences?from=2030-01-01T00:00:00Z&to=2030-05-01T00:00:00Z&eventable_type=users&eventable_id=${owner.id}`);
    expect(many.statusCode).toBe(400);
    expect(many.json().detail).toContain('narrow');
    // A daily series queried centuries after its start is refused before it is expanded.
    await call(token, 'POST', 'fa/events', { title: 'Daily forever', starts_at: '2026-01-01T09:00:00Z', ends_at: '2026-01-01T10:00:00Z', rrule: 'FREQ=DAILY', eventable_type: 'users', eventable_id: owner.id });
    const far = await call(token, 'GET', `fa/events/occurrences?from=2400-01-01T00:00:00Z&to=2400-01-02T00:00:00Z&eventable_type=users&eventable_id=${owner.id}`);
    expect(far.statusCode).toBe(400);
    expect(far.json().detail).toContain('too much work');
    expect(occurrences({ starts_at: new Date('2026-01-01T00:00:00Z'), ends_at: new Date('2026-01-01T01:00:00Z'), rrule: 'FREQ=DAILY' }, new Date('2026-01-01T00:30:00Z'), new Date('2026-01-03T00:00:00Z')).length).toBe(2);
  });
});

describe('carbon footprints', () => {
  it('computes co2e_kg from the emission factor, exactly, and recomputes it on change', async () => {
    const res = await call(member, 'POST', 'fa/carbon-footprints', { activity: 'Diesel', quantity: 123.45, unit: 'l', emission_factor: 2.6391, period_start: '2026-02-01', period_end: '2026-02-28', scope: 1 });
    expect(res.statusCode).toBe(201);
    expect(res.json().co2e_kg).toBe(325.796895); // 123.45 × 2.6391
    const changed = (await call(member, 'PATCH', `fa/carbon-footprints/${res.json().id}`, { quantity: 10 })).json();
    expect(changed.co2e_kg).toBe(26.391);
    expect((await call(member, 'PATCH', `fa/carbon-footprints/${res.json().id}`, { co2e_kg: 1 })).statusCode).toBe(400);
    // Clearing the factor lets co2e_kg be given.
    expect((await call(member, 'PATCH', `fa/carbon-footprints/${res.json().id}`, { emission_factor: null, co2e_kg: 30 })).json()).toMatchObject({ emission_factor: null, co2e_kg: 30 });
    const both = await call(member, 'POST', 'fa/carbon-footprints', { activity: 'Gas', quantity: 1, unit: 'kWh', emission_factor: 0.2, co2e_kg: 5, period_start: '2026-02-01', period_end: '2026-02-28' });
    expect(both.statusCode).toBe(400);
    expect(both.json().errors[0].field).toBe('co2e_kg');
    expect((await call(member, 'POST', 'fa/carbon-footprints', { activity: 'Gas', quantity: 1, unit: 'kWh', period_start: '2026-02-01', period_end: '2026-02-28' })).statusCode).toBe(400);
    expect((await call(member, 'POST', 'fa/carbon-footprints', { activity: 'Gas', quantity: -1, unit: 'kWh', co2e_kg: 1, period_start: '2026-02-01', period_end: '2026-02-28' })).statusCode).toBe(400);
  });

  it('sums co2e_kg by scope, category and month over a period, as computed here', async () => {
    const rows = [
      { scope: 1, category: 'fleet', co2e_kg: 10.5, period_start: '2025-03-01' },
      { scope: 1, category: 'fleet', co2e_kg: 4.25, period_start: '2025-03-15' },
      { scope: 2, category: 'electricity', co2e_kg: 100, period_start: '2025-04-01' },
      { scope: 3, category: 'travel', co2e_kg: 7.125, period_start: '2025-04-20' },
      { scope: 3, category: null, co2e_kg: 1, period_start: '2025-05-02' },
      { scope: 2, category: 'electricity', co2e_kg: 999, period_start: '2024-12-01' }, // before the period
    ];
    for (const r of rows) {
      const res = await call(member, 'POST', 'fa/carbon-footprints', { activity: 'x', quantity: 1, unit: 'u', ...r, period_end: r.period_start });
      expect(res.statusCode, res.body).toBe(201);
    }
    // The other tenant's footprints never count.
    await call(t.tokens.fb, 'POST', 'fb/carbon-footprints', { activity: 'x', quantity: 1, unit: 'u', scope: 1, co2e_kg: 5000, period_start: '2025-03-01', period_end: '2025-03-01' });
    const inPeriod = rows.filter((r) => r.period_start >= '2025-01-01' && r.period_start <= '2025-12-31');
    const sumBy = (key: (r: (typeof rows)[number]) => string | null) => {
      const m = new Map<string | null, { co2e_kg: number; count: number }>();
      for (const r of inPeriod) {
        const k = key(r);
        const v = m.get(k) ?? { co2e_kg: 0, count: 0 };
        m.set(k, { co2e_kg: v.co2e_kg + r.co2e_kg, count: v.count + 1 });
      }
      return m;
    };
    for (const [group, key] of [
      ['scope', (r: (typeof rows)[number]) => String(r.scope)],
      ['category', (r: (typeof rows)[number]) => r.category],
      ['month', (r: (typeof rows)[number]) => r.period_start.slice(0, 7)],
    ] as const) {
      const res = await call(member, 'GET', `fa/carbon-footprints/aggregate?group_by=${group}&from=2025-01-01&to=2025-12-31`);
      expect(res.statusCode, res.body).toBe(200);
      const got = new Map((res.json().items as { key: string | null; co2e_kg: number; count: number }[]).map((i) => [i.key, { co2e_kg: i.co2e_kg, count: i.count }]));
      expect(got).toEqual(sumBy(key));
      expect(res.json().total_co2e_kg).toBeCloseTo(inPeriod.reduce((s, r) => s + r.co2e_kg, 0), 6);
    }
    expect((await call(member, 'GET', 'fa/carbon-footprints/aggregate?group_by=scope&from=2025-12-31&to=2025-01-01')).statusCode).toBe(400);
    expect((await call(member, 'GET', 'fa/carbon-footprints/aggregate?group_by=weekday')).statusCode).toBe(400);
  });
});

describe('channel configs', () => {
  it('never shows a secret in clear: not in answers, audit rows or the database column', async () => {
    const secret = `pw-${randomBytes(8).toString('hex')}`;
    const created = await call(t.tokens.fa, 'POST', 'fa/channel-configs', { channel: 'email', name: 'Outbound', config: { host: 'smtp.example.com', port: 587, username: 'mailer', password: secret, from: 'noreply@example.com' } });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json().config).toEqual({ host: 'smtp.example.com', port: 587, username: 'mailer', password: '[redacted]', from: 'noreply@example.com' });
    const id = created.json().id;
    const updated = await call(t.tokens.fa, 'PATCH', `fa/channel-configs/${id}`, { config: { from: 'alerts@example.com' } });
    expect(updated.json().config).toMatchObject({ from: 'alerts@example.com', password: '[redacted]' });
    // Sending the marker back keeps the secret.
    await call(t.tokens.fa, 'PUT', `fa/channel-configs/${id}`, { config: updated.json().config });
    const answers = [created.body, updated.body, (await call(t.tokens.fa, 'GET', `fa/channel-configs/${id}`)).body, (await call(t.tokens.fa, 'GET', 'fa/channel-configs')).body, (await call(t.tokens.fa, 'GET', `fa/audit-logs?entity_id=${id}`)).body];
    for (const body of answers) expect(body).not.toContain(secret);
    const row = await db('fa').selectFrom('channel_configs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain(secret);
    expect(row.encrypted_secrets).toMatch(/^v1\./);
    const audits = await db('fa').selectFrom('audit_logs').select(['before', 'after']).where('entity_id', '=', id).execute();
    expect(audits.length).toBe(3);
    expect(JSON.stringify(audits)).not.toContain(secret);
    // The service can still read it.
    expect(revealConfig(t.services.secrets, 'tenant_fa', row)).toMatchObject({ host: 'smtp.example.com', from: 'alerts@example.com', password: secret });
    // Clearing a secret removes it.
    await call(t.tokens.fa, 'PATCH', `fa/channel-configs/${id}`, { config: { password: null } });
    const cleared = await db('fa').selectFrom('channel_configs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    expect(cleared.encrypted_secrets).toBeNull();
    expect(revealConfig(t.services.secrets, 'tenant_fa', cleared)).not.toHaveProperty('password');
  });

  it('refuses the redaction marker as a new secret, and asks again for secrets whose key is gone', async () => {
    const marker = await call(t.tokens.fa, 'POST', 'fa/channel-configs', { channel: 'email', name: 'Marker', config: { host: 'smtp.example.com', password: '[redacted]' } });
    expect(marker.statusCode).toBe(400);
    expect(marker.json().errors[0].field).toBe('config.password');
    const created = (await call(t.tokens.fa, 'POST', 'fa/channel-configs', { channel: 'whatsapp', name: 'WA', config: { phone_number_id: '123', access_token: 'old-token' } })).json();
    // Another instance whose key cannot read what this one wrote (the key was lost).
    const other = await createTestApp({ database: t.db, secrets: new SecretBox([Buffer.alloc(32, 9)]) });
    try {
      const token = (await login(other.app, 'fa', t.admins.fa.email)).access_token;
      const callOther = caller(other.app);
      const refused = await callOther(token, 'PATCH', `fa/channel-configs/${created.id}`, { config: { business_account_id: '9' } });
      expect(refused.statusCode).toBe(409);
      expect(refused.json().detail).toContain('config.access_token');
      expect((await callOther(token, 'PATCH', `fa/channel-configs/${created.id}`, { name: 'Renamed' })).statusCode).toBe(200);
      const reentered = await callOther(token, 'PATCH', `fa/channel-configs/${created.id}`, { config: { access_token: 'new-token' } });
      expect(reentered.statusCode, reentered.body).toBe(200);
      const row = await db('fa').selectFrom('channel_configs').selectAll().where('id', '=', created.id).executeTakeFirstOrThrow();
      expect(revealConfig(other.services.secrets, 'tenant_fa', row)).toMatchObject({ phone_number_id: '123', access_token: 'new-token' });
    } finally {
      await other.close();
    }
  });

  it('validates the config of each channel and names the field', async () => {
    const cases: [string, Record<string, unknown>, string][] = [
      ['email', { port: 25 }, 'config.host'],
      ['email', { host: 'smtp.example.com', port: 70000 }, 'config.port'],
      ['email', { host: 'smtp.example.com', colour: 'blue' }, 'config.colour'],
      ['webhook', { url: 'ftp://example.com' }, 'config.url'],
      ['sms', { provider: 'twilio', from: '12345' }, 'config.from'],
      ['slack', { channel: '#general' }, 'config.webhook_url'],
      ['teams', {}, 'config.webhook_url'],
    ];
    for (const [channel, config, field] of cases) {
      const res = await call(t.tokens.fa, 'POST', 'fa/channel-configs', { channel, name: `Bad ${field}`, config });
      expect(res.statusCode, `${channel} ${JSON.stringify(config)}`).toBe(400);
      expect(res.json().errors.map((e: { field: string }) => e.field)).toContain(field);
    }
    expect((await call(t.tokens.fa, 'POST', 'fa/channel-configs', { channel: 'telegram', name: 'Bot', config: { bot_token: '123:abc', chat_id: '42' } })).statusCode).toBe(201);
    expect((await call(t.tokens.fa, 'POST', 'fa/channel-configs', { channel: 'telegram', name: 'bot', config: { bot_token: '123:abc' } })).statusCode).toBe(409);
    const bot = (await call(t.tokens.fa, 'GET', 'fa/channel-configs?channel=telegram')).json().items[0];
    expect((await call(t.tokens.fa, 'PATCH', `fa/channel-configs/${bot.id}`, { channel: 'sms' })).statusCode).toBe(400);
  });

  it('keeps one default per channel', async () => {
    const a = (await call(t.tokens.fa, 'POST', 'fa/channel-configs', { channel: 'sms', name: 'Primary', is_default: true, config: { provider: 'twilio', from: '+14155550100', auth_token: 't1' } })).json();
    const b = (await call(t.tokens.fa, 'POST', 'fa/channel-configs', { channel: 'sms', name: 'Backup', is_default: true, config: { provider: 'vonage', from: '+14155550101', api_key: 'k' } })).json();
    const defaults = (await call(t.tokens.fa, 'GET', 'fa/channel-configs?channel=sms&is_default=true')).json().items.map((c: { id: string }) => c.id);
    expect(defaults).toEqual([b.id]);
    expect((await call(t.tokens.fa, 'GET', `fa/channel-configs/${a.id}`)).json().is_default).toBe(false);
  });
});

describe('reviews', () => {
  it('records who moderated a review and when', async () => {
    const review = (await call(member, 'POST', 'fa/reviews', { rating: 4, title: 'Good', body: 'Quick answers', reviewable_type: 'users', reviewable_id: memberUser.id })).json();
    expect(review).toMatchObject({ status: 'pending', moderated_by: null, moderated_at: null });
    expect((await call(member, 'POST', 'fa/reviews', { rating: 3, status: 'approved' })).statusCode).toBe(400);
    const approved = (await call(t.tokens.fa, 'PATCH', `fa/reviews/${review.id}`, { status: 'approved' })).json();
    expect(approved).toMatchObject({ status: 'approved', moderated_by: t.admins.fa.id });
    expect(approved.moderated_at).toEqual(expect.any(String));
    expect((await call(t.tokens.fa, 'PATCH', `fa/reviews/${review.id}`, { status: 'spam' })).statusCode).toBe(400);
    for (const rating of [0, 6, 2.5, '5']) expect((await call(member, 'POST', 'fa/reviews', { rating })).statusCode).toBe(400);
  });

  it('aggregates ratings of one target, as computed here', async () => {
    const team = (await call(t.tokens.fa, 'POST', 'fa/teams', { name: 'Support' })).json();
    const ratings = [5, 4, 4, 2, 5, 1, 4];
    const ids: string[] = [];
    for (const rating of ratings) ids.push((await call(member, 'POST', 'fa/reviews', { rating, reviewable_type: 'teams', reviewable_id: team.id })).json().id);
    await call(member, 'POST', 'fa/reviews', { rating: 1, reviewable_type: 'users', reviewable_id: memberUser.id });
    await call(t.tokens.fa, 'PATCH', `fa/reviews/${ids[0]}`, { status: 'approved' });
    await call(t.tokens.fa, 'PATCH', `fa/reviews/${ids[1]}`, { status: 'approved' });
    const res = await call(member, 'GET', `fa/reviews/aggregate?reviewable_type=teams&reviewable_id=${team.id}`);
    expect(res.statusCode).toBe(200);
    const byRating = { 1: 0, 2: 0, 3: 0, 4: 0, 5: 0 } as Record<string, number>;
    for (const r of ratings) byRating[r]!++;
    expect(res.json()).toEqual({ reviewable_type: 'teams', reviewable_id: team.id, status: null, count: ratings.length, average_rating: Math.round((ratings.reduce((a, b) => a + b, 0) / ratings.length) * 100) / 100, by_rating: byRating });
    const approved = (await call(member, 'GET', `fa/reviews/aggregate?reviewable_type=teams&reviewable_id=${team.id}&status=approved`)).json();
    expect(approved).toMatchObject({ count: 2, average_rating: 4.5, by_rating: { 1: 0, 2: 0, 3: 0, 4: 1, 5: 1 } });
    expect((await call(member, 'GET', `fa/reviews/aggregate?reviewable_type=roles&reviewable_id=${team.id}`)).statusCode).toBe(400);
    // Another tenant sees nothing of this target.
    expect((await call(t.tokens.fb, 'GET', `fb/reviews/aggregate?reviewable_type=teams&reviewable_id=${team.id}`)).json()).toMatchObject({ count: 0, average_rating: null });
  });
});

describe('attachments', () => {
  const files = () => readdirSync(path.join(t.attachmentsDir, 'tenant_fa'));

  it('uploads and downloads a file byte for byte, with its checksum, type, name and ETag', async () => {
    const bytes = randomBytes(300_000);
    const res = await upload(t.app, member, 'fa/attachments', { name: 'Quarterly report é.pdf', type: 'application/pdf', content: bytes }, { attachable_type: 'users', attachable_id: memberUser.id });
    expect(res.statusCode, res.body).toBe(201);
    const a = res.json();
    expect(a).toMatchObject({ file_name: 'Quarterly report é.pdf', content_type: 'application/pdf', size_bytes: bytes.length, checksum_sha256: createHash('sha256').update(bytes).digest('hex'), revision: 1, parent_id: null, attachable_type: 'users' });
    expect(a).not.toHaveProperty('storage_key');
    const down = await call(member, 'GET', `fa/attachments/${a.id}/content`);
    expect(down.statusCode).toBe(200);
    expect(down.rawPayload.equals(bytes)).toBe(true);
    expect(down.headers['content-type']).toBe('application/pdf');
    expect(down.headers['content-length']).toBe(String(bytes.length));
    expect(down.headers['content-disposition']).toBe(`attachment; filename="Quarterly report _.pdf"; filename*=UTF-8''Quarterly%20report%20%C3%A9.pdf`);
    expect(down.headers.etag).toBe(`"${a.checksum_sha256}"`);
    expect((await call(member, 'GET', `fa/attachments/${a.id}/content`, undefined, { 'if-none-match': down.headers.etag as string })).statusCode).toBe(304);
    // Not for another tenant.
    expect((await call(t.tokens.fb, 'GET', `fb/attachments/${a.id}/content`)).statusCode).toBe(404);
    expect((await upload(t.app, t.tokens.fb, `fb/attachments/${a.id}/versions`, { content: Buffer.from('x') })).statusCode).toBe(404);
  });

  it('keeps the history of versions', async () => {
    const v1 = (await upload(t.app, member, 'fa/attachments', { name: 'plan.txt', type: 'text/plain', content: Buffer.from('version one') })).json();
    const v2res = await upload(t.app, member, `fa/attachments/${v1.id}/versions`, { name: 'plan-v2.txt', type: 'text/plain', content: Buffer.from('version two') });
    expect(v2res.statusCode, v2res.body).toBe(201);
    expect(v2res.headers.location).toBe(`/api/v1/tenants/fa/attachments/${v2res.json().id}`);
    const v2 = v2res.json();
    expect(v2).toMatchObject({ revision: 2, parent_id: v1.id, file_name: 'plan-v2.txt' });
    // A version of an older version still joins the same history.
    const v3 = (await upload(t.app, member, `fa/attachments/${v1.id}/versions`, { name: 'plan-v3.txt', content: Buffer.from('version three') })).json();
    expect(v3).toMatchObject({ revision: 3, parent_id: v1.id });
    const history = (await call(member, 'GET', `fa/attachments/${v2.id}/versions`)).json().items;
    expect(history.map((h: { revision: number }) => h.revision)).toEqual([3, 2, 1]);
    expect((await call(member, 'GET', `fa/attachments/${v1.id}/content`)).body).toBe('version one');
    expect((await call(member, 'GET', `fa/attachments/${v3.id}/content`)).body).toBe('version three');
    // The list shows the file once, at its latest version.
    const listed = (await call(member, 'GET', 'fa/attachments?search=plan&page_size=100')).json().items.map((i: { id: string }) => i.id);
    expect(listed).toContain(v3.id);
    expect(listed).not.toContain(v1.id);
    expect(listed).not.toContain(v2.id);
  });

  it('refuses an upload over the tenant limit with 413 and keeps nothing of it', async () => {
    expect((await call(t.tokens.fa, 'PUT', 'fa/settings/attachments.max_size_mb', { value: 1 })).statusCode).toBe(200);
    const before = files().length;
    const rows = (await call(t.tokens.fa, 'GET', 'fa/attachments?page_size=1')).json().total;
    const res = await upload(t.app, member, 'fa/attachments', { name: 'big.bin', content: randomBytes(1024 * 1024 + 1) });
    expect(res.statusCode).toBe(413);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(files().length).toBe(before);
    expect(files().some((f) => f.includes('.partial'))).toBe(false);
    expect((await call(t.tokens.fa, 'GET', 'fa/attachments?page_size=1')).json().total).toBe(rows);
    // Exactly the limit is accepted; another tenant keeps its own limit.
    expect((await upload(t.app, member, 'fa/attachments', { name: 'max.bin', content: randomBytes(1024 * 1024) })).statusCode).toBe(201);
    expect((await upload(t.app, t.tokens.fb, 'fb/attachments', { name: 'big.bin', content: randomBytes(1024 * 1024 + 1) })).statusCode).toBe(201);
    await call(t.tokens.fa, 'PUT', 'fa/settings/attachments.max_size_mb', { value: 25 });
  });

  it('deletes softly and removes bytes only on purge', async () => {
    const a = (await upload(t.app, member, 'fa/attachments', { name: 'old.txt', content: Buffer.from('old') })).json();
    const v2 = (await upload(t.app, member, `fa/attachments/${a.id}/versions`, { content: Buffer.from('newer') })).json();
    expect((await call(t.tokens.fa, 'POST', `fa/attachments/${a.id}/purge`)).statusCode).toBe(409);
    expect((await call(t.tokens.fa, 'DELETE', `fa/attachments/${v2.id}`)).statusCode).toBe(204);
    // Deleting the file deletes every version; the bytes stay until a purge.
    expect((await call(t.tokens.fa, 'GET', `fa/attachments/${a.id}/content`)).statusCode).toBe(404);
    expect(existsSync(path.join(t.attachmentsDir, 'tenant_fa', a.id))).toBe(true);
    expect((await call(t.tokens.fa, 'POST', `fa/attachments/${v2.id}/restore`)).statusCode).toBe(200);
    expect((await call(t.tokens.fa, 'GET', `fa/attachments/${a.id}/content`)).body).toBe('old');
    expect((await call(t.tokens.fa, 'DELETE', `fa/attachments/${a.id}`)).statusCode).toBe(204);
    expect((await call(member, 'POST', `fa/attachments/${a.id}/purge`)).statusCode).toBe(403);
    expect((await call(t.tokens.fa, 'POST', `fa/attachments/${a.id}/purge`)).statusCode).toBe(204);
    expect(existsSync(path.join(t.attachmentsDir, 'tenant_fa', a.id))).toBe(false);
    expect(existsSync(path.join(t.attachmentsDir, 'tenant_fa', v2.id))).toBe(false);
    expect((await call(t.tokens.fa, 'POST', `fa/attachments/${a.id}/restore`)).statusCode).toBe(409);
    expect((await call(t.tokens.fa, 'POST', `fa/attachments/${a.id}/purge`)).statusCode).toBe(409);
    const purged = await db('fa').selectFrom('attachments').select(['purged_at', 'deleted_at']).where('id', 'in', [a.id, v2.id]).execute();
    expect(purged.every((r) => r.purged_at instanceof Date && r.deleted_at instanceof Date)).toBe(true);
  });

  it('refuses uploads without a file, with extra files or fields, and non-multipart bodies', async () => {
    const before = files().length;
    const noFile = multipart({ attachable_type: 'users' }, []);
    expect((await t.app.inject({ method: 'POST', url: '/api/v1/tenants/fa/attachments', headers: { ...bearer(member), ...noFile.headers }, payload: noFile.payload })).statusCode).toBe(400);
    const twoFiles = multipart({}, [{ content: Buffer.from('a') }, { content: Buffer.from('b') }]);
    expect((await t.app.inject({ method: 'POST', url: '/api/v1/tenants/fa/attachments', headers: { ...bearer(member), ...twoFiles.headers }, payload: twoFiles.payload })).statusCode).toBe(400);
    const wrongField = multipart({}, [{ content: Buffer.from('a'), field: 'upload' }]);
    expect((await t.app.inject({ method: 'POST', url: '/api/v1/tenants/fa/attachments', headers: { ...bearer(member), ...wrongField.headers }, payload: wrongField.payload })).statusCode).toBe(400);
    expect((await upload(t.app, member, 'fa/attachments', { content: Buffer.from('a') }, { colour: 'blue' })).statusCode).toBe(400);
    expect((await upload(t.app, member, 'fa/attachments', { content: Buffer.from('a') }, { attachable_type: 'users', attachable_id: 'not-a-uuid' })).statusCode).toBe(400);
    expect((await call(member, 'POST', 'fa/attachments', { file: 'hello' })).statusCode).toBe(400);
    expect(files().length).toBe(before);
  });

  it('stores names without directories and unknown types as octet-stream', async () => {
    const res = (await upload(t.app, member, 'fa/attachments', { name: '../../etc/passwd', type: 'not a type', content: Buffer.from('x') })).json();
    expect(res).toMatchObject({ file_name: 'passwd', content_type: 'application/octet-stream' });
  });
});

describe('hardening', () => {
  it('refuses NUL characters, year 0000, absurd pages and plain-text bodies with a 4xx naming the problem', async () => {
    const before = (await call(t.tokens.fa, 'GET', 'fa/notes?page_size=1')).json().total;
    const nul = await call(member, 'POST', 'fa/notes', { title: 'a\u0000b', content: 'x' });
    expect(nul.statusCode).toBe(400);
    expect(nul.json().errors).toEqual([{ field: 'title', reason: 'must not contain NUL characters' }]);
    const nested = await call(t.tokens.fa, 'POST', 'fa/channel-configs', { channel: 'email', name: 'Nul', config: { host: 'smtp\u0000.example.com' } });
    expect(nested.json().errors).toEqual([{ field: 'config.host', reason: 'must not contain NUL characters' }]);
    expect((await call(member, 'GET', 'fa/notes?search=a%00b')).json().errors[0].field).toBe('querystring.search');
    expect((await call(member, 'GET', 'fa/carbon-footprints/aggregate?group_by=category&category=a%00')).statusCode).toBe(400);
    expect((await call(t.tokens.fa, 'GET', 'fa/notes?page_size=1')).json().total).toBe(before);

    const year0 = await call(member, 'POST', 'fa/logacalls', { direction: 'inbound', phone_number: '+14155550100', called_at: '0000-01-01T00:00:00Z' });
    expect(year0.statusCode).toBe(400);
    expect(year0.json().errors[0].field).toBe('called_at');
    expect((await call(member, 'POST', 'fa/carbon-footprints', { activity: 'x', quantity: 1, unit: 'u', co2e_kg: 1, period_start: '0000-01-01', period_end: '2026-01-01' })).json().errors[0].field).toBe('period_start');
    expect((await call(member, 'GET', 'fa/tasks?due_from=0000-01-01T00:00:00Z')).statusCode).toBe(400);
    expect((await call(member, 'GET', 'fa/notes?page=1000000000000000000000')).statusCode).toBe(400);
    const huge = await call(member, 'POST', 'fa/carbon-footprints', { activity: 'x', quantity: 1e12, unit: 'u', emission_factor: 1e6, period_start: '2026-01-01', period_end: '2026-01-01' });
    expect(huge.statusCode).toBe(400);
    expect(huge.json().errors[0].field).toBe('emission_factor');
    expect((await call(member, 'POST', 'fa/carbon-footprints', { activity: 'x', quantity: 1, unit: 'u', co2e_kg: 1e14, period_start: '2026-01-01', period_end: '2026-01-01' })).json().errors[0].field).toBe('co2e_kg');

    const text = await t.app.inject({ method: 'POST', url: '/api/v1/tenants/fa/notes', headers: { ...bearer(member), 'content-type': 'text/plain' }, payload: '{"title":"x","content":"y"}' });
    expect(text.statusCode).toBe(415);
    expect(text.json()).toMatchObject({ status: 415, title: 'Unsupported Media Type' });
  });

  it('names the allowed values of an enum once', async () => {
    const res = await call(t.tokens.fa, 'POST', 'fa/channel-configs', { channel: 'fax', name: 'Fax', config: {} });
    expect(res.json().errors).toEqual([{ field: 'channel', reason: 'must be one of email, sms, whatsapp, slack, webhook, teams, telegram, push' }]);
    const due = await call(member, 'POST', 'fa/tasks', { title: 'x', due_at: '2026-13-01T00:00:00Z' });
    expect(due.json().errors).toEqual([{ field: 'due_at', reason: expect.stringContaining('date-time') }]);
    const sort = await call(member, 'GET', 'fa/tasks?sort=colour');
    expect(sort.json().errors[0]).toEqual({ field: 'querystring.sort', reason: expect.stringContaining('must be one of due_at, -due_at') });
  });

  it('keeps one default per channel under concurrent writes and after a restore, auditing the flag it takes away', async () => {
    const make = (name: string) => call(t.tokens.fa, 'POST', 'fa/channel-configs', { channel: 'telegram', name, is_default: true, config: { bot_token: `t-${name}` } });
    const results = await Promise.all(['c1', 'c2', 'c3', 'c4', 'c5', 'c6'].map(make));
    expect(results.map((r) => r.statusCode)).toEqual([201, 201, 201, 201, 201, 201]);
    const defaults = (await call(t.tokens.fa, 'GET', 'fa/channel-configs?channel=telegram&is_default=true')).json();
    expect(defaults.total).toBe(1);
    const loser = results.map((r) => r.json().id).find((id: string) => id !== defaults.items[0].id);
    const cleared = (await call(t.tokens.fa, 'GET', `fa/audit-logs?entity_id=${loser}&action=channel_configs.update`)).json();
    expect(cleared.items[0]).toMatchObject({ before: { is_default: true }, after: { is_default: false } });

    const a = (await call(t.tokens.fa, 'POST', 'fa/channel-configs', { channel: 'teams', name: 'A', is_default: true, config: { webhook_url: 'https://a.example/x' } })).json();
    await call(t.tokens.fa, 'DELETE', `fa/channel-configs/${a.id}`);
    await call(t.tokens.fa, 'POST', 'fa/channel-configs', { channel: 'teams', name: 'B', is_default: true, config: { webhook_url: 'https://b.example/x' } });
    const restored = await call(t.tokens.fa, 'POST', `fa/channel-configs/${a.id}/restore`);
    expect(restored.statusCode).toBe(200);
    expect(restored.json().is_default).toBe(false);
    expect((await call(t.tokens.fa, 'GET', 'fa/channel-configs?channel=teams&is_default=true')).json().total).toBe(1);
  });

  it('asks for a stored secret again when the config would send it somewhere else', async () => {
    const created = (await call(t.tokens.fa, 'POST', 'fa/channel-configs', { channel: 'email', name: 'Relay', config: { host: 'smtp.example.com', password: 'p1' } })).json();
    const moved = await call(t.tokens.fa, 'PATCH', `fa/channel-configs/${created.id}`, { config: { host: 'evil.example.com' } });
    expect(moved.statusCode).toBe(400);
    expect(moved.json().errors[0].field).toBe('config.password');
    const marker = await call(t.tokens.fa, 'PATCH', `fa/channel-configs/${created.id}`, { config: { host: 'evil.example.com', password: '[redacted]' } });
    expect(marker.statusCode).toBe(400);
    expect((await call(t.tokens.fa, 'PATCH', `fa/channel-configs/${created.id}`, { config: { host: 'smtp2.example.com', password: 'p2' } })).statusCode).toBe(200);
    expect((await call(t.tokens.fa, 'PATCH', `fa/channel-configs/${created.id}`, { config: { host: 'smtp3.example.com', password: null } })).statusCode).toBe(200);
  });

  it('refuses a target that is itself hidden, and a task created past the start of its flow, and self-moderation', async () => {
    const owner = await seedUser(t, 'fa', { email: 'owner-hidden@fa.example' });
    const task = (await call(member, 'POST', 'fa/tasks', { title: 'On owner', taskable_type: 'users', taskable_id: owner.id })).json();
    expect((await call(t.tokens.fa, 'DELETE', `fa/users/${owner.id}`)).statusCode).toBe(204);
    const onHidden = await call(member, 'POST', 'fa/notes', { title: 'x', content: 'y', notable_type: 'tasks', notable_id: task.id });
    expect(onHidden.statusCode).toBe(400);
    expect(onHidden.json().errors[0].field).toBe('notable_id');
    await call(t.tokens.fa, 'POST', `fa/users/${owner.id}/restore`);
    expect((await call(member, 'POST', 'fa/notes', { title: 'x', content: 'y', notable_type: 'tasks', notable_id: task.id })).statusCode).toBe(201);

    const done = await call(member, 'POST', 'fa/tasks', { title: 'Already done', status: 'done' });
    expect(done.statusCode).toBe(400);
    expect(done.json().errors[0].field).toBe('status');

    const own = (await call(member, 'POST', 'fa/reviews', { rating: 5 })).json();
    const self = await call(member, 'PATCH', `fa/reviews/${own.id}`, { status: 'approved' });
    expect(self.statusCode).toBe(403);
    expect((await call(member, 'PATCH', `fa/reviews/${own.id}`, { rating: 4 })).statusCode).toBe(200);
  });

  it('guards new versions: permissions, size limit, deleted files; and audits every version a delete carries', async () => {
    const viewerUser = await seedUser(t, 'fa', { email: 'viewer-files@fa.example', roles: ['viewer'] });
    const viewer = (await login(t.app, 'fa', viewerUser.email)).access_token;
    const a = (await upload(t.app, member, 'fa/attachments', { name: 'v.txt', content: Buffer.from('one') })).json();
    expect((await upload(t.app, viewer, `fa/attachments/${a.id}/versions`, { content: Buffer.from('two') })).statusCode).toBe(403);
    await call(t.tokens.fa, 'PUT', 'fa/settings/attachments.max_size_mb', { value: 1 });
    expect((await upload(t.app, member, `fa/attachments/${a.id}/versions`, { content: randomBytes(1024 * 1024 + 1) })).statusCode).toBe(413);
    await call(t.tokens.fa, 'PUT', 'fa/settings/attachments.max_size_mb', { value: 25 });
    const v2 = (await upload(t.app, member, `fa/attachments/${a.id}/versions`, { content: Buffer.from('two') })).json();
    expect((await call(t.tokens.fa, 'DELETE', `fa/attachments/${a.id}`)).statusCode).toBe(204);
    const carried = (await call(t.tokens.fa, 'GET', `fa/audit-logs?entity_id=${v2.id}&action=attachments.delete`)).json();
    expect(carried.total).toBe(1);
    expect(carried.items[0]).toMatchObject({ entity_type: 'attachments', entity_id: v2.id, actor_user_id: t.admins.fa.id });
    expect((await upload(t.app, member, `fa/attachments/${v2.id}/versions`, { content: Buffer.from('three') })).statusCode).toBe(404);
  });

  it('documents every tenant path parameter, the multipart uploads and the optional paging', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const note = doc.paths['/api/v1/tenants/{tenant_slug}/notes/{id}'].get;
    expect(note.parameters.filter((p: { in: string }) => p.in === 'path').map((p: { name: string }) => p.name).sort()).toEqual(['id', 'tenant_slug']);
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, { parameters?: { in: string; name: string }[] }>>)) {
      const names = [...path.matchAll(/\{([a-z_]+)\}/g)].map((m) => m[1]).sort();
      if (names.length === 0) continue;
      for (const op of Object.values(item)) expect(op.parameters?.filter((p) => p.in === 'path').map((p) => p.name).sort(), path).toEqual(names);
    }
    const uploadOp = doc.paths['/api/v1/tenants/{tenant_slug}/attachments'].post;
    expect(Object.keys(uploadOp.requestBody.content)).toEqual(['multipart/form-data']);
    expect(uploadOp.requestBody.content['multipart/form-data'].schema.properties.file).toMatchObject({ type: 'string', format: 'binary' });
    const list = doc.paths['/api/v1/tenants/{tenant_slug}/notes'].get.parameters;
    expect(list.find((p: { name: string }) => p.name === 'page').required).toBeFalsy();
    expect(Object.keys(doc.paths['/api/v1/tenants/{tenant_slug}/attachments/{id}/content'].get.responses)).toEqual(expect.arrayContaining(['200', '304']));
  });
});
