import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { createMailer } from '../src/mail/mailer.js';

it('without SMTP_URL, writes each message as an .eml file to the outbox', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ss-outbox-'));
  try {
    const mailer = createMailer({ smtpUrl: undefined, outboxDir: path.join(dir, 'outbox') });
    await mailer.send({ to: 'ada@example.com', subject: 'Reset your password', text: 'Set a new password: https://app.example/reset?token=abc' });
    await mailer.send({ to: 'bob@example.com', subject: 'Second', text: 'two' });
    const files = (await readdir(path.join(dir, 'outbox'))).sort();
    expect(files).toHaveLength(2);
    expect(files.every((f) => f.endsWith('.eml'))).toBe(true);
    const first = await readFile(path.join(dir, 'outbox', files[0]!), 'utf8');
    expect(first).toMatch(/^To: ada@example.com$/m);
    expect(first).toMatch(/^Subject: Reset your password$/m);
    expect(first).toContain('token=abc');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
