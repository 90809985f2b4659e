import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KNOWN_DESCS, parseListing, serializeListing, tocEntries, validateAgainst } from '../../src/pgtoc/listing';
import {
  describeProblems,
  editableCopy,
  findOrigin,
  foldingRanges,
  hoverAt,
  listingPath,
  listingSymbols,
  originLine,
  parseListingPath,
  problemSummary,
  tablesWithData,
  type ListingSymbol,
} from '../../src/ui/dumpListingModel';

const ROOT = path.resolve(__dirname, '../../..');
const FIXTURES = path.join(ROOT, 'test/fixtures/pgtoc');
const kadi = fs.readFileSync(path.join(FIXTURES, 'pg15-kadi.txt'), 'utf8');
const origin = { host: 'prod ü/1', set: '2026-11-26T06-37-07Z' };

function flat(symbols: ListingSymbol[]): ListingSymbol[] {
  return symbols.flatMap((s) => [s, ...flat(s.children)]);
}

describe('dump listings in the editor (model)', () => {
  it('kadi-dump paths and origin lines round-trip, odd host names included', () => {
    assert.deepEqual(parseListingPath(listingPath(origin)), origin);
    assert.equal(parseListingPath('/prod/not-a-set/db.toc'), undefined);
    assert.equal(parseListingPath('/prod/2026-11-26T06-37-07Z/../x'), undefined);
    assert.deepEqual(findOrigin(`${originLine(origin)}\n;\n1; 2 3 TABLE public t o\n`), origin);
    assert.equal(findOrigin(kadi), undefined);
  });

  it('an editable copy is the listing plus comment lines, and validates against the original', () => {
    const original = parseListing(kadi);
    const copy = editableCopy(original, origin, { kind: 'full' });
    assert.deepEqual(findOrigin(copy), origin);
    assert.ok(copy.endsWith(kadi), 'the listing itself is unchanged');
    assert.deepEqual(validateAgainst(parseListing(copy), original), []);
  });

  it('presets: schema only comments out data; data of chosen tables keeps only their TABLE DATA', () => {
    const original = parseListing(kadi);
    const schema = parseListing(editableCopy(original, origin, { kind: 'schema-only' }));
    assert.ok(tocEntries(schema).filter((e) => e.desc === 'TABLE DATA').every((e) => !e.enabled));
    assert.ok(tocEntries(schema).filter((e) => e.desc === 'TABLE').every((e) => e.enabled));
    const tables = tablesWithData(original);
    assert.ok(tables.some((t) => t.schema === 'public' && t.name === 'record'));
    const one = parseListing(editableCopy(original, origin, { kind: 'tables', tables: [{ schema: 'public', name: 'record' }] }));
    assert.deepEqual(tocEntries(one).filter((e) => e.enabled).map((e) => `${e.desc} ${e.name}`), ['TABLE DATA record']);
    assert.deepEqual(validateAgainst(one, original), []);
  });

  it('unknown ids are refused with their line numbers', () => {
    const original = parseListing(kadi);
    const edited = editableCopy(original, origin, { kind: 'full' }) + '99999; 0 0 TABLE DATA public evil kadi\n';
    const problems = validateAgainst(parseListing(edited), original);
    const lineNo = edited.split('\n').length - 1;
    assert.deepEqual(problems.map((p) => [p.code, p.line]), [['unknown-id', lineNo]]);
    assert.match(problemSummary(problems), new RegExp(`unknown dump id\\(s\\) on line\\(s\\) ${lineNo}`));
    assert.match(describeProblems(problems), new RegExp(`^line ${lineNo}: Dump id 99999 is not in this dump`));
  });

  it('outline: schemas → tables with their data, defaults and indexes; symbol ranges contain their children', () => {
    for (const name of fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.txt'))) {
      const listing = parseListing(fs.readFileSync(path.join(FIXTURES, name), 'utf8'));
      const symbols = listingSymbols(listing);
      const all = flat(symbols);
      // Every entry appears exactly once as a symbol line (definitions or leaves).
      const entryLines = listing.lines.flatMap((l, i) => (l.kind === 'entry' ? [i] : []));
      const symbolLines = new Set(all.map((s) => s.line));
      for (const i of entryLines) assert.ok(symbolLines.has(i), `${name}: line ${i + 1} has a symbol`);
      const check = (s: ListingSymbol): void => {
        assert.ok(s.startLine <= s.line && s.line <= s.endLine, `${name}: ${s.name}`);
        for (const c of s.children) {
          assert.ok(s.startLine <= c.startLine && c.endLine <= s.endLine, `${name}: ${c.name} inside ${s.name}`);
          check(c);
        }
      };
      symbols.forEach(check);
    }
    const symbols = listingSymbols(parseListing(kadi));
    const pub = symbols.find((s) => s.name === 'public' && s.kind === 'namespace');
    assert.ok(pub);
    const record = pub.children.find((c) => c.name === 'record');
    assert.equal(record?.kind, 'class');
    assert.ok(record?.children.some((c) => c.name === 'TABLE DATA record' && c.kind === 'array'));
    assert.ok(pub.children.some((c) => c.name === 'active_files' && c.kind === 'interface'));
    assert.ok(flat(symbols).some((s) => s.kind === 'key'), 'indexes become key symbols');
  });

  it('folding: the header block and runs of one schema', () => {
    const listing = parseListing(kadi);
    const ranges = foldingRanges(listing);
    assert.equal(ranges[0].start, 0);
    assert.ok(ranges[0].end >= 10);
    for (const r of ranges.slice(1)) {
      assert.ok(r.end > r.start);
      const schemas = new Set(listing.lines.slice(r.start, r.end + 1).flatMap((l) => (l.kind === 'entry' ? [l.schema] : [])));
      assert.equal(schemas.size, 1);
    }
  });

  it('hovers on a dump id show desc, schema, name, owner and whether it is enabled', () => {
    const listing = parseListing(kadi.replace('3409; 0 16402 TABLE DATA public record kadi', ';3409; 0 16402 TABLE DATA public record kadi'));
    const i = listing.lines.findIndex((l) => l.kind === 'entry' && l.dumpId === 3409);
    const h = hoverAt(listing, i, 2);
    assert.ok(h);
    assert.equal(h.start, 1);
    assert.equal(h.end, 5);
    assert.match(h.markdown, /TOC entry 3409/);
    assert.match(h.markdown, /commented out/);
    assert.match(h.markdown, /\| desc \| `TABLE DATA` \|/);
    assert.match(h.markdown, /\| name \| `record` \|/);
    assert.match(h.markdown, /\| owner \| `kadi` \|/);
    assert.equal(hoverAt(listing, i, 30), undefined, 'only on the id');
    assert.equal(hoverAt(listing, 0, 0), undefined, 'not on comments');
  });

  it('serializing the parsed fixture is lossless (what the read-only document shows)', () => {
    assert.equal(serializeListing(parseListing(kadi)), kadi);
  });

  it('the TextMate grammar knows every desc of the parser, longest first, and matches entry lines', () => {
    const g = JSON.parse(fs.readFileSync(path.join(ROOT, 'syntaxes/pg-toc.tmLanguage.json'), 'utf8')) as { scopeName: string; repository: Record<string, { match: string }> };
    assert.equal(g.scopeName, 'source.pg-toc');
    const entry = g.repository.entry.match;
    for (const d of KNOWN_DESCS) assert.ok(entry.includes(d.replace(/ /g, '\\s')), d);
    // The Oniguruma syntax used here is also valid JavaScript: try it on the fixture's entries.
    const re = new RegExp(entry);
    for (const e of tocEntries(parseListing(kadi)).filter((x) => x.enabled)) {
      const m = re.exec(e.raw);
      assert.ok(m, e.raw);
      assert.equal(m[1], String(e.dumpId));
      assert.equal(m[5], e.desc, e.raw);
      assert.equal(m[6], e.schema, e.raw);
    }
    assert.ok(new RegExp(g.repository.comment.match).test(';     dbname: kadi'));
    assert.ok(new RegExp(g.repository.disabled.match).test(';3409; 0 16402 TABLE DATA public record kadi'));
  });
});
