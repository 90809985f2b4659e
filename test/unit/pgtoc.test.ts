import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import {
  KNOWN_DESCS,
  dataOfTables,
  entriesById,
  formatEntry,
  missingTables,
  outline,
  parseListing,
  schemaOnly,
  serializeListing,
  setEnabled,
  tocEntries,
  validateAgainst,
  type TocEntry,
  type TocListing,
} from '../../src/pgtoc/listing';

// Real `pg_restore -l` outputs of PostgreSQL 15 dumps; see test/fixtures/pgtoc/README.md.
const FIXTURES = path.resolve(__dirname, '../../../test/fixtures/pgtoc');
const fixtureNames = fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.txt')).sort();
const fixture = (name: string): string => fs.readFileSync(path.join(FIXTURES, `pg15-${name}.txt`), 'utf8');

function entryByLine(listing: TocListing, startsWith: string): TocEntry {
  const found = tocEntries(listing).filter((e) => e.raw.startsWith(startsWith));
  assert.equal(found.length, 1, `exactly one entry line starts with ${JSON.stringify(startsWith)}`);
  return found[0];
}

function fields(e: TocEntry): Omit<TocEntry, 'kind' | 'raw'> {
  return { dumpId: e.dumpId, tableOid: e.tableOid, oid: e.oid, desc: e.desc, schema: e.schema, name: e.name, owner: e.owner, enabled: e.enabled };
}

const signature = (e: TocEntry): string => JSON.stringify([e.desc, e.schema, e.name, e.owner]);

describe('pg_restore -l listings', () => {
  describe('round trip', () => {
    it('has real fixtures to check', () => {
      assert.ok(fixtureNames.length >= 7, `fixtures: ${fixtureNames.join(', ')}`);
    });

    for (const name of fixtureNames) {
      it(`re-emits ${name} byte for byte and reads every numbered line as an entry`, () => {
        const text = fs.readFileSync(path.join(FIXTURES, name), 'utf8');
        const listing = parseListing(text);
        assert.equal(serializeListing(listing), text);
        const numbered = text.split('\n').filter((l) => /^\d+;/.test(l)).length;
        assert.equal(tocEntries(listing).length, numbered);
        assert.ok(numbered > 0);
        assert.ok(listing.lines.every((l) => l.kind !== 'unparsed'));
      });
    }

    it('keeps CRLF line ends, a missing final newline and blank lines', () => {
      const text = fixture('kadi').replace(/\n/g, '\r\n').replace(/\r\n$/, '') + '\r\n\r\n;\tnote\r\n  \r\n9999; 1259 16421 TABLE public file kadi';
      const listing = parseListing(text);
      assert.equal(serializeListing(listing), text);
      assert.equal(listing.finalNewline, false);
      const file = entryByLine(listing, '9999;');
      assert.equal(file.owner, 'kadi');
      assert.equal(file.name, 'file');
      assert.deepEqual(listing.lines.slice(-4).map((l) => l.kind), ['blank', 'comment', 'blank', 'entry']);
    });

    it('treats empty text as an empty listing', () => {
      assert.deepEqual(parseListing(''), { lines: [], finalNewline: false });
      assert.equal(serializeListing(parseListing('')), '');
      assert.equal(serializeListing(parseListing('\n')), '\n');
    });

    it('round-trips any text at all', () => {
      const piece = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 30 }), fc.constantFrom('\n', '\r\n', ';', '12; 0 0 TABLE public t o', ' ', '-'));
      fc.assert(
        fc.property(fc.array(piece, { maxLength: 20 }), (parts) => {
          const text = parts.join('');
          assert.equal(serializeListing(parseListing(text)), text);
        }),
        { numRuns: 500 },
      );
    });
  });

  describe('fields of real entries', () => {
    const edge = parseListing(fixture('edge'));

    it('classifies the comment block before the first entry as header', () => {
      const head = edge.lines.slice(0, 15);
      assert.ok(head.every((l) => l.kind === 'header'));
      assert.equal(head[13].raw, '; Selected TOC Entries:');
      assert.equal(edge.lines[15].kind, 'entry');
    });

    it('splits schemas, tags and owners that contain spaces, quotes and non-ASCII letters', () => {
      const cases: [string, Partial<TocEntry>][] = [
        ['10;', { desc: 'SCHEMA', schema: '-', name: 'Weird Schema', owner: 'app_owner', tableOid: '2615', oid: '17393' }],
        ['226;', { desc: 'TABLE', schema: 'Weird Schema', name: 'line break', owner: 'app_owner' }],
        ['225;', { desc: 'TABLE', schema: 'Weird Schema', name: 'quo"ted name' }],
        ['3653;', { desc: 'TABLE DATA', schema: 'Weird Schema', name: 'line break', tableOid: '0', oid: '17441' }],
        ['3649;', { desc: 'TABLE DATA', schema: 'public', name: 'Weird Table' }],
        ['224;', { desc: 'TABLE', schema: 'données', name: 'données' }],
        ['3676;', { desc: 'ACL', schema: 'données', name: 'COLUMN "données".id' }],
        ['3499;', { desc: 'FK CONSTRAINT', schema: 'Weird Schema', name: 'quo"ted name quo"ted name_parent_fkey' }],
        ['3500;', { desc: 'TRIGGER', schema: 'public', name: 'Weird Table Weird Table audit' }],
        ['2300;', { desc: 'DEFAULT ACL', schema: 'audit', name: 'DEFAULT PRIVILEGES FOR TABLES' }],
        ['3658;', { desc: 'MATERIALIZED VIEW DATA', schema: 'audit', name: 'log_counts' }],
        ['3675;', { desc: 'SEQUENCE OWNED BY', schema: 'audit', name: 'log_id_seq' }],
        ['3475;', { desc: 'TABLE ATTACH', schema: 'audit', name: 'log_2025' }],
        ['3496;', { desc: 'INDEX ATTACH', schema: 'audit', name: 'log_2025_at_idx' }],
        ['3474;', { desc: 'EVENT TRIGGER', schema: '-', name: 'ddl_note', owner: 'postgres' }],
        ['3681;', { desc: 'COMMENT', schema: '-', name: 'LARGE OBJECT 17486' }],
        ['3659;', { desc: 'BLOB', schema: '-', name: '17486', oid: '17486' }],
        ['1046;', { desc: 'AGGREGATE', schema: 'audit', name: 'concat_all(text)' }],
        ['3646;', { desc: 'ROW SECURITY', schema: 'données', name: 'données' }],
      ];
      for (const [prefix, expected] of cases) {
        const e = entryByLine(edge, prefix);
        assert.equal(e.enabled, true);
        for (const [k, v] of Object.entries(expected)) assert.equal(e[k as keyof TocEntry], v, `${prefix} ${k}`);
      }
    });

    it('reads an absent owner as the empty string (the line ends in a space)', () => {
      const ext = entryByLine(edge, '4;');
      assert.deepEqual([ext.desc, ext.schema, ext.name, ext.owner], ['EXTENSION', '-', 'citext', '']);
      const blobs = entryByLine(edge, '3661;');
      assert.deepEqual([blobs.desc, blobs.schema, blobs.name, blobs.owner], ['BLOBS', '-', 'BLOBS', '']);
      const comment = entryByLine(edge, '3671;');
      assert.deepEqual([comment.name, comment.owner], ['EXTENSION citext', '']);
    });

    it('reads verbose listings: special entries are entries, dependency lines are comments', () => {
      const verbose = parseListing(fixture('edge-verbose'));
      const enc = entryByLine(verbose, '3664;');
      assert.deepEqual([enc.desc, enc.schema, enc.name, enc.owner], ['ENCODING', '-', 'ENCODING', '']);
      assert.equal(entryByLine(verbose, '3667;').desc, 'DATABASE');
      const deps = verbose.lines.filter((l) => l.raw.startsWith(';\tdepends on:'));
      assert.ok(deps.length > 10);
      assert.ok(deps.every((l) => l.kind === 'comment'));
      // With -v every archive entry is listed, so the count matches the header.
      assert.equal(tocEntries(verbose).length, 84);
    });

    it('tells a TABLE in a schema named DATA from TABLE DATA', () => {
      const odd = parseListing(fixture('odd-names'));
      const table = entryByLine(odd, '217;');
      assert.deepEqual([table.desc, table.schema, table.name], ['TABLE', 'DATA', 't']);
      const data = entryByLine(odd, '3349;');
      assert.deepEqual([data.desc, data.schema, data.name], ['TABLE DATA', 'DATA', 't']);
      const tableNamedTable = entryByLine(odd, '3348;');
      assert.deepEqual([tableNamedTable.desc, tableNamedTable.schema, tableNamedTable.name], ['TABLE DATA', 'public', 'TABLE']);
      // Both splits have an owner; the one whose schema the listing defines wins.
      const spaced = entryByLine(parseListing(fixture('odd-names') + '999; 1259 17600 TABLE DATA my table postgres\n'), '999;');
      assert.deepEqual([spaced.desc, spaced.schema, spaced.name], ['TABLE', 'DATA', 'my table']);
    });

    it('needs the role list to split an owner with a space, and keeps the bytes either way', () => {
      const text = fixture('odd-names');
      const guessed = entryByLine(parseListing(text), '215;');
      assert.deepEqual([guessed.name, guessed.owner], ['a;b Data', 'Steward']);
      const told = parseListing(text, { knownOwners: ['Data Steward'] });
      const e = entryByLine(told, '215;');
      assert.deepEqual([e.schema, e.name, e.owner], ['public', 'a;b', 'Data Steward']);
      assert.equal(serializeListing(told), text);
    });

    it('needs a hint for a multi-word schema when the listing has no SCHEMA entries', () => {
      const text = fixture('edge-data-only');
      const guessed = entryByLine(parseListing(text), '3645;');
      assert.deepEqual([guessed.schema, guessed.name], ['Weird', 'Schema line break']);
      const told = entryByLine(parseListing(text, { knownSchemas: ['Weird Schema'] }), '3645;');
      assert.deepEqual([told.desc, told.schema, told.name, told.owner], ['TABLE DATA', 'Weird Schema', 'line break', 'app_owner']);
    });

    it('reads an entry whose trailing space was trimmed as having no owner', () => {
      const e = tocEntries(parseListing('4; 3079 17288 EXTENSION - citext\n'))[0];
      assert.deepEqual([e.desc, e.schema, e.name, e.owner], ['EXTENSION', '-', 'citext', '']);
    });

    it('falls back to the upper-case words for a desc it does not know', () => {
      const listing = parseListing('7; 0 0 FUTURE THING public widget alice\n');
      const e = tocEntries(listing)[0];
      assert.deepEqual([e.desc, e.schema, e.name, e.owner], ['FUTURE THING', 'public', 'widget', 'alice']);
    });

    it('recovers the fields of any generated entry line', () => {
      const token = fc.stringMatching(/^[a-z_àéü][a-z0-9_"$àéü]{0,10}$/);
      const entry = fc.record({
        dumpId: fc.integer({ min: 1, max: 2_000_000_000 }),
        tableOid: fc.nat({ max: 4_294_967_295 }).map(String),
        oid: fc.nat({ max: 4_294_967_295 }).map(String),
        desc: fc.constantFrom(...KNOWN_DESCS),
        schema: fc.oneof(fc.constant('-'), token),
        name: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }).filter((s) => !/[\r\n]/.test(s)),
        owner: fc.oneof(fc.constant(''), token),
        enabled: fc.boolean(),
      });
      fc.assert(
        fc.property(entry, (e) => {
          const line = formatEntry(e);
          const listing = parseListing(line + '\n');
          assert.equal(serializeListing(listing), line + '\n');
          assert.equal(listing.lines.length, 1);
          const parsed = listing.lines[0];
          assert.equal(parsed.kind, 'entry');
          assert.deepEqual(fields(parsed as TocEntry), { ...e });
        }),
        { numRuns: 1000 },
      );
    });
  });

  describe('editing', () => {
    const kadiText = fixture('kadi');
    const kadi = parseListing(kadiText);

    it('comments entries out with a leading semicolon and back in again', () => {
      const off = setEnabled(kadi, [3409, 3410], false);
      const text = serializeListing(off);
      assert.ok(text.includes('\n;3409; 0 16402 TABLE DATA public record kadi\n'));
      assert.ok(text.includes('\n;3410; 0 16421 TABLE DATA public file kadi\n'));
      const reparsed = entriesById(parseListing(text));
      assert.equal(reparsed.get(3409)?.enabled, false);
      assert.equal(reparsed.get(3409)?.name, 'record');
      assert.equal(reparsed.get(3405)?.enabled, true);
      assert.equal(serializeListing(setEnabled(off, [3409, 3410], true)), kadiText);
      // The input listing is left as it was.
      assert.equal(serializeListing(kadi), kadiText);
    });

    it('reads entries a person commented out by hand', () => {
      const listing = parseListing(kadiText.replace('3409; 0', '; 3409; 0').replace('3410; 0', ';;3410; 0'));
      const byId = entriesById(listing);
      assert.equal(byId.get(3409)?.enabled, false);
      assert.equal(byId.get(3410)?.enabled, false);
      assert.equal(byId.get(3409)?.desc, 'TABLE DATA');
      assert.equal(serializeListing(setEnabled(listing, [3409, 3410], true)), kadiText);
    });

    it('refuses to toggle a dump id the listing does not have', () => {
      assert.throws(() => setEnabled(kadi, [3409, 99999], false), /99999/);
    });

    it('keeps the first of two lines with the same dump id, as pg_restore -L does', () => {
      const listing = parseListing('5; 0 0 TABLE public a o\n;5; 0 0 TABLE public a o\n');
      assert.equal(entriesById(listing).get(5)?.enabled, true);
    });
  });

  describe('validating an edited listing', () => {
    const kadiText = fixture('kadi');
    const original = parseListing(kadiText);

    it('accepts commenting out, deleting, reordering and new comments', () => {
      const lines = kadiText.split('\n');
      const edited = [
        '; my notes',
        ...lines.filter((l) => !l.startsWith('3405;')).map((l) => (l.startsWith('3409;') ? ';' + l : l)).reverse(),
        '',
      ].join('\n');
      assert.deepEqual(validateAgainst(parseListing(edited), original), []);
    });

    it('accepts lines whose trailing spaces an editor trimmed', () => {
      const edge = fixture('edge');
      const trimmed = edge.split('\n').map((l) => l.trimEnd()).join('\n');
      assert.notEqual(trimmed, edge);
      assert.deepEqual(validateAgainst(parseListing(trimmed), parseListing(edge)), []);
    });

    it('reports unknown dump ids, altered entries, duplicates and stray lines by line number', () => {
      const edited = parseListing(
        [
          '3409; 0 16402 TABLE DATA public record kadi',
          '99999; 0 0 TABLE DATA public record kadi',
          '3410; 0 16421 TABLE DATA public files kadi',
          ';3409; 0 16402 TABLE DATA public record kadi',
          '3405 please restore this too',
          '',
        ].join('\n'),
      );
      const problems = validateAgainst(edited, original);
      assert.deepEqual(
        problems.map((p) => [p.line, p.code, p.dumpId]),
        [
          [2, 'unknown-id', 99999],
          [3, 'altered', 3410],
          [4, 'duplicate-id', 3409],
          [5, 'unparsed', undefined],
        ],
      );
      assert.match(problems[1].message, /TABLE DATA public file kadi/);
    });
  });

  describe('presets', () => {
    it('schema-only keeps exactly what pg_dump --schema-only dumps', () => {
      const preset = schemaOnly(parseListing(fixture('kadi')));
      const enabled = tocEntries(preset).filter((e) => e.enabled).map(signature).sort();
      const real = tocEntries(parseListing(fixture('kadi-schema-only'))).map(signature).sort();
      assert.deepEqual(enabled, real);
    });

    it('schema-only disables exactly what pg_dump --data-only dumps, plus materialized view refreshes', () => {
      const preset = schemaOnly(parseListing(fixture('edge')));
      const disabled = tocEntries(preset).filter((e) => !e.enabled);
      // A data-only listing has no SCHEMA entries to learn the multi-word schema name from.
      const real = tocEntries(parseListing(fixture('edge-data-only'), { knownSchemas: ['Weird Schema'] })).map(signature).sort();
      assert.deepEqual(disabled.filter((e) => e.desc !== 'MATERIALIZED VIEW DATA').map(signature).sort(), real);
      assert.deepEqual(disabled.filter((e) => e.desc === 'MATERIALIZED VIEW DATA').map((e) => e.name), ['log_counts']);
      assert.ok(disabled.some((e) => e.name === 'LARGE OBJECT 17486'), 'the comment on a skipped large object is skipped too');
    });

    it('data of tables enables only the TABLE DATA of the named tables', () => {
      const listing = parseListing(fixture('edge'));
      const tables = [
        { schema: 'public', name: 'Weird Table' },
        { schema: 'Weird Schema', name: 'line break' },
        { schema: 'public', name: 'Weird Table_id_seq' },
      ];
      const preset = dataOfTables(listing, tables);
      assert.deepEqual(
        tocEntries(preset).filter((e) => e.enabled).map((e) => e.dumpId),
        [3653, 3649, 3686],
      );
      assert.equal(serializeListing(parseListing(serializeListing(preset))), serializeListing(preset));
      assert.deepEqual(missingTables(listing, [...tables, { schema: 'public', name: 'nope' }]), [{ schema: 'public', name: 'nope' }]);
    });
  });

  describe('outline', () => {
    it('groups the Kadi schema into tables with their data, constraints, indexes and triggers', () => {
      const o = outline(parseListing(fixture('kadi')));
      assert.deepEqual(o.schemas.map((s) => s.name), ['public']);
      const pub = o.schemas[0];
      const record = pub.relations.find((r) => r.name === 'record');
      assert.ok(record);
      assert.equal(record.kind, 'TABLE');
      assert.equal(record.definition?.entry.dumpId, 218);
      assert.deepEqual(
        record.children.map((c) => `${c.entry.desc} ${c.entry.name}`),
        [
          'COMMENT TABLE record',
          'DEFAULT record id',
          'TABLE DATA record',
          'CONSTRAINT record record_identifier_key',
          'CONSTRAINT record record_pkey',
          'INDEX ix_record_last_modified',
          'INDEX ix_record_state',
          'TRIGGER record record_touch',
          'FK CONSTRAINT record record_creator_id_fkey',
        ],
      );
      const seq = pub.relations.find((r) => r.name === 'record_id_seq');
      assert.deepEqual(seq?.children.map((c) => c.entry.desc), ['SEQUENCE OWNED BY', 'SEQUENCE SET']);
      assert.deepEqual(pub.objects.map((c) => c.entry.name), ['touch_last_modified()']);
      const file = pub.relations.find((r) => r.name === 'file');
      assert.ok(file?.children.some((c) => c.entry.name === 'COLUMN file.checksum'));
      assert.equal(o.global.length, 0);
    });

    it('attaches by quoted names, partitions and schema comments in the edge-case dump', () => {
      const listing = parseListing(fixture('edge'));
      const o = outline(listing);
      const schema = (n: string) => o.schemas.find((s) => s.name === n);
      const rel = (s: string, n: string) => schema(s)?.relations.find((r) => r.name === n);
      const names = (s: string, n: string) => rel(s, n)?.children.map((c) => `${c.entry.desc} ${c.entry.name}`) ?? [];

      assert.deepEqual(names('public', 'Weird Table'), [
        'COMMENT TABLE "Weird Table"',
        'COMMENT COLUMN "Weird Table"."Mixed Col"',
        'ACL TABLE "Weird Table"',
        'DEFAULT Weird Table id',
        'TABLE DATA Weird Table',
        'CONSTRAINT Weird Table Weird Table_pkey',
        'COMMENT CONSTRAINT "Weird Table_pkey" ON "Weird Table"',
        'INDEX Weird Table idx',
        'COMMENT INDEX "Weird Table idx"',
        'TRIGGER Weird Table Weird Table audit',
        'COMMENT TRIGGER "Weird Table audit" ON "Weird Table"',
      ]);
      assert.ok(names('données', 'données').includes('ACL COLUMN "données".id'));
      assert.ok(names('données', 'données').includes('POLICY données own_rows'));
      assert.ok(names('données', 'données').includes('RULE données no_delete'));
      assert.deepEqual(names('audit', 'log_2025'), ['TABLE ATTACH log_2025', 'TABLE DATA log_2025', 'INDEX log_2025_at_idx', 'INDEX ATTACH log_2025_at_idx']);
      assert.ok(names('audit', 'log').includes('INDEX log_at_idx'));
      assert.equal(schema('audit')?.definition?.entry.dumpId, 12);
      assert.deepEqual(schema('audit')?.objects.slice(0, 2).map((c) => c.entry.name), ['SCHEMA audit', 'SCHEMA audit']);
      assert.equal(rel('Weird Schema', 'line break')?.children.length, 1);
      assert.deepEqual(
        o.global.map((c) => c.entry.desc),
        ['EXTENSION', 'COMMENT', 'EXTENSION', 'COMMENT', 'EXTENSION', 'COMMENT', 'BLOB', 'COMMENT', 'BLOB', 'ACL', 'BLOBS', 'EVENT TRIGGER'],
      );
      // The line numbers point at the entries' lines in the document.
      const first = o.global[0];
      assert.equal(listing.lines[first.line], first.entry);
    });

    for (const name of fixtureNames) {
      it(`places every entry of ${name} exactly once`, () => {
        const listing = parseListing(fs.readFileSync(path.join(FIXTURES, name), 'utf8'));
        const o = outline(listing);
        const placed = [
          ...o.global,
          ...o.schemas.flatMap((s) => [...(s.definition ? [s.definition] : []), ...s.objects, ...s.relations.flatMap((r) => [...(r.definition ? [r.definition] : []), ...r.children])]),
        ].map((i) => i.line);
        assert.deepEqual([...placed].sort((a, b) => a - b), listing.lines.flatMap((l, i) => (l.kind === 'entry' ? [i] : [])));
      });
    }

    it('builds tables from their data alone in a data-only listing', () => {
      const o = outline(parseListing(fixture('edge-data-only')));
      const t = o.schemas.find((s) => s.name === 'public')?.relations.find((r) => r.name === 'Weird Table');
      assert.equal(t?.definition, undefined);
      assert.equal(t?.kind, 'TABLE');
      assert.deepEqual(t?.children.map((c) => c.entry.desc), ['TABLE DATA']);
    });
  });
});
