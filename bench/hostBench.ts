/**
 * Extension-side speed: listing 1,000 backup sets of a host (one round trip), and streaming
 * 100 MB of job output through SSH, line splitting and the output batcher. Also reports the
 * bundle sizes. `npm run bench:host`
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hostOverview, startBackup } from '../src/backup/backupSets';
import { MemorySink } from '../src/core/sink';
import { discover } from '../src/kadi/discovery';
import { followJob } from '../src/remote/jobs';
import { LineBatcher } from '../src/ui/lineBatcher';
import { benchHost, median, runBench, timed } from './benchData';

async function main(): Promise<void> {
  const b = await benchHost();
  const { sb, host, uid, gid } = b;
  try {
    const d = await discover(host);
    const out = await followJob(host, await startBackup(host, d), { sink: new MemorySink() });
    if (out.result !== 'succeeded') throw new Error('seed backup failed');
    // 999 more sets: copies of the real set's manifest (what listing reads), as the Kadi user.
    const real = fs.readdirSync(sb.backupDir).find((n) => /^\d{4}-/.test(n)) as string;
    const manifest = fs.readFileSync(path.join(sb.backupDir, real, 'manifest.json'));
    for (let i = 1; i < 1000; i++) {
      const t = new Date(Date.UTC(2024, 0, 1) + i * 3600_000).toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
      const dir = path.join(sb.backupDir, t);
      fs.mkdirSync(dir, { mode: 0o700 });
      fs.writeFileSync(path.join(dir, 'manifest.json'), manifest);
      fs.chownSync(dir, uid, gid);
    }
    const listTimes: number[] = [];
    let count = 0;
    for (let i = 0; i < 5; i++) {
      listTimes.push(
        await timed(async () => {
          count = (await hostOverview(host)).sets.length;
        }),
      );
    }
    // 100 MB of output lines through exec → LineSplitter → LineBatcher (what the output channel gets).
    const bytes = 100 * 1024 * 1024;
    let emitted = 0;
    const batcher = new LineBatcher((text) => (emitted += text.length));
    const streamTimes: number[] = [];
    for (let i = 0; i < 3; i++) {
      streamTimes.push(
        await timed(async () => {
          const r = await host.run({ pipe: [['head', '-c', String(bytes), '/dev/zero'], ['tr', '\\0', 'x'], ['fold', '-w', '99']] }, { sink: { lines: (_s, l) => batcher.push(l) }, collectLimit: 0 });
          batcher.flush();
          if (r.code !== 0) throw new Error('stream failed');
        }),
      );
    }
    const dist = (f: string): string => `${(fs.statSync(path.join(__dirname, '..', '..', 'dist', f)).size / 1024).toFixed(0)} KiB`;
    const lines = [
      '| measure | result | goal |',
      '|---|---:|---:|',
      `| list ${count} sets of a host (one round trip, median of 5) | ${(median(listTimes) * 1000).toFixed(0)} ms | < 1000 ms |`,
      `| stream 100 MB of job output through SSH, line splitting and the output batcher (median of 3) | ${(100 / median(streamTimes)).toFixed(1)} MB/s | ≥ 10 MB/s |`,
      `| bundle size (dist/extension.js, dist/cli.js; development build) | ${dist('extension.js')}, ${dist('cli.js')} | < 1 MB |`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
    if (emitted < bytes) throw new Error(`only ${emitted} characters reached the batcher`);
  } finally {
    await b.stop();
  }
}

runBench(main);
