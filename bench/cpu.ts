/**
 * CPU time per process group, read from /proc (Linux): where a request's CPU goes (the service,
 * its floor, PostgreSQL, the load generator), measured around one load run. Elsewhere (no /proc)
 * the snapshots are empty and nothing is reported.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's utime and stime (USER_HZ: 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** user + system ticks of a process and all its threads, or undefined when it is gone. */
function ticksOf(pid: string): number | undefined {
  try {
    // The command name is in parentheses and may hold spaces: fields are counted after it.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

export interface CpuSnapshot {
  /** ticks per pid, for the pids watched and every process named `postgres` */
  readonly pids: ReadonlyMap<string, { group: string; ticks: number }>;
}

export function snapshot(watched: Record<string, number>): CpuSnapshot {
  const pids = new Map<string, { group: string; ticks: number }>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return { pids };
  }
  for (const [group, pid] of Object.entries(watched)) {
    const ticks = ticksOf(String(pid));
    if (ticks !== undefined) pids.set(String(pid), { group, ticks });
  }
  for (const pid of entries) {
    if (!/^\d+$/.test(pid) || pids.has(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'postgres') continue;
    } catch {
      continue;
    }
    const ticks = ticksOf(pid);
    if (ticks !== undefined) pids.set(pid, { group: 'postgres', ticks });
  }
  return { pids };
}

/**
 * Microseconds of CPU per request for each group between two snapshots. A process that started
 * in between (a new PostgreSQL backend) counts from zero; one that ended is left out (its last
 * ticks are unknown), so connections should be steady across the run.
 */
export function cpuPerRequest(before: CpuSnapshot, after: CpuSnapshot, requests: number): Record<string, number> {
  const groups: Record<string, number> = {};
  for (const [pid, { group, ticks }] of after.pids) groups[group] = (groups[group] ?? 0) + ticks - (before.pids.get(pid)?.ticks ?? 0);
  return Object.fromEntries(Object.entries(groups).map(([group, ticks]) => [group, Math.round((ticks * 1e6) / TICKS_PER_SECOND / Math.max(1, requests))]));
}
