#!/usr/bin/env node
// `npm run build`: compiles the service into dist/ (or the folder given) with the SQL files it reads at run time.
import { execFileSync } from 'node:child_process';
import { cpSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.resolve(root, process.argv[2] ?? 'dist');
execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.build.json'), '--outDir', out], { cwd: root, stdio: 'inherit' });
cpSync(path.join(root, 'src/db/sql'), path.join(out, 'db/sql'), { recursive: true });
