import type { TestProject } from 'vitest/node';
import { findPgBouncer, startPgBouncer } from './support/pgbouncer.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The suite's PostgreSQL (pgUrl) through a PgBouncer in transaction mode; '' when there is no pgbouncer. */
    pgbouncerUrl: string;
  }
}

/**
 * Runs after global-setup.ts (which provides pgUrl): starts Debian's pgbouncer in front of the
 * suite's PostgreSQL for test/pgbouncer.test.ts. Without a pgbouncer binary those tests are
 * skipped with one line saying what to install, unless REQUIRE_PGBOUNCER=1 (CI sets it), which
 * fails the run instead.
 */
export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const binary = findPgBouncer();
  if (!binary) {
    if (process.env.REQUIRE_PGBOUNCER === '1') throw new Error('REQUIRE_PGBOUNCER=1, but there is no pgbouncer on PATH or in /usr/sbin (apt-get install pgbouncer)');
    console.warn('PgBouncer tests are skipped: install pgbouncer (Debian package) to run them.');
    project.provide('pgbouncerUrl', '');
    return undefined;
  }
  // Two server connections per database: statements of many client connections (of two
  // service instances) meet on few server connections, as they do under load.
  const bouncer = await startPgBouncer(binary, project.getProvidedContext().pgUrl, { poolSize: 2 });
  project.provide('pgbouncerUrl', bouncer.url);
  return () => bouncer.stop();
}
