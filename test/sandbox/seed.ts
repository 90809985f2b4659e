/**
 * The Kadi-like database schema and seed data of the sandbox, and the matching files on disk:
 * every active `file` row has data at STORAGE_PATH/ab/cd/ef/<rest of uuid> with the row's size
 * and checksum (plain MD5, or Kadi's chunked-upload rule for one file).
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sqlLiteral as q } from './postgres';
import type { Account } from './system';

/** Alembic head revision of Kadi 1.13.0 as the test double knows it. */
export const KADI_HEAD_REVISION = 'a1b2c3d4e5f6';
/** Chunk size used for the seeded chunked upload (its checksum depends on it). */
export const CHUNK_SIZE = 262_144;

export const SCHEMA_SQL = `
CREATE FUNCTION touch_last_modified() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.last_modified := now();
  RETURN NEW;
END $$;

CREATE TABLE alembic_version (
  version_num varchar(32) NOT NULL,
  CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

CREATE TABLE "user" (
  id serial PRIMARY KEY,
  displayname varchar(150) NOT NULL,
  email varchar(256),
  about text NOT NULL DEFAULT '',
  image_name uuid,
  is_sysadmin boolean NOT NULL DEFAULT false,
  state varchar(50) NOT NULL DEFAULT 'active',
  created_at timestamptz NOT NULL DEFAULT now(),
  last_modified timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE record (
  id serial PRIMARY KEY,
  identifier varchar(50) NOT NULL UNIQUE,
  title varchar(150) NOT NULL,
  type varchar(50),
  description text NOT NULL DEFAULT '',
  creator_id integer NOT NULL REFERENCES "user" (id),
  visibility varchar(50) NOT NULL DEFAULT 'private',
  state varchar(50) NOT NULL DEFAULT 'active',
  created_at timestamptz NOT NULL DEFAULT now(),
  last_modified timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE record IS 'Records: the basic resource of Kadi4Mat (sandbox schema).';
CREATE INDEX ix_record_state ON record (state);
CREATE INDEX ix_record_last_modified ON record (last_modified);
CREATE TRIGGER record_touch BEFORE UPDATE ON record FOR EACH ROW EXECUTE FUNCTION touch_last_modified();

CREATE TABLE file (
  id uuid PRIMARY KEY,
  record_id integer NOT NULL REFERENCES record (id),
  creator_id integer NOT NULL,
  name varchar(256) NOT NULL,
  description text NOT NULL DEFAULT '',
  size bigint NOT NULL,
  mimetype varchar(256) NOT NULL DEFAULT 'application/octet-stream',
  checksum varchar(256),
  storage_type varchar(50) NOT NULL DEFAULT 'local',
  state varchar(50) NOT NULL CHECK (state IN ('active', 'inactive', 'deleted')),
  created_at timestamptz NOT NULL DEFAULT now(),
  last_modified timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT uq_file_record_id_name UNIQUE (record_id, name)
);
COMMENT ON COLUMN file.checksum IS 'MD5 of the content; for chunked uploads the MD5 of the chunk MD5s plus -<count>.';
CREATE INDEX ix_file_state ON file (state);

CREATE TABLE upload (
  id uuid PRIMARY KEY,
  record_id integer NOT NULL,
  file_id uuid REFERENCES file (id),
  creator_id integer NOT NULL,
  name varchar(256) NOT NULL,
  size bigint NOT NULL,
  mimetype varchar(256) NOT NULL DEFAULT 'application/octet-stream',
  checksum varchar(256),
  chunk_count integer NOT NULL DEFAULT 1,
  upload_type varchar(50) NOT NULL CHECK (upload_type IN ('direct', 'chunked')),
  storage_type varchar(50) NOT NULL DEFAULT 'local',
  state varchar(50) NOT NULL CHECK (state IN ('active', 'processing', 'inactive')),
  created_at timestamptz NOT NULL DEFAULT now(),
  last_modified timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE chunk (
  id serial PRIMARY KEY,
  upload_id uuid NOT NULL REFERENCES upload (id),
  index integer NOT NULL,
  size bigint NOT NULL,
  checksum varchar(256),
  state varchar(50) NOT NULL DEFAULT 'active'
);

CREATE TABLE task (
  id uuid PRIMARY KEY,
  creator_id integer,
  name varchar(50) NOT NULL,
  arguments jsonb NOT NULL DEFAULT '{}'::jsonb,
  progress integer NOT NULL DEFAULT 0,
  result jsonb,
  state varchar(50) NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_modified timestamptz NOT NULL DEFAULT now()
);

CREATE VIEW active_files AS
  SELECT f.id, f.record_id, f.name, f.size, f.checksum FROM file f WHERE f.state = 'active';
`;

/**
 * What a database administrator adds to a Kadi database on a real server, created as the
 * superuser before the schema: extensions owned by the superuser (pgcrypto, pg_trgm; both trusted,
 * so a database owner could create them too), and a function, a collation and a text search
 * configuration owned by another role (kadi_dba), which Kadi's own objects use. A restore leaves
 * them as they are (the Kadi role, owner of schema public through pg_database_owner, could drop the
 * DBA's objects there and make them again as its own).
 */
export const DBA_SQL = `
CREATE ROLE kadi_dba NOLOGIN;
CREATE EXTENSION pgcrypto;
CREATE EXTENSION pg_trgm;
CREATE FUNCTION public.dba_normalize(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT lower(btrim(t)) $$;
ALTER FUNCTION public.dba_normalize(text) OWNER TO kadi_dba;
GRANT EXECUTE ON FUNCTION public.dba_normalize(text) TO kadi;
COMMENT ON FUNCTION public.dba_normalize(text) IS 'added by the DBA';
CREATE COLLATION public.dba_c FROM "C";
ALTER COLLATION public.dba_c OWNER TO kadi_dba;
COMMENT ON COLLATION public.dba_c IS 'a collation the DBA added';
CREATE TEXT SEARCH CONFIGURATION public.dba_english (COPY = pg_catalog.english);
ALTER TEXT SEARCH CONFIGURATION public.dba_english OWNER TO kadi_dba;
`;

/** A table name with a newline, a schema with quotes, a semicolon, unicode and spaces. */
export const ODD_SCHEMA = 'odd "schema"; ü';
export const ODD_TABLE = 'line\nbreak; "t" ü';
/** A table name that reads like the fields of a TOC line. */
export const TOC_LIKE_TABLE = 'TABLE DATA public x kadi';

/**
 * Objects with legal but unusual identifiers, large objects, views and comments, created as the Kadi
 * role after the schema, so that every backup, verify and restore meets them.
 */
export const ODD_SQL = `
CREATE SCHEMA "odd ""schema""; ü";
COMMENT ON SCHEMA "odd ""schema""; ü" IS 'a schema with a space, quotes, a semicolon and unicode';
CREATE TABLE "odd ""schema""; ü"."line
break; ""t"" ü" (id integer PRIMARY KEY, "tab	col" text, note text NOT NULL DEFAULT public.dba_normalize('  Note '));
INSERT INTO "odd ""schema""; ü"."line
break; ""t"" ü" (id, "tab	col", note) VALUES (1, 'a', 'first'), (2, E'two\nlines', 'zweite ü'), (3, NULL, DEFAULT);
CREATE VIEW "odd ""schema""; ü"."view; of it" AS SELECT id, note FROM "odd ""schema""; ü"."line
break; ""t"" ü";
COMMENT ON VIEW "odd ""schema""; ü"."view; of it" IS 'a view over the table with the newline';
CREATE TABLE public."TABLE DATA public x kadi" (id serial PRIMARY KEY, digest text NOT NULL DEFAULT encode(public.digest('kadi', 'sha256'), 'hex'));
INSERT INTO public."TABLE DATA public x kadi" DEFAULT VALUES;
CREATE INDEX record_title_trgm ON record USING gin (title public.gin_trgm_ops);
CREATE INDEX record_title_fts ON record USING gin (pg_catalog.to_tsvector('public.dba_english'::regconfig, title));
ALTER TABLE public."TABLE DATA public x kadi" ADD COLUMN sort_key text COLLATE public.dba_c DEFAULT 'b';
CREATE TABLE public.attachment_blob (id integer PRIMARY KEY, blob oid NOT NULL);
COMMENT ON TABLE public.attachment_blob IS 'large objects, as some plugins keep them';
INSERT INTO public.attachment_blob VALUES
  (1, lo_from_bytea(0, convert_to('a small large object', 'UTF8'))),
  (2, lo_from_bytea(0, decode(repeat('00ff', 40000), 'hex')));
`;

export interface SeedSummary {
  recordIds: number[];
  /** Active file rows, each with data on disk. */
  activeFileIds: string[];
  /** A 'deleted' row without data (a consistent state for `kadi files check`). */
  deletedFileId: string;
  /** The file whose checksum follows the chunked-upload rule ("<md5>-<count>", CHUNK_SIZE chunks). */
  chunkedFileId: string;
  /** A zero-byte active file. */
  emptyFileId: string;
  uploadIds: string[];
}

/** STORAGE_PATH/ab/cd/ef/<rest>: Kadi's local storage layout for file ids (and chunk ids). */
export function storageFilePath(storagePath: string, id: string): string {
  return path.join(storagePath, id.slice(0, 2), id.slice(2, 4), id.slice(4, 6), id.slice(6));
}

/** MISC_UPLOADS_PATH/ab/cd/<rest> for misc uploads such as profile images. */
export function miscUploadPath(uploadsPath: string, id: string): string {
  return path.join(uploadsPath, id.slice(0, 2), id.slice(2, 4), id.slice(4));
}

export const md5 = (b: Buffer): string => crypto.createHash('md5').update(b).digest('hex');

/** Kadi's checksum of a chunked upload: MD5 over the concatenated binary chunk MD5s, plus -<count>. */
export function chunkedChecksum(content: Buffer, chunkSize = CHUNK_SIZE): string {
  const digests: Buffer[] = [];
  for (let off = 0; off < content.length; off += chunkSize) {
    digests.push(crypto.createHash('md5').update(content.subarray(off, off + chunkSize)).digest());
  }
  return `${md5(Buffer.concat(digests))}-${digests.length}`;
}

/** chown kadi + dirs 750, files 640 over a whole tree, as Kadi's docs prescribe after a restore. */
export function fixTree(dir: string, owner: Account): void {
  fs.chownSync(dir, owner.uid, owner.gid);
  fs.chmodSync(dir, 0o750);
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) fixTree(p, owner);
    else {
      fs.chownSync(p, owner.uid, owner.gid);
      fs.chmodSync(p, 0o640);
    }
  }
}

/** Writes data under a kadi-owned tree, creating (and owning) the intermediate directories. */
export function writeOwned(base: string, file: string, data: Buffer, owner: Account): void {
  const rel = path.relative(base, path.dirname(file));
  let dir = base;
  for (const part of rel ? rel.split(path.sep) : []) {
    dir = path.join(dir, part);
    if (!fs.existsSync(dir)) {
      fs.mkdirSync(dir, { mode: 0o750 });
      fs.chownSync(dir, owner.uid, owner.gid);
      fs.chmodSync(dir, 0o750);
    }
  }
  fs.writeFileSync(file, data, { mode: 0o640 });
  fs.chownSync(file, owner.uid, owner.gid);
  fs.chmodSync(file, 0o640);
}

const USERS = [
  { name: 'Ada Lovelace', email: 'ada@example.org', sysadmin: true },
  { name: 'Jörg Müller', email: 'joerg.mueller@example.org', sysadmin: false },
  { name: "Siobhan O'Neill", email: 'siobhan@example.org', sysadmin: false },
];

const RECORD_TITLES = [
  'Tensile test specimen A-3',
  'XRD scan of sample 17',
  'Battery cycling run 2024-03',
  'SEM images, batch 5',
  'Simulation input: heat transfer',
  'Raman spectra – polymer blend',
  'Calibration data furnace #2',
  'Lab notebook week 12',
  'Nanoindentation map',
  'Dataset for paper "Grain growth"',
];

const EXT = ['csv', 'txt', 'json', 'dat', 'h5', 'png', 'tif', 'xlsx'];
const MIME: Record<string, string> = { csv: 'text/csv', txt: 'text/plain', json: 'application/json', png: 'image/png', tif: 'image/tiff' };

const daysAgo = (d: number): string => new Date(Date.now() - d * 86_400_000).toISOString();

interface FileRow {
  id: string;
  recordId: number;
  creatorId: number;
  name: string;
  size: number;
  checksum: string;
  state: 'active' | 'deleted';
  created: string;
  data?: Buffer;
}

function fileSizes(): number[] {
  // 40 active files: mostly small, three around 1 MB, one empty; index 5 becomes the chunked one.
  return Array.from({ length: 40 }, (_, i) => {
    if (i === 0) return 0;
    if (i === 5) return 3 * CHUNK_SIZE + 1_234 + crypto.randomInt(50_000);
    if (i === 11 || i === 23 || i === 37) return 1_000_000 + crypto.randomInt(100_000);
    return 100 + crypto.randomInt(60_000);
  });
}

function makeFiles(recordIds: number[]): { rows: FileRow[]; chunkedId: string; emptyId: string; deletedId: string } {
  const rows: FileRow[] = fileSizes().map((size, i) => {
    const ext = EXT[i % EXT.length];
    const data = crypto.randomBytes(size);
    const id = crypto.randomUUID();
    return {
      id,
      recordId: recordIds[i % recordIds.length],
      creatorId: (i % USERS.length) + 1,
      name: i === 7 ? "O'Brien notes.txt" : i === 8 ? 'Messung Ü 01.csv' : `measurement_${String(i + 1).padStart(3, '0')}.${ext}`,
      size,
      checksum: i === 5 ? chunkedChecksum(data) : md5(data),
      state: 'active',
      created: daysAgo(300 - i * 7),
      data,
    };
  });
  const deleted: FileRow = {
    id: crypto.randomUUID(),
    recordId: recordIds[0],
    creatorId: 1,
    name: 'superseded_draft.csv',
    size: 4_096,
    checksum: md5(crypto.randomBytes(4_096)),
    state: 'deleted',
    created: daysAgo(200),
  };
  rows.push(deleted);
  return { rows, chunkedId: rows[5].id, emptyId: rows[0].id, deletedId: deleted.id };
}

export interface SeedResult {
  sql: string;
  files: { id: string; data: Buffer }[];
  chunks: { id: string; data: Buffer }[];
  images: { id: string; data: Buffer }[];
  summary: SeedSummary;
}

/** Builds the seed SQL (run as the owner, kadi) and the file contents that go with it. */
export function buildSeed(): SeedResult {
  const images = USERS.slice(0, 2).map(() => ({ id: crypto.randomUUID(), data: fakePng() }));
  const recordIds = RECORD_TITLES.map((_, i) => i + 1);
  const { rows, chunkedId, emptyId, deletedId } = makeFiles(recordIds);
  const sql: string[] = [`INSERT INTO alembic_version (version_num) VALUES (${q(KADI_HEAD_REVISION)});`];

  USERS.forEach((u, i) => {
    const image = images[i] ? `${q(images[i].id)}::uuid` : 'NULL';
    sql.push(`INSERT INTO "user" (id, displayname, email, image_name, is_sysadmin, created_at, last_modified) VALUES (${i + 1}, ${q(u.name)}, ${q(u.email)}, ${image}, ${u.sysadmin}, ${q(daysAgo(400 - i))}, ${q(daysAgo(30))});`);
  });
  RECORD_TITLES.forEach((title, i) => {
    const ts = q(daysAgo(320 - i * 25));
    sql.push(`INSERT INTO record (id, identifier, title, type, description, creator_id, visibility, created_at, last_modified) VALUES (${i + 1}, ${q(`sample-${String(i + 1).padStart(4, '0')}`)}, ${q(title)}, ${q(i % 2 ? 'experiment' : 'dataset')}, ${q(`Seeded record ${i + 1} of the sandbox host.`)}, ${(i % USERS.length) + 1}, ${q(i % 3 ? 'private' : 'public')}, ${ts}, ${ts});`);
  });
  for (const f of rows) {
    const ext = f.name.split('.').pop() ?? '';
    sql.push(`INSERT INTO file (id, record_id, creator_id, name, size, mimetype, checksum, state, created_at, last_modified) VALUES (${q(f.id)}, ${f.recordId}, ${f.creatorId}, ${q(f.name)}, ${f.size}, ${q(MIME[ext] ?? 'application/octet-stream')}, ${q(f.checksum)}, ${q(f.state)}, ${q(f.created)}, ${q(f.created)});`);
  }
  const uploads = seedUploads(sql, rows[5]);
  sql.push(`SELECT setval('user_id_seq', ${USERS.length}), setval('record_id_seq', ${RECORD_TITLES.length});`);

  return {
    sql: sql.join('\n'),
    files: rows.filter((f) => f.data).map((f) => ({ id: f.id, data: f.data as Buffer })),
    chunks: uploads.chunks,
    images,
    summary: {
      recordIds,
      activeFileIds: rows.filter((f) => f.state === 'active').map((f) => f.id),
      deletedFileId: deletedId,
      chunkedFileId: chunkedId,
      emptyFileId: emptyId,
      uploadIds: uploads.ids,
    },
  };
}

/**
 * Uploads that `kadi files check` must consider consistent: a fresh direct upload, a chunked one
 * being merged by a pending task (chunk data on disk), and the finished upload of the chunked file.
 */
function seedUploads(sql: string[], chunkedFile: FileRow): { ids: string[]; chunks: { id: string; data: Buffer }[] } {
  const direct = crypto.randomUUID();
  const processing = crypto.randomUUID();
  const finished = crypto.randomUUID();
  const now = q(new Date().toISOString());
  const chunkData = [crypto.randomBytes(CHUNK_SIZE), crypto.randomBytes(10_000)];
  const total = chunkData.reduce((n, c) => n + c.length, 0);
  sql.push(
    `INSERT INTO upload (id, record_id, creator_id, name, size, upload_type, state, created_at, last_modified) VALUES (${q(direct)}, 2, 2, 'draft.csv', 5000, 'direct', 'active', ${now}, ${now});`,
    `INSERT INTO upload (id, record_id, creator_id, name, size, chunk_count, upload_type, state, created_at, last_modified) VALUES (${q(processing)}, 3, 1, 'cycling_raw.h5', ${total}, 2, 'chunked', 'processing', ${now}, ${now});`,
    ...chunkData.map((c, i) => `INSERT INTO chunk (upload_id, index, size, checksum, state) VALUES (${q(processing)}, ${i}, ${c.length}, ${q(md5(c))}, 'active');`),
    `INSERT INTO task (id, creator_id, name, arguments, progress, state, created_at, last_modified) VALUES (${q(crypto.randomUUID())}, 1, 'kadi.records.merge_chunks', ${q(JSON.stringify({ args: [processing], kwargs: {} }))}, 40, 'pending', ${now}, ${now});`,
    `INSERT INTO upload (id, record_id, file_id, creator_id, name, size, checksum, chunk_count, upload_type, state, created_at, last_modified) VALUES (${q(finished)}, ${chunkedFile.recordId}, ${q(chunkedFile.id)}, ${chunkedFile.creatorId}, ${q(chunkedFile.name)}, ${chunkedFile.size}, ${q(chunkedFile.checksum)}, ${Math.ceil(chunkedFile.size / CHUNK_SIZE)}, 'chunked', 'inactive', ${q(chunkedFile.created)}, ${q(chunkedFile.created)});`,
    `INSERT INTO task (id, creator_id, name, arguments, progress, result, state, created_at, last_modified) VALUES (${q(crypto.randomUUID())}, ${chunkedFile.creatorId}, 'kadi.records.merge_chunks', ${q(JSON.stringify({ args: [finished], kwargs: {} }))}, 100, ${q(JSON.stringify({ file: chunkedFile.id }))}, 'success', ${q(chunkedFile.created)}, ${q(chunkedFile.created)});`,
  );
  return { ids: [direct, processing, finished], chunks: chunkData.map((data, i) => ({ id: `${processing}-${i}`, data })) };
}

/** A PNG signature and header followed by noise: looks like an image to `file`/magic sniffing. */
function fakePng(): Buffer {
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
  return Buffer.concat([sig, crypto.randomBytes(2_000 + crypto.randomInt(20_000))]);
}
