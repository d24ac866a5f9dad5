import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import nodemailer, { type Transporter } from 'nodemailer';

export interface MailMessage {
  readonly to: string;
  readonly subject: string;
  readonly text: string;
  readonly html?: string;
  /** The language the mail is written in (its Content-Language header). */
  readonly language?: string;
}

/** nodemailer's fields for a message: the language goes out as a header. */
const fields = ({ language, ...m }: MailMessage) => (language ? { ...m, headers: { 'Content-Language': language } } : m);

export interface Mailer {
  send(message: MailMessage): Promise<void>;
}

const FROM = 'system-service <no-reply@system-service.local>';

/** Sends through SMTP_URL, or writes each message as an .eml file to DATA_DIR/outbox/. */
export function createMailer(options: { smtpUrl: string | undefined; outboxDir: string; from?: string }): Mailer {
  const from = options.from ?? FROM;
  if (options.smtpUrl) {
    const transport: Transporter = nodemailer.createTransport(options.smtpUrl);
    return { send: async (m) => void (await transport.sendMail({ from, ...fields(m) })) };
  }
  const builder = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
  return {
    send: async (m) => {
      const info = (await builder.sendMail({ from, ...fields(m) })) as { message: Buffer };
      // Messages hold reset and invitation links: readable by the service's user only.
      await mkdir(options.outboxDir, { recursive: true, mode: 0o700 });
      await writeFile(path.join(options.outboxDir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomUUID()}.eml`), info.message, { mode: 0o600, flag: 'wx' });
    },
  };
}
