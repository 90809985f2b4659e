import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileHeader, padding, TAR_END, TarExtractor } from '../../src/transfer/tar';
import { checkSetPath, treeFileBatches, treeFiles, treeTotals, UnsafePathError } from '../../src/transfer/setFiles';

function archive(files: [string, Buffer][]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, data] of files) parts.push(fileHeader(name, data.length, 1700000000), data, padding(data.length));
  parts.push(TAR_END);
  return Buffer.concat(parts);
}

async function extract(tar: Buffer, chunkSize: number): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const x = new TarExtractor((name) => {
    const parts: Buffer[] = [];
    return { write: (c) => void parts.push(Buffer.from(c)), end: () => void out.set(name, Buffer.concat(parts)) };
  });
  await new Promise<void>((resolve, reject) => {
    x.on('finish', resolve);
    x.on('error', reject);
    for (let i = 0; i < tar.length; i += chunkSize) x.write(tar.subarray(i, i + chunkSize));
    x.end();
  });
  return out;
}

const longName = `storage/${'a'.repeat(60)}/${'b'.repeat(60)}/ünïcode-file.bin`;
const sample: [string, Buffer][] = [
  ['db.dump', Buffer.from('dump bytes')],
  ['empty', Buffer.alloc(0)],
  ['block', Buffer.alloc(512, 7)],
  [longName, Buffer.alloc(1000, 3)],
];

describe('transfer tar stream', () => {
  it('round-trips files, empty files and long unicode paths in any chunking', async () => {
    const tar = archive(sample);
    for (const size of [1, 7, 512, 100000]) {
      const got = await extract(tar, size);
      assert.deepEqual([...got.keys()], sample.map(([n]) => n));
      for (const [n, d] of sample) assert.ok(got.get(n)?.equals(d), `${n} with chunks of ${size}`);
    }
  });

  it('is readable by GNU tar, and reads what GNU tar writes (long names, hard links dereferenced)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kadi-tar-'));
    try {
      fs.writeFileSync(path.join(dir, 'ours.tar'), archive(sample));
      fs.mkdirSync(path.join(dir, 'x'));
      execFileSync('tar', ['-C', path.join(dir, 'x'), '-xf', path.join(dir, 'ours.tar')]);
      for (const [n, d] of sample) assert.ok(fs.readFileSync(path.join(dir, 'x', n)).equals(d), n);
      fs.linkSync(path.join(dir, 'x', 'block'), path.join(dir, 'x', 'block-link'));
      const names = [...sample.map(([n]) => n), 'block-link'];
      const gnu = execFileSync('tar', ['-C', path.join(dir, 'x'), '--hard-dereference', '-cf', '-', ...names]);
      const got = await extract(gnu, 4096);
      assert.deepEqual([...got.keys()].sort(), [...names].sort());
      assert.ok(got.get(longName)?.equals(Buffer.alloc(1000, 3)));
      assert.ok(got.get('block-link')?.equals(Buffer.alloc(512, 7)));
      const pax = execFileSync('tar', ['-C', path.join(dir, 'x'), '--format=posix', '-cf', '-', longName]);
      assert.ok((await extract(pax, 333)).get(longName)?.equals(Buffer.alloc(1000, 3)));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses links and truncated streams', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kadi-tar-'));
    try {
      fs.symlinkSync('/etc/passwd', path.join(dir, 'evil'));
      const t = execFileSync('tar', ['-C', dir, '-cf', '-', 'evil']);
      await assert.rejects(extract(t, 512), /type 2/);
      const tar = archive(sample);
      await assert.rejects(extract(tar.subarray(0, 1500), 512), /ended early/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('checks set paths and parses file lists', () => {
    for (const bad of ['', '/etc/passwd', '../x', 'a/../b', 'a//b', './a', 'a/', 'a\nb']) assert.throws(() => checkSetPath(bad), UnsafePathError, bad);
    assert.equal(checkSetPath('storage/ab/cd/file'), 'storage/ab/cd/file');
    // The agent's list escapes a Latin-1 byte as a lone surrogate: refused by name, not written as other bytes.
    const latin1 = treeFiles.bind(null, 'storage', '["caf\\udce9.dat", 1, 1, "a"]\n');
    assert.throws(latin1, /the file name "storage\/caf\\udce9\.dat" in the backup set is not UTF-8 on the host/);
    assert.equal(checkSetPath('storage/caf\u00e9 \u{1F600}.dat'), 'storage/caf\u00e9 \u{1F600}.dat', 'UTF-8 names, astral ones included, pass');
    const files = treeFiles('storage', '["a/b", 3, 1, "abc"]\n\n["c", 0, 1, "def"]\n');
    assert.deepEqual(files, [{ path: 'storage/a/b', size: 3, sha256: 'abc' }, { path: 'storage/c', size: 0, sha256: 'def' }]);
    assert.throws(() => treeFiles('storage', '["../x", 1, 1, "a"]'), UnsafePathError);
  });

  it('reads a file list batch by batch, and totals it checking every line', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kadi-list-'));
    try {
      const list = path.join(dir, 'storage.files.jsonl');
      const rows = Array.from({ length: 7 }, (_, i) => JSON.stringify([`d/f${i} \u00fc`, i, 1, `h${i}`]));
      fs.writeFileSync(list, `${rows.slice(0, 4).join('\n')}\n\n${rows.slice(4).join('\n')}`); // a blank line, no final newline
      const batches: string[][] = [];
      for await (const b of treeFileBatches('storage', list, 3)) batches.push(b.map((f) => `${f.path}:${f.size}:${f.sha256}`));
      assert.deepEqual(batches, [
        ['storage/d/f0 \u00fc:0:h0', 'storage/d/f1 \u00fc:1:h1', 'storage/d/f2 \u00fc:2:h2'],
        ['storage/d/f3 \u00fc:3:h3', 'storage/d/f4 \u00fc:4:h4', 'storage/d/f5 \u00fc:5:h5'],
        ['storage/d/f6 \u00fc:6:h6'],
      ]);
      assert.deepEqual(await treeTotals('storage', list), { files: 7, bytes: 21 });
      // With the manifest's sha256: a list that changed since it was checked fails before its last batch.
      const digest = createHash('sha256').update(fs.readFileSync(list)).digest('hex');
      let n = 0;
      for await (const b of treeFileBatches('storage', list, 3, digest)) n += b.length;
      assert.equal(n, 7);
      const seen: number[] = [];
      await assert.rejects(
        (async () => {
          for await (const b of treeFileBatches('storage', list, 3, '0'.repeat(64))) seen.push(b.length);
        })(),
        /storage\.files\.jsonl changed while it was in use/,
      );
      assert.deepEqual(seen, [3, 3], 'the last batch never comes');
      fs.appendFileSync(list, '\n["../../x", 1, 1, "a"]\n');
      await assert.rejects(treeTotals('storage', list), UnsafePathError, 'an unsafe line anywhere fails the totals, before anything moves');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
