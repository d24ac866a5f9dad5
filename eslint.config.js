import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

const FEATURES = ['access', 'account', 'audit', 'auth', 'cache', 'db', 'health', 'mail', 'me', 'records', 'roles', 'settings', 'teams', 'tenancy', 'users'];

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.data/', 'coverage/', 'bench/results/', 'bench/.build/', 'scratch/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
    },
  },
  // The layers (docs/ARCHITECTURE.md): http/ is plumbing and imports no feature folder (types
  // aside); services, db/ and the other feature code never import http/ (routes, GraphQL and the auth
  // hooks do).
  {
    files: ['src/http/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { patterns: [{ group: FEATURES.map((f) => `../${f}/*`), allowTypeImports: true, message: 'http/ is plumbing: it imports no feature folder (a type import is fine).' }] },
      ],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/http/**', 'src/**/routes.ts', 'src/**/view.ts', 'src/**/schemas.ts', 'src/**/*-routes.ts', 'src/auth/*-hook.ts', 'src/app.ts', 'src/graphql/**', 'src/records/resource.ts', 'src/records/resources/*.ts', 'src/records/fields.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/http/*'], allowTypeImports: false, message: 'Services and db/ know nothing of HTTP: only routes and the auth hooks import http/.' }] },
      ],
    },
  },
  // The console's browser modules (no build step: what is here is what the browser runs).
  {
    files: ['src/console/static/**/*.js'],
    languageOptions: { sourceType: 'module', globals: { ...globals.browser } },
  },
  {
    files: ['bin/**/*.js', 'scripts/**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
);
