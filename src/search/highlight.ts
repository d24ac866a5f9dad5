/*
 * Snippets as HTML that is safe to insert: the text escaped, matches wrapped in <mark>. PostgreSQL
 * (ts_headline) picks the fragments and marks what the full-text query matched, between two
 * private-use characters the text cannot hold (they are removed from it first); here the rest
 * is marked too: words that begin with a query word (a prefix, or a word inside an email
 * address or a file name) or are close to one (a typo).
 */

/** What ts_headline puts around a match (U+E000, U+E001); stripped from the text beforehand. */
export const MARK_START = '\uE000';
export const MARK_END = '\uE001';

/** Word breaks, as the search vectors have them: whitespace and ASCII punctuation. */
const BREAK = /[\s!-/:-@[-`{-~]+/u;

/** The words of a query as the search sees them: lower case, split on whitespace and ASCII punctuation. */
export function queryWords(text: string): string[] {
  return text.toLowerCase().split(BREAK).filter((w) => w.length > 0);
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** pg_trgm's trigrams of one (lower-case) word: two spaces before and one after. */
function trigrams(word: string): Set<string> {
  const padded = `  ${word} `;
  // By code point only where a character needs two code units: most words need not.
  const chars = /[\uD800-\uDFFF]/.test(padded) ? Array.from(padded) : padded;
  const set = new Set<string>();
  for (let i = 0; i + 3 <= chars.length; i++) set.add(typeof chars === 'string' ? chars.slice(i, i + 3) : chars.slice(i, i + 3).join(''));
  return set;
}

function similarityOf(x: ReadonlySet<string>, y: ReadonlySet<string>): number {
  let shared = 0;
  for (const t of x) if (y.has(t)) shared++;
  return shared / (x.size + y.size - shared);
}

/** pg_trgm's similarity of two words: shared trigrams over all trigrams. */
export function wordSimilarity(a: string, b: string): number {
  return similarityOf(trigrams(a), trigrams(b));
}

/** Shortest query word that marks the words it begins; shortest pair of words compared for a typo, and how alike they must be. */
const PREFIX_MIN = 2;
const TYPO_MIN = 4;
const TYPO_SIMILARITY = 0.3;

/** Whether a word of the text matches a word of the query: begins with it, or is close to it (remembered per word). */
function matcherOf(query: readonly string[]): (word: string) => boolean {
  const prefixes = query.filter((q) => q.length >= PREFIX_MIN);
  const typos = query.filter((q) => q.length >= TYPO_MIN).map((q) => trigrams(q));
  const known = new Map<string, boolean>();
  return (word) => {
    let found = known.get(word);
    if (found === undefined) known.set(word, (found = test(word)));
    return found;
  };
  function test(word: string): boolean {
    const w = word.toLowerCase();
    if (prefixes.some((q) => w.startsWith(q))) return true;
    if (w.length < TYPO_MIN) return false;
    // Similarity is at most the smaller set over the larger (a word of n characters has at most
    // n + 1 trigrams): most words are ruled out before their trigrams are made.
    const close = typos.filter((q) => Math.min(q.size, w.length + 1) / Math.max(q.size, w.length + 1) >= TYPO_SIMILARITY);
    if (close.length === 0) return false;
    const own = trigrams(w);
    return close.some((q) => similarityOf(own, q) >= TYPO_SIMILARITY);
  }
}

/** A word, or a character HTML needs escaped (a word holds none: they are ASCII punctuation). */
const WORD_OR_SPECIAL = /([^\s!-/:-@[-`{-~]+)|[&<>"']/gu;

/** Escapes text PostgreSQL did not mark, wrapping the words that match the query in <mark>: one pass. */
function markWords(text: string, matches: (word: string) => boolean): string {
  return text.replace(WORD_OR_SPECIAL, (found: string, word: string | undefined) => (word === undefined ? ESCAPES[found]! : matches(word) ? `<mark>${word}</mark>` : word));
}

/**
 * The HTML of snippets for the query's words: a function of ts_headline's output (`headline`).
 * Made once for a page of hits, it judges each distinct word once.
 */
export function snippetsFor(query: readonly string[]): (headline: string) => string {
  const matches = matcherOf(query);
  return (headline) => snippetOf(headline, matches);
}

/** The HTML of one snippet from ts_headline's output and the query's words. */
export function snippetHtml(headline: string, query: readonly string[]): string {
  return snippetOf(headline, matcherOf(query));
}

function snippetOf(headline: string, matches: (word: string) => boolean): string {
  let out = '';
  let marked = false;
  for (const part of headline.split(/([\uE000\uE001])/u)) {
    if (part === MARK_START) marked = true;
    else if (part === MARK_END) marked = false;
    else if (marked) out += `<mark>${escapeHtml(part)}</mark>`;
    else out += markWords(part, matches);
  }
  return out.replace(/\s+/g, ' ').trim();
}
