import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Development key material generated once and kept in DATA_DIR (mode 600), so it survives
 * restarts; when another process (the CLI beside the service) writes it first, theirs is used.
 */
export function keptInDataDir(dataDir: string, name: string, generate: () => string): { material: string; file: string } {
  const file = path.join(dataDir, name);
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true });
    try {
      writeFileSync(file, generate(), { mode: 0o600, flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  return { material: readFileSync(file, 'utf8'), file };
}
