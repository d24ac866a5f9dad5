/// <reference lib="dom" />
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { describe } from 'vitest';
import type { TestApp } from './app.js';

/** Debian's chromium (CHROMIUM_PATH to use another). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p)) ?? '';

if (!CHROMIUM && process.env.REQUIRE_BROWSER === '1') throw new Error('REQUIRE_BROWSER=1 but there is no chromium: install it (Debian package chromium) or set CHROMIUM_PATH');

/**
 * A suite driven through a real browser. Without chromium it is skipped, unless
 * REQUIRE_BROWSER=1 (CI sets it), which fails the run instead.
 */
export const describeWithBrowser = describe.skipIf(CHROMIUM === '');

export function launchBrowser(): Promise<Browser> {
  // As root (CI), chromium's sandbox cannot start.
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

/** Serves the test app over real HTTP on localhost (a secure context: Secure cookies work). */
export async function serve(t: TestApp, port = 0): Promise<string> {
  await t.app.listen({ port, host: '127.0.0.1' });
  return `http://localhost:${(t.app.server.address() as AddressInfo).port}`;
}

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

/** Runs axe-core in the page; answers the serious and critical violations. */
export async function seriousViolations(page: Page): Promise<AxeViolation[]> {
  // Evaluated through the debugging protocol: the page's Content-Security-Policy stays as it is.
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => (globalThis as unknown as { axe: { run: (ctx: Document) => Promise<{ violations: AxeViolation[] }> } }).axe.run(document));
  return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

export { freePort } from './net.js';
