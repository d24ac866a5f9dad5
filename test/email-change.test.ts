import { describe, expect, it } from 'vitest';
import { useTenants } from './support/fixture.js';
import { bearer, login, seedUser } from './support/tenants.js';

/** SPEC section 10: an email change by an administrator re-verifies, notifies and voids old links. Two tenants. */
const t = useTenants(['ea', 'eb']);

const post = (url: string, payload: object) => t.app.inject({ method: 'POST', url: `/api/v1/tenants/${url}`, payload });
const tokenFrom = (text: string) => /token=([A-Za-z0-9_-]+)/.exec(text)?.[1] ?? '';
const mailTo = (address: string) => t.mailer.sent.filter((m) => m.to === address);

describe('an email change', () => {
  it('sets the address unverified, mails a link to the new one and a notice to the old, and voids earlier links', async () => {
    const user = await seedUser(t, 'ea', { email: 'old@shared.example', roles: ['user'] });
    const neighbour = await seedUser(t, 'eb', { email: 'old@shared.example', roles: ['user'] });
    for (const slug of ['ea', 'eb']) expect((await post(`${slug}/auth/password-reset/request`, { email: 'old@shared.example' })).statusCode).toBe(202);
    await t.services.auth.settled();
    // The two mails go out after their answers, in either order: each link names its tenant.
    const resetOf = (slug: string) => tokenFrom(mailTo('old@shared.example').find((m) => m.text.includes(`tenant=${slug}&`))!.text);
    const [resetA, resetB] = [resetOf('ea'), resetOf('eb')];
    expect(resetA && resetB).toBeTruthy();

    const res = await t.app.inject({ method: 'PATCH', url: `/api/v1/tenants/ea/users/${user.id}`, headers: bearer(t.tokens.ea), payload: { email: 'new@ea.example' } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ email: 'new@ea.example', is_email_verified: false });

    const notice = mailTo('old@shared.example').at(-1)!;
    expect(notice.text).toContain('new@ea.example');
    expect(tokenFrom(notice.text)).toBe('');
    const verification = mailTo('new@ea.example');
    expect(verification).toHaveLength(1);

    // The reset link mailed to the old address no longer works; the other tenant's still does.
    expect((await post('ea/auth/password-reset/confirm', { token: resetA, new_password: 'a hijacked passphrase' })).statusCode).toBe(400);
    expect((await post('eb/auth/password-reset/confirm', { token: resetB, new_password: 'a neighbour passphrase' })).statusCode).toBe(204);
    await login(t.app, 'eb', 'old@shared.example', 'a neighbour passphrase');
    expect(neighbour.id).not.toBe(user.id);

    // The new address is verified through its own link, in its own tenant only.
    const verify = tokenFrom(verification[0]!.text);
    expect((await post('eb/auth/verify-email', { token: verify })).statusCode).toBe(400);
    expect((await post('ea/auth/verify-email', { token: verify })).statusCode).toBe(204);
    const after = await t.app.inject({ method: 'GET', url: `/api/v1/tenants/ea/users/${user.id}`, headers: bearer(t.tokens.ea) });
    expect(after.json().is_email_verified).toBe(true);
  });

  it('sends nothing when the address does not change', async () => {
    const user = await seedUser(t, 'ea', { email: 'same@ea.example' });
    const before = t.mailer.sent.length;
    const res = await t.app.inject({ method: 'PATCH', url: `/api/v1/tenants/ea/users/${user.id}`, headers: bearer(t.tokens.ea), payload: { email: 'SAME@ea.example', first_name: 'Same' } });
    expect(res.statusCode).toBe(200);
    expect(res.json().is_email_verified).toBe(true);
    expect(t.mailer.sent.length).toBe(before);
  });
});
