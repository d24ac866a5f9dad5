/** Sorting and text search of list queries, as the services build them. */
export interface SortSpec {
  readonly column: string;
  readonly direction: 'asc' | 'desc';
}

export function parseSort(sort: string | undefined, fallback: SortSpec): SortSpec {
  if (!sort) return fallback;
  return sort.startsWith('-') ? { column: sort.slice(1), direction: 'desc' } : { column: sort, direction: 'asc' };
}

/** `%text%` for ILIKE, with the caller's wildcards taken literally. */
export function likePattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}
