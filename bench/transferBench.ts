/**
 * Download benchmark: the extension's `downloadSet` (one tar stream over an exec channel of the
 * pooled ssh2 connection, then every received file hashed and checked against the manifest)
 * against OpenSSH on loopback: `scp -r` (SFTP protocol, OpenSSH ≥ 9) and
 * `ssh host tar c | tar x`. Same set, same process, sides rotating, medians; each run writes into
 * a fresh local directory, removed and synced outside the timed part.
 *
 *   npm run bench:transfer -- [--scale S] [--files N] [--file-sizes kadi|large] [--runs R] [--seed X]
 *
 * The OpenSSH commands start a new connection per run (as an operator would); the extension
 * reuses the connection it already has (as the extension does). Throughput = bytes of the set's
 * files / wall time.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildCommand } from '../src/core/shellCommand';
import { downloadSet } from '../src/transfer/transfer';
import { backUpOnce, benchHost, benchOptions, machineLine, median, mib, runBench, seedData, SeededBytes, timed } from './benchData';


/** Runs a local shell command; rejects with its stderr on a non-zero exit. */
function sh(cmd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('sh', ['-c', cmd], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${err.slice(-500)}`))));
  });
}

async function main(): Promise<void> {
  const { scale, files, sizes, runs, seed } = benchOptions({ runs: 3, seed: 'kadi-ops-transfer-bench' });
  const b = await benchHost();
  const { sb, host } = b;
  const localRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'kadi-transfer-bench-'));
  try {
    await seedData(b, { scale, files, sizes, gen: new SeededBytes(seed) });
    const { set } = await backUpOnce(b);
    const du = await host.run({ pipe: [['find', path.join(sb.backupDir, set), '-type', 'f', '!', '-name', '.*', '-printf', '%s\\n'], ['awk', '{n++; s+=$1} END {print n, s}']] });
    const [setFiles, setBytes] = du.stdout.trim().split(' ').map(Number);

    // OpenSSH with the sandbox's key and known_hosts only (no user config, no agent, no multiplexing).
    const sshOpts = ['-F', '/dev/null', '-i', sb.clientKeyFile, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${sb.knownHostsFile}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'ControlMaster=no'];
    const target = `${sb.kadiUser}@127.0.0.1`;
    const sshVersion = spawnSync('ssh', ['-V']).stderr.toString();
    let n = 0;
    const clientGrowth: number[] = [];
    const fresh = (): string => {
      const dir = path.join(localRoot, `run-${n++}`);
      fs.mkdirSync(dir);
      return dir;
    };
    const sides: { name: string; short: string; run: (dir: string) => Promise<void>; times: number[] }[] = [
      {
        name: 'kadi-ops downloadSet (incl. sha256 of every file)',
        short: 'kadi-ops',
        run: async (dir) => {
          // The client's resident memory while it downloads, sampled: it should not grow with the set.
          const before = process.memoryUsage().rss;
          let peak = before;
          const t = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
          const r = await downloadSet(host, set, dir, { withConfig: true }).finally(() => clearInterval(t)); // the whole set, as scp -r would copy it
          clientGrowth.push((Math.max(peak, process.memoryUsage().rss) - before) / 2 ** 20);
          if (r.problems.length || r.files !== setFiles || r.skippedFiles !== 0) {
            throw new Error(`download: ${r.problems.length} problems, ${r.files} files, ${r.skippedFiles} skipped`);
          }
        },
        times: [],
      },
      {
        name: '`scp -r`',
        short: 'scp',
        run: (dir) => sh(buildCommand(['scp', '-q', '-r', '-P', String(sb.sshPort), ...sshOpts, `${target}:${path.join(sb.backupDir, set)}`, dir])),
        times: [],
      },
      {
        name: '`ssh host tar c \\| tar x`',
        short: 'ssh+tar',
        run: (dir) =>
          sh(
            buildCommand({
              pipe: [
                ['ssh', '-p', String(sb.sshPort), ...sshOpts, target, buildCommand(['tar', '-C', sb.backupDir, '-cf', '-', set])],
                ['tar', '-C', dir, '-xf', '-'],
              ],
            }),
          ),
        times: [],
      },
    ];
    const check = async (dir: string): Promise<void> => {
      // One byte per file (a path per file overflowed execFileSync's buffer at 20,000 files).
      const got = execFileSync('find', [dir, '-type', 'f', '!', '-name', '.*', '-printf', 'x']).length;
      if (got !== setFiles) throw new Error(`${got} files arrived, the set has ${setFiles}`);
      fs.rmSync(dir, { recursive: true, force: true });
      execFileSync('sync');
    };
    for (let i = 0; i < runs; i++) {
      // Rotate the order so no side always runs first.
      const order = sides.map((_, k) => sides[(k + i) % sides.length]);
      for (const s of order) {
        const dir = fresh();
        s.times.push(await timed(() => s.run(dir)));
        await check(dir);
      }
      process.stderr.write(`run ${i + 1}: ${sides.map((s) => `${s.short} ${s.times[i].toFixed(2)} s`).join(', ')}\n`);
    }
    const mbps = (t: number): number => setBytes / 1e6 / t;
    const ours = mbps(median(sides[0].times));
    const best = Math.max(...sides.slice(1).map((s) => mbps(median(s.times))));
    process.stdout.write(
      [
        `Data: set ${set} of ${setFiles} files / ${mib(setBytes)} MiB (pgbench scale ${scale} + Kadi tables, ${files} record files; seed "${seed}"); ${runs} rotating runs per side, medians; ${sshVersion.trim()}.`,
        machineLine(),
        '',
        '| download of one set | median time | throughput | kadi-ops ÷ this |',
        '|---|---:|---:|---:|',
        ...sides.map((s) => `| ${s.name} | ${median(s.times).toFixed(2)} s | ${mbps(median(s.times)).toFixed(0)} MB/s | ${(ours / mbps(median(s.times))).toFixed(2)}× |`),
        '',
        `kadi-ops throughput against the faster OpenSSH way: ${(ours / best).toFixed(2)}× (goal ≥ 0.8×).`,
        `Client memory while downloading (resident, sampled every 20 ms, growth over the process before the download): max ${Math.max(...clientGrowth).toFixed(0)} MiB, runs ${clientGrowth.map((x) => x.toFixed(0)).join(' / ')} MiB.`,
      ].join('\n') + '\n',
    );
  } finally {
    fs.rmSync(localRoot, { recursive: true, force: true });
    await b.stop();
  }
}

runBench(main);
