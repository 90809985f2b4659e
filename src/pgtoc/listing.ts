/**
 * `pg_restore -l` listings: parse, edit and re-emit them without losing a byte.
 *
 * pg_dump prints each entry as `<dumpId>; <tableoid> <oid> <desc> <schema> <tag> <owner>` with no
 * quoting at all (PrintTOCSummary; sanitize_line only turns newlines into spaces), an absent schema
 * as '-' and an absent owner as '' (so such lines end in a space). Desc, schema, tag and owner may all
 * contain spaces, so the fields are recovered with knowledge: desc against pg_dump's object types,
 * schema against the listing's own SCHEMA entries. `pg_restore -L` itself reads only the leading dump
 * id and ignores everything after the first ';', so field parsing is for display and presets, while
 * `raw` stays the source of truth for the bytes.
 */

/** Every `desc` pg_dump (9.x to 18) writes into an archive's TOC. */
export const KNOWN_DESCS: readonly string[] = [
  'ACCESS METHOD', 'ACL', 'AGGREGATE', 'BLOB', 'BLOB METADATA', 'BLOBS', 'CAST', 'CHECK CONSTRAINT',
  'COLLATION', 'COMMENT', 'CONSTRAINT', 'CONVERSION', 'DATABASE', 'DATABASE PROPERTIES', 'DEFAULT',
  'DEFAULT ACL', 'DOMAIN', 'ENCODING', 'EVENT TRIGGER', 'EXTENSION', 'FK CONSTRAINT',
  'FOREIGN DATA WRAPPER', 'FOREIGN SERVER', 'FOREIGN TABLE', 'FUNCTION', 'INDEX', 'INDEX ATTACH',
  'LARGE OBJECT', 'MATERIALIZED VIEW', 'MATERIALIZED VIEW DATA', 'OPERATOR', 'OPERATOR CLASS',
  'OPERATOR FAMILY', 'POLICY', 'PROCEDURAL LANGUAGE', 'PROCEDURE', 'PUBLICATION', 'PUBLICATION TABLE',
  'PUBLICATION TABLES IN SCHEMA', 'ROW SECURITY', 'RULE', 'SCHEMA', 'SEARCHPATH', 'SECURITY LABEL',
  'SEQUENCE', 'SEQUENCE OWNED BY', 'SEQUENCE SET', 'SERVER', 'SHELL TYPE', 'STATISTICS',
  'STATISTICS DATA', 'STDSTRINGS', 'SUBSCRIPTION', 'SUBSCRIPTION TABLE', 'TABLE', 'TABLE ATTACH',
  'TABLE DATA', 'TEXT SEARCH CONFIGURATION', 'TEXT SEARCH DICTIONARY', 'TEXT SEARCH PARSER',
  'TEXT SEARCH TEMPLATE', 'TRANSFORM', 'TRIGGER', 'TYPE', 'USER MAPPING', 'VIEW',
];

const DESCS_LONGEST_FIRST = [...KNOWN_DESCS].sort((a, b) => b.length - a.length || a.localeCompare(b));

export interface TocEntry {
  kind: 'entry';
  dumpId: number;
  tableOid: string;
  oid: string;
  desc: string;
  /** '-' when the object lives in no schema. */
  schema: string;
  /** pg_dump's tag, unquoted; for COMMENT/ACL entries it holds e.g. `TABLE "Weird Table"`. */
  name: string;
  /** '' when pg_dump recorded no owner (extensions, BLOBS). */
  owner: string;
  /** False when the line is commented out with ';'. */
  enabled: boolean;
  /** The physical line, without its '\n' (a '\r' of a CRLF file stays here). */
  raw: string;
}

/**
 * Lines kept verbatim: the comment block before the first entry ('header'), later comments such as
 * `pg_restore -l -v`'s dependency lines, blank lines, and lines that are neither ('unparsed') — which
 * pg_restore would still read a dump id from, so validation reports them.
 */
export interface TocText {
  kind: 'header' | 'comment' | 'blank' | 'unparsed';
  raw: string;
}

export type TocLine = TocEntry | TocText;

export interface TocListing {
  /** One element per physical line, in order. */
  lines: TocLine[];
  /** Whether the text ended with '\n' (pg_restore's output does). */
  finalNewline: boolean;
}

export interface ParseOptions {
  /** Schema names to prefer when splitting fields, in addition to the listing's SCHEMA entries. */
  knownSchemas?: readonly string[];
  /** Role names (possibly with spaces) to recognise at the end of entries. */
  knownOwners?: readonly string[];
}

const ENABLED_RE = /^(\s*)(\d+); (\d+) (\d+) (.*)$/s;
const DISABLED_RE = /^(\s*;[\s;]*)(\d+); (\d+) (\d+) (.*)$/s;
const COMMENT_RE = /^\s*;/;

export function parseListing(text: string, options: ParseOptions = {}): TocListing {
  if (text === '') return { lines: [], finalNewline: false };
  const physical = text.split('\n');
  const finalNewline = physical[physical.length - 1] === '';
  if (finalNewline) physical.pop();

  const ctx = makeContext(physical, options);
  const lines: TocLine[] = [];
  let seenEntry = false;
  for (const raw of physical) {
    const line = parseLine(raw, ctx, seenEntry);
    if (line.kind === 'entry') seenEntry = true;
    lines.push(line);
  }
  return { lines, finalNewline };
}

export function serializeListing(listing: TocListing): string {
  return listing.lines.map((l) => l.raw).join('\n') + (listing.finalNewline ? '\n' : '');
}

/** The line pg_dump would print for these fields (prefixed with ';' when disabled). */
export function formatEntry(e: Omit<TocEntry, 'kind' | 'raw'>): string {
  return `${e.enabled ? '' : ';'}${e.dumpId}; ${e.tableOid} ${e.oid} ${e.desc} ${e.schema} ${e.name} ${e.owner}`;
}

export function tocEntries(listing: TocListing): TocEntry[] {
  return listing.lines.filter((l): l is TocEntry => l.kind === 'entry');
}

/** Entries by dump id; when an id repeats, the first line wins, as it does for `pg_restore -L`. */
export function entriesById(listing: TocListing): Map<number, TocEntry> {
  const byId = new Map<number, TocEntry>();
  for (const e of tocEntries(listing)) if (!byId.has(e.dumpId)) byId.set(e.dumpId, e);
  return byId;
}

/** A copy with the given entries commented in or out; throws on an id the listing does not have. */
export function setEnabled(listing: TocListing, dumpIds: Iterable<number>, enabled: boolean): TocListing {
  const wanted = new Set(dumpIds);
  const present = new Set(tocEntries(listing).map((e) => e.dumpId));
  const missing = [...wanted].filter((id) => !present.has(id));
  if (missing.length > 0) throw new RangeError(`No TOC entries with dump id ${missing.join(', ')}`);
  return mapEntries(listing, (e) => (wanted.has(e.dumpId) ? withEnabled(e, enabled) : e));
}

// ---------------------------------------------------------------------------------------------
// Line parsing

interface Context {
  schemas: string[];
  knownSchemas: Set<string>;
  owners: string[];
}

function makeContext(physical: string[], options: ParseOptions): Context {
  const owners = [...new Set(options.knownOwners ?? [])].filter((o) => o !== '').sort((a, b) => b.length - a.length);
  const known = new Set<string>(['public', 'pg_catalog', ...(options.knownSchemas ?? [])]);
  // SCHEMA entries name the schemas that other entries' fields start with.
  for (const raw of physical) {
    const m = ENABLED_RE.exec(stripCr(raw)) ?? DISABLED_RE.exec(stripCr(raw));
    const rest = m?.[5];
    if (rest === undefined || !rest.startsWith('SCHEMA - ')) continue;
    const split = splitNameOwner(rest.slice('SCHEMA - '.length), owners);
    if (split && split.name !== '') known.add(split.name);
  }
  return { schemas: [...known].sort((a, b) => b.length - a.length), knownSchemas: known, owners };
}

function parseLine(raw: string, ctx: Context, seenEntry: boolean): TocLine {
  const text = stripCr(raw);
  const enabled = ENABLED_RE.exec(text);
  const m = enabled ?? DISABLED_RE.exec(text);
  if (m) {
    const fields = parseFields(m[5], ctx);
    if (fields) {
      return { kind: 'entry', dumpId: Number(m[2]), tableOid: m[3], oid: m[4], ...fields, enabled: enabled !== null, raw };
    }
  }
  if (text.trim() === '') return { kind: 'blank', raw };
  if (COMMENT_RE.test(text)) return { kind: seenEntry ? 'comment' : 'header', raw };
  return { kind: 'unparsed', raw };
}

interface Fields {
  desc: string;
  schema: string;
  name: string;
  owner: string;
}

/**
 * Splits `<desc> <schema> <name> <owner>`. Candidates are tried longest desc first and the best one
 * wins: a split that has an owner separator beats one that needs the owner to be absent (a line whose
 * trailing space an editor trimmed), and a known schema ('-', a SCHEMA entry, public) beats an unknown
 * one. That separates `TABLE DATA public t o` from `TABLE DATA t o` (a table in a schema called DATA).
 */
function parseFields(rest: string, ctx: Context): Fields | undefined {
  let best: { fields: Fields; score: number } | undefined;
  for (const desc of descCandidates(rest)) {
    const after = rest.slice(desc.length + 1);
    for (const { schema, known } of schemaCandidates(after, ctx)) {
      const tail = after.slice(schema.length + 1);
      if (tail === '') continue;
      const split = splitNameOwner(tail, ctx.owners) ?? { name: tail, owner: '' };
      const score = (tail.includes(' ') ? 2 : 0) + (known ? 1 : 0);
      if (!best || score > best.score) best = { fields: { desc, schema, ...split }, score };
    }
  }
  return best?.fields;
}

function descCandidates(rest: string): string[] {
  const known = DESCS_LONGEST_FIRST.filter((d) => rest.startsWith(d + ' '));
  if (known.length > 0) return known;
  // A desc from a newer pg_dump: some prefix of the leading run of upper-case words.
  const words = /^[A-Z][A-Z_]*(?: [A-Z][A-Z_]*)*/.exec(rest)?.[0].split(' ') ?? [];
  return words.map((_, i) => words.slice(0, words.length - i).join(' ')).filter((d) => rest.startsWith(d + ' '));
}

function schemaCandidates(after: string, ctx: Context): { schema: string; known: boolean }[] {
  const out: { schema: string; known: boolean }[] = [];
  if (after.startsWith('- ')) out.push({ schema: '-', known: true });
  for (const s of ctx.schemas) if (after.startsWith(s + ' ')) out.push({ schema: s, known: true });
  const space = after.indexOf(' ');
  if (space > 0) {
    const first = after.slice(0, space);
    if (!out.some((c) => c.schema === first)) out.push({ schema: first, known: ctx.knownSchemas.has(first) });
  }
  return out;
}

function splitNameOwner(tail: string, owners: readonly string[]): { name: string; owner: string } | undefined {
  for (const owner of owners) {
    if (tail.endsWith(' ' + owner)) return { name: tail.slice(0, tail.length - owner.length - 1), owner };
  }
  const space = tail.lastIndexOf(' ');
  if (space < 0) return undefined;
  return { name: tail.slice(0, space), owner: tail.slice(space + 1) };
}

function stripCr(raw: string): string {
  return raw.endsWith('\r') ? raw.slice(0, -1) : raw;
}

function withEnabled(e: TocEntry, enabled: boolean): TocEntry {
  if (e.enabled === enabled) return e;
  const raw = enabled ? e.raw.replace(/^\s*;[\s;]*/, '') : ';' + e.raw;
  return { ...e, enabled, raw };
}

function mapEntries(listing: TocListing, f: (e: TocEntry) => TocEntry): TocListing {
  return { ...listing, lines: listing.lines.map((l) => (l.kind === 'entry' ? f(l) : l)) };
}

/** An entry's text after any commenting-out, without trailing blanks an editor may have trimmed. */
function entryBody(e: TocEntry): string {
  return stripCr(e.raw).replace(/^\s*;[\s;]*/, '').replace(/^\s+/, '').trimEnd();
}

// ---------------------------------------------------------------------------------------------
// Validation of an edited listing

export interface TocProblem {
  /** 1-based line number in the edited listing. */
  line: number;
  code: 'unknown-id' | 'altered' | 'duplicate-id' | 'unparsed';
  dumpId?: number;
  message: string;
}

/**
 * What makes an edited listing unsafe to hand to `pg_restore -L`: only commenting out, uncommenting,
 * deleting and reordering the original's entries (and editing comments) is allowed. An altered line
 * would still restore the ORIGINAL object of its dump id, so it is an error, not a rename.
 */
export function validateAgainst(edited: TocListing, original: TocListing): TocProblem[] {
  const originals = entriesById(original);
  const seen = new Map<number, number>();
  const problems: TocProblem[] = [];
  edited.lines.forEach((l, i) => {
    const line = i + 1;
    if (l.kind === 'unparsed') {
      problems.push({ line, code: 'unparsed', message: `Line ${line} is neither a comment nor a TOC entry; pg_restore would try to read a dump id from it. Delete it or start it with ';'.` });
      return;
    }
    if (l.kind !== 'entry') return;
    const first = seen.get(l.dumpId);
    if (first !== undefined) {
      problems.push({ line, code: 'duplicate-id', dumpId: l.dumpId, message: `Dump id ${l.dumpId} appears again (first on line ${first}); keep one line per entry.` });
      return;
    }
    seen.set(l.dumpId, line);
    const orig = originals.get(l.dumpId);
    if (!orig) {
      problems.push({ line, code: 'unknown-id', dumpId: l.dumpId, message: `Dump id ${l.dumpId} is not in this dump.` });
    } else if (entryBody(orig) !== entryBody(l)) {
      problems.push({ line, code: 'altered', dumpId: l.dumpId, message: `Entry ${l.dumpId} was changed; pg_restore would still restore "${entryBody(orig)}". Undo the change.` });
    }
  });
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Presets

/** Entries that carry or create data rather than schema (what pg_dump --schema-only leaves out). */
const DATA_DESCS = new Set(['TABLE DATA', 'SEQUENCE SET', 'BLOBS', 'BLOB', 'BLOB METADATA', 'LARGE OBJECT', 'MATERIALIZED VIEW DATA']);
const ANNOTATION_DESCS = new Set(['COMMENT', 'ACL', 'SECURITY LABEL']);

export function isDataEntry(e: TocEntry): boolean {
  // A comment or grant on a large object fails once the large object itself is skipped.
  return DATA_DESCS.has(e.desc) || (ANNOTATION_DESCS.has(e.desc) && e.name.startsWith('LARGE OBJECT '));
}

/** Disables table data, sequence values, large objects and materialized-view refreshes. */
export function schemaOnly(listing: TocListing): TocListing {
  return mapEntries(listing, (e) => (isDataEntry(e) ? withEnabled(e, false) : e));
}

export interface QualifiedName {
  schema: string;
  name: string;
}

/**
 * Only the data of these tables (TABLE DATA; a sequence named here selects its SEQUENCE SET), every
 * other entry disabled: a data-only restore into an existing schema.
 */
export function dataOfTables(listing: TocListing, tables: readonly QualifiedName[]): TocListing {
  const wanted = new Set(tables.map(qualifiedKey));
  return mapEntries(listing, (e) => withEnabled(e, (e.desc === 'TABLE DATA' || e.desc === 'SEQUENCE SET') && wanted.has(qualifiedKey(e))));
}

/** The requested tables that have no TABLE DATA or SEQUENCE SET entry in the listing. */
export function missingTables(listing: TocListing, tables: readonly QualifiedName[]): QualifiedName[] {
  const present = new Set(tocEntries(listing).filter((e) => e.desc === 'TABLE DATA' || e.desc === 'SEQUENCE SET').map(qualifiedKey));
  return tables.filter((t) => !present.has(qualifiedKey(t)));
}

function qualifiedKey(q: QualifiedName): string {
  return JSON.stringify([q.schema, q.name]);
}

// ---------------------------------------------------------------------------------------------
// Outline: schema → relations → the entries that belong to them

export interface OutlineItem {
  entry: TocEntry;
  /** 0-based index into `listing.lines`, i.e. the document line. */
  line: number;
}

export interface OutlineRelation {
  schema: string;
  name: string;
  /** TABLE, VIEW, MATERIALIZED VIEW, FOREIGN TABLE or SEQUENCE. */
  kind: string;
  /** The defining entry; absent in data-only listings. */
  definition?: OutlineItem;
  children: OutlineItem[];
}

export interface OutlineSchema {
  name: string;
  definition?: OutlineItem;
  relations: OutlineRelation[];
  /** Functions, types, domains, default ACLs, unattached indexes, comments on the schema, ... */
  objects: OutlineItem[];
}

export interface TocOutline {
  schemas: OutlineSchema[];
  /** Entries outside any schema: extensions, large objects, event triggers, the database. */
  global: OutlineItem[];
}

const RELATION_DESCS = new Set(['TABLE', 'VIEW', 'MATERIALIZED VIEW', 'FOREIGN TABLE', 'SEQUENCE']);
/** Tag is the relation's name; value: the relation kind to assume when its definition is absent. */
const SAME_NAME_DESCS = new Map([
  ['TABLE DATA', 'TABLE'], ['MATERIALIZED VIEW DATA', 'MATERIALIZED VIEW'], ['SEQUENCE SET', 'SEQUENCE'],
  ['SEQUENCE OWNED BY', 'SEQUENCE'], ['ROW SECURITY', 'TABLE'], ['TABLE ATTACH', 'TABLE'],
]);
/** Tag is `<relation> <object>`. */
const RELATION_PREFIXED_DESCS = new Set(['CONSTRAINT', 'FK CONSTRAINT', 'CHECK CONSTRAINT', 'TRIGGER', 'DEFAULT', 'RULE', 'POLICY']);
const INDEX_DESCS = new Set(['INDEX', 'INDEX ATTACH']);

export function outline(listing: TocListing): TocOutline {
  const items: OutlineItem[] = [];
  listing.lines.forEach((l, line) => {
    if (l.kind === 'entry') items.push({ entry: l, line });
  });
  const schemas = new Map<string, OutlineSchema>();
  const schemaNode = (name: string): OutlineSchema => {
    let s = schemas.get(name);
    if (!s) schemas.set(name, (s = { name, relations: [], objects: [] }));
    return s;
  };
  const relationNode = (schema: string, name: string, kind: string): OutlineRelation => {
    const s = schemaNode(schema);
    let r = s.relations.find((x) => x.name === name);
    if (!r) s.relations.push((r = { schema, name, kind, children: [] }));
    return r;
  };

  const definitions = new Set<OutlineItem>();
  for (const item of items) {
    const e = item.entry;
    if (e.desc === 'SCHEMA' && e.schema === '-') {
      schemaNode(e.name).definition ??= item;
      definitions.add(item);
    } else if (RELATION_DESCS.has(e.desc) && e.schema !== '-') {
      const r = relationNode(e.schema, e.name, e.desc);
      if (!r.definition) {
        r.definition = item;
        definitions.add(item);
      }
    }
  }

  // Index tags carry no table name; guess it from the usual naming (`<table>_..`, `ix_<table>_..`).
  const indexOwner = new Map<string, OutlineRelation>();
  for (const { entry: e } of items) {
    if (e.desc !== 'INDEX' || e.schema === '-') continue;
    const r = relationForIndex(e.name, schemaNode(e.schema).relations);
    if (r) indexOwner.set(qualifiedKey(e), r);
  }

  const global: OutlineItem[] = [];
  for (const item of items) {
    if (definitions.has(item)) continue;
    const e = item.entry;
    if (e.schema === '-') {
      const target = ANNOTATION_DESCS.has(e.desc) ? annotatedSchema(e.name) : undefined;
      if (target !== undefined) schemaNode(target).objects.push(item);
      else global.push(item);
      continue;
    }
    const s = schemaNode(e.schema);
    const r = relationFor(e, s, indexOwner, relationNode);
    if (r) r.children.push(item);
    else s.objects.push(item);
  }
  return { schemas: [...schemas.values()], global };
}

function relationFor(
  e: TocEntry,
  s: OutlineSchema,
  indexOwner: Map<string, OutlineRelation>,
  relationNode: (schema: string, name: string, kind: string) => OutlineRelation,
): OutlineRelation | undefined {
  const assumedKind = SAME_NAME_DESCS.get(e.desc);
  if (assumedKind !== undefined) return relationNode(e.schema, e.name, assumedKind);
  if (RELATION_PREFIXED_DESCS.has(e.desc)) return longestPrefixRelation(e.name, s.relations, [' ']);
  if (INDEX_DESCS.has(e.desc)) return indexOwner.get(qualifiedKey(e)) ?? relationForIndex(e.name, s.relations);
  if (ANNOTATION_DESCS.has(e.desc)) {
    const target = annotatedObject(e.name);
    if (!target) return undefined;
    if (target.index) return indexOwner.get(qualifiedKey({ schema: e.schema, name: target.relation }));
    return s.relations.find((r) => r.name === target.relation);
  }
  return undefined;
}

function longestPrefixRelation(tag: string, relations: readonly OutlineRelation[], separators: readonly string[]): OutlineRelation | undefined {
  let best: OutlineRelation | undefined;
  for (const r of relations) {
    if (separators.some((sep) => tag.startsWith(r.name + sep)) && (!best || r.name.length > best.name.length)) best = r;
  }
  return best;
}

function relationForIndex(index: string, relations: readonly OutlineRelation[]): OutlineRelation | undefined {
  const indexable = relations.filter((r) => r.kind === 'TABLE' || r.kind === 'MATERIALIZED VIEW');
  for (const candidate of [index, index.replace(/^(ix|idx|uq)_/, '')]) {
    const r = longestPrefixRelation(candidate, indexable, ['_', ' ']);
    if (r) return r;
  }
  return undefined;
}

/** `SCHEMA audit` (the tag of a COMMENT/ACL on a schema) → `audit`. */
function annotatedSchema(tag: string): string | undefined {
  if (!tag.startsWith('SCHEMA ')) return undefined;
  return readIdentifier(tag, 'SCHEMA '.length)?.value;
}

/**
 * The relation a COMMENT/ACL/SECURITY LABEL tag is about: `TABLE "Weird Table"`,
 * `COLUMN "Weird Table"."Mixed Col"`, `CONSTRAINT c ON t`, `INDEX i` (then `index` is set).
 */
function annotatedObject(tag: string): { relation: string; index?: true } | undefined {
  const m = /^(MATERIALIZED VIEW|FOREIGN TABLE|TABLE|VIEW|SEQUENCE|COLUMN|INDEX|CONSTRAINT|TRIGGER|RULE|POLICY) /.exec(tag);
  if (!m) return undefined;
  const first = readIdentifier(tag, m[0].length);
  if (!first) return undefined;
  switch (m[1]) {
    case 'INDEX':
      return { relation: first.value, index: true };
    case 'CONSTRAINT':
    case 'TRIGGER':
    case 'RULE':
    case 'POLICY': {
      if (!tag.startsWith(' ON ', first.end)) return undefined;
      const on = readIdentifier(tag, first.end + 4);
      return on ? { relation: on.value } : undefined;
    }
    default:
      return { relation: first.value };
  }
}

/** Reads one SQL identifier (quoted with "" escapes, or bare up to '.' or ' ') starting at `pos`. */
function readIdentifier(s: string, pos: number): { value: string; end: number } | undefined {
  if (s[pos] === '"') {
    let value = '';
    for (let i = pos + 1; i < s.length; i++) {
      if (s[i] !== '"') value += s[i];
      else if (s[i + 1] === '"') value += s[i++];
      else return { value, end: i + 1 };
    }
    return undefined;
  }
  let end = pos;
  while (end < s.length && s[end] !== '.' && s[end] !== ' ') end++;
  return end > pos ? { value: s.slice(pos, end), end } : undefined;
}

// ---------------------------------------------------------------------------------------------
// Dependencies (`pg_restore -l -v`)

const DEPENDS_RE = /^;\s*depends on:((?: \d+)+)\s*$/;

/** Whether LINE is one of the `;	depends on: …` lines that `pg_restore -l -v` prints under an entry. */
export function isDependsLine(l: TocLine): boolean {
  return l.kind === 'comment' && DEPENDS_RE.test(stripCr(l.raw));
}

/** The dump ids each entry depends on, from the `;	depends on: …` lines that `pg_restore -l -v` prints under it. */
export function dependsOn(listing: TocListing): Map<number, number[]> {
  const deps = new Map<number, number[]>();
  let last: TocEntry | undefined;
  for (const l of listing.lines) {
    if (l.kind === 'entry') {
      last = l;
      continue;
    }
    const m = l.kind === 'comment' ? DEPENDS_RE.exec(stripCr(l.raw)) : null;
    if (m && last) deps.set(last.dumpId, [...(deps.get(last.dumpId) ?? []), ...m[1].trim().split(' ').map(Number)]);
  }
  return deps;
}
