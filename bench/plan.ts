/** Shared by the scenarios that show their query plans: one measured turn, and a plan's scans. */

/** One measured turn, as bench/load.ts reports it. */
export interface Turn {
  rps: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  cpu_us_per_request?: Record<string, number>;
}

export interface PlanNode {
  'Node Type': string;
  'Actual Loops'?: number;
  'Index Name'?: string;
  'Relation Name'?: string;
  Plans?: PlanNode[];
}

export type ExplainRow = { 'QUERY PLAN': [{ Plan: PlanNode; 'Execution Time': number }] };

/** Every node of an EXPLAIN (ANALYZE, FORMAT JSON) plan that read a table or an index (once each, sorted), and the execution time. */
export function planScans(row: ExplainRow) {
  const [plan] = row['QUERY PLAN'];
  const scans = new Set<string>();
  const walk = (node: PlanNode) => {
    if ((node['Actual Loops'] ?? 1) > 0 && (node['Relation Name'] || node['Index Name'])) {
      scans.add([node['Node Type'], node['Index Name'] && `using ${node['Index Name']}`, node['Relation Name'] && `on ${node['Relation Name']}`].filter(Boolean).join(' '));
    }
    for (const child of node.Plans ?? []) walk(child);
  };
  walk(plan.Plan);
  return { scans: [...scans].sort(), execution_ms: Number(plan['Execution Time'].toFixed(1)) };
}
