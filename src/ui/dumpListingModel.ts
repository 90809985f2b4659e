/**
 * Dump listings in the editor, as plain data (no `vscode` import, unit-tested in Node): virtual
 * document paths, the origin line of an editable copy, presets, the outline as symbols, folding
 * ranges and hover text. dumpListing.ts maps these to VS Code providers.
 */
import {
  dataOfTables,
  outline,
  schemaOnly,
  serializeListing,
  tocEntries,
  type OutlineItem,
  type QualifiedName,
  type TocEntry,
  type TocListing,
  type TocProblem,
} from '../pgtoc/listing';

export const DUMP_SCHEME = 'kadi-dump';
export const LISTING_LANGUAGE = 'pg-toc-listing';

export interface ListingOrigin {
  host: string;
  set: string;
}

const SET_RE = /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$/;

/** `/<host>/<set>/db.toc` — the path of a `kadi-dump:` document. */
export function listingPath(o: ListingOrigin): string {
  return `/${encodeURIComponent(o.host)}/${o.set}/db.toc`;
}

export function parseListingPath(p: string): ListingOrigin | undefined {
  const m = /^\/([^/]+)\/([^/]+)\/db\.toc$/.exec(p);
  if (!m || !SET_RE.test(m[2])) return undefined;
  try {
    return { host: decodeURIComponent(m[1]), set: m[2] };
  } catch {
    return undefined;
  }
}

/**
 * First line of an editable copy. A ';' line is a comment to pg_restore, so the copy stays a valid
 * listing while remembering which dump it was made from, even after it is saved to disk.
 */
const ORIGIN_PREFIX = '; kadi-ops-origin: ';

export function originLine(o: ListingOrigin): string {
  return `${ORIGIN_PREFIX}host=${encodeURIComponent(o.host)} set=${o.set}`;
}

export function findOrigin(text: string): ListingOrigin | undefined {
  for (const line of text.split('\n', 50)) {
    if (!line.startsWith(ORIGIN_PREFIX)) continue;
    const m = /host=(\S+) set=(\S+)/.exec(line);
    if (m && SET_RE.test(m[2])) {
      try {
        return { host: decodeURIComponent(m[1]), set: m[2] };
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

export type ListingPreset = { kind: 'full' } | { kind: 'schema-only' } | { kind: 'tables'; tables: QualifiedName[] };

/** The text of an editable copy: origin line, a how-to comment, then the (preset-edited) listing. */
export function editableCopy(listing: TocListing, origin: ListingOrigin, preset: ListingPreset): string {
  const edited = preset.kind === 'schema-only' ? schemaOnly(listing) : preset.kind === 'tables' ? dataOfTables(listing, preset.tables) : listing;
  const what = preset.kind === 'schema-only' ? 'schema only (data entries commented out)' : preset.kind === 'tables' ? `data of ${preset.tables.map((t) => `${t.schema}.${t.name}`).join(', ')}` : 'everything';
  return [
    originLine(origin),
    `; Preset: ${what}. Comment entries out with ';' (or delete them), then run "Kadi Ops: Restore from Listing".`,
    '; Changing an entry is refused: pg_restore -L reads only the dump id and would restore the original object.',
    serializeListing(edited),
  ].join('\n');
}

/** Tables (and sequences) that have data in the dump: the choices of the "data of tables" preset. */
export function tablesWithData(listing: TocListing): (QualifiedName & { desc: string })[] {
  return tocEntries(listing)
    .filter((e) => e.desc === 'TABLE DATA' || e.desc === 'SEQUENCE SET')
    .map((e) => ({ schema: e.schema, name: e.name, desc: e.desc }));
}

// ---------------------------------------------------------------------------------------------
// Outline

export type SymbolKindName = 'namespace' | 'class' | 'interface' | 'variable' | 'key' | 'field' | 'event' | 'array' | 'function' | 'object' | 'module';

export interface ListingSymbol {
  name: string;
  detail: string;
  kind: SymbolKindName;
  /** 0-based line of the defining entry (the selection). */
  line: number;
  /** 0-based first and last line covered, including children. */
  startLine: number;
  endLine: number;
  children: ListingSymbol[];
}

function kindOf(e: TocEntry): SymbolKindName {
  if (e.desc.includes('INDEX')) return 'key';
  if (e.desc.includes('CONSTRAINT')) return 'field';
  if (e.desc === 'TRIGGER' || e.desc === 'EVENT TRIGGER') return 'event';
  if (e.desc.endsWith('DATA') || e.desc === 'SEQUENCE SET' || e.desc.startsWith('BLOB') || e.desc === 'LARGE OBJECT') return 'array';
  if (e.desc === 'FUNCTION' || e.desc === 'PROCEDURE' || e.desc === 'AGGREGATE') return 'function';
  if (e.desc === 'EXTENSION') return 'module';
  return 'object';
}

function relationKind(kind: string): SymbolKindName {
  if (kind === 'VIEW' || kind === 'MATERIALIZED VIEW') return 'interface';
  if (kind === 'SEQUENCE') return 'variable';
  return 'class';
}

function leaf(item: OutlineItem): ListingSymbol {
  const e = item.entry;
  return {
    name: `${e.desc} ${e.name}`,
    detail: `#${e.dumpId}${e.enabled ? '' : ' (commented out)'}`,
    kind: kindOf(e),
    line: item.line,
    startLine: item.line,
    endLine: item.line,
    children: [],
  };
}

function span(line: number, children: ListingSymbol[]): { startLine: number; endLine: number } {
  const lines = [line, ...children.flatMap((c) => [c.startLine, c.endLine])];
  return { startLine: Math.min(...lines), endLine: Math.max(...lines) };
}

/** Schemas → relations (tables, views, sequences) → their indexes, constraints, data, ...; then global entries. */
export function listingSymbols(listing: TocListing): ListingSymbol[] {
  const o = outline(listing);
  const out: ListingSymbol[] = [];
  for (const s of o.schemas) {
    const children: ListingSymbol[] = [];
    for (const r of s.relations) {
      const rc = r.children.map(leaf);
      const line = r.definition?.line ?? rc[0]?.line ?? 0;
      children.push({
        name: r.name,
        detail: `${r.kind}${r.definition ? ` #${r.definition.entry.dumpId}` : ' (no definition in this listing)'}`,
        kind: relationKind(r.kind),
        line,
        ...span(line, rc),
        children: rc,
      });
    }
    children.push(...s.objects.map(leaf));
    if (!s.definition && children.length === 0) continue;
    const line = s.definition?.line ?? children[0].line;
    out.push({ name: s.name, detail: s.definition ? `SCHEMA #${s.definition.entry.dumpId}` : 'schema', kind: 'namespace', line, ...span(line, children), children });
  }
  out.push(...o.global.map(leaf));
  return out;
}

/**
 * Folding: the header comment block, and every run of consecutive entries of one schema (the
 * listing is in restore order, so a schema's tables, then its data, then its indexes form runs).
 */
export function foldingRanges(listing: TocListing): { start: number; end: number }[] {
  const ranges: { start: number; end: number }[] = [];
  let headerEnd = -1;
  while (listing.lines[headerEnd + 1]?.kind === 'header') headerEnd++;
  if (headerEnd > 0) ranges.push({ start: 0, end: headerEnd });
  let runStart = -1;
  let runSchema: string | undefined;
  let lastEntry = -1;
  const close = (): void => {
    if (runStart >= 0 && lastEntry > runStart) ranges.push({ start: runStart, end: lastEntry });
  };
  listing.lines.forEach((l, i) => {
    if (l.kind !== 'entry') return;
    if (l.schema !== runSchema) {
      close();
      runStart = i;
      runSchema = l.schema;
    }
    lastEntry = i;
  });
  close();
  return ranges;
}

/** Hover for the dump id at the start of an entry line: its fields and whether it is enabled. */
export function hoverAt(listing: TocListing, line: number, character: number): { markdown: string; start: number; end: number } | undefined {
  const l = listing.lines[line];
  if (!l || l.kind !== 'entry') return undefined;
  const m = /^(\s*[;\s]*)(\d+)/.exec(l.raw);
  if (!m) return undefined;
  const start = m[1].length;
  const end = start + m[2].length;
  if (character < start || character > end) return undefined;
  const code = (s: string): string => (s === '' ? '*(none)*' : `\`${s.replace(/`/g, "'")}\``);
  const markdown = [
    `**TOC entry ${l.dumpId}** — ${l.enabled ? 'restored' : '*commented out: not restored*'}`,
    '',
    `| | |`,
    `|---|---|`,
    `| desc | ${code(l.desc)} |`,
    `| schema | ${code(l.schema)} |`,
    `| name | ${code(l.name)} |`,
    `| owner | ${code(l.owner)} |`,
    `| table oid / oid | ${l.tableOid} / ${l.oid} |`,
  ].join('\n');
  return { markdown, start, end };
}

/** A refusal message naming every problem line (for a modal's detail). */
export function describeProblems(problems: readonly TocProblem[], limit = 25): string {
  const lines = problems.slice(0, limit).map((p) => `line ${p.line}: ${p.message}`);
  if (problems.length > limit) lines.push(`… and ${problems.length - limit} more`);
  return lines.join('\n');
}

export function problemSummary(problems: readonly TocProblem[]): string {
  const unknown = problems.filter((p) => p.code === 'unknown-id');
  const head = unknown.length
    ? `${unknown.length} unknown dump id(s) on line(s) ${unknown.map((p) => p.line).slice(0, 10).join(', ')}${unknown.length > 10 ? ', …' : ''}`
    : `${problems.length} problem(s) on line(s) ${problems.map((p) => p.line).slice(0, 10).join(', ')}${problems.length > 10 ? ', …' : ''}`;
  return `The listing does not match the dump: ${head}. Nothing was restored.`;
}
