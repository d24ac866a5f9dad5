import { defineConfig, mergeConfig } from 'vitest/config';
import base from '../vitest.config.js';

/** Profiles that measure rather than test (`npm run bench:oidc-profile`): the suite's set-up, not its files. */
export default mergeConfig(base, defineConfig({ test: { include: ['bench/**/*.profile.ts'] } }));
