import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SMTPServer } from 'smtp-server';
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

it('with SMTP_URL, delivers through that SMTP server', async () => {
  const received: { from: string; to: string[]; data: string }[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    onData(stream, session, callback) {
      let data = '';
      stream.on('data', (c: Buffer) => (data += c.toString()));
      stream.on('end', () => {
        received.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address), data });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  try {
    const mailer = createMailer({ smtpUrl: `smtp://127.0.0.1:${port}`, outboxDir: '/nonexistent' });
    await mailer.send({ to: 'carol@example.com', subject: 'Verify your email address', text: 'token=xyz' });
    expect(received).toHaveLength(1);
    expect(received[0]!.to).toEqual(['carol@example.com']);
    expect(received[0]!.data).toMatch(/^Subject: Verify your email address/m);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
