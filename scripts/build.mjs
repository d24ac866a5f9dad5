#!/usr/bin/env node
// `npm run build`: compiles the service into dist/ (or the folder given), with every file under
// src/ that is not TypeScript (SQL and other assets read at run time) copied beside the output.
import { execFileSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const src = path.join(root, 'src');
const out = path.resolve(root, process.argv[2] ?? 'dist');
if (out === root || root.startsWith(out + path.sep) || out === src || out.startsWith(src + path.sep)) {
  throw new Error(`refusing to build into ${out}: it holds the sources`);
}
// A fresh folder: nothing compiled from a source since removed is left behind.
rmSync(out, { recursive: true, force: true });
execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.build.json'), '--outDir', out], { cwd: root, stdio: 'inherit' });

for (const entry of readdirSync(src, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || entry.name.endsWith('.ts')) continue;
  const from = path.join(entry.parentPath ?? entry.path, entry.name); // `path` before Node 20.12
  cpSync(from, path.join(out, path.relative(src, from)));
}
