/**
 * Dump compression benchmark: `pg_dump -Fc -Z N` at several gzip levels on two kinds of data -
 * the pgbench tables of the other benches (highly compressible) and a Kadi-like metadata table
 * (records with titles, descriptions and JSON extras) - reporting time and size per level. It
 * is what the default of the host profile's `dumpCompression` was chosen from.
 *
 *   npm run bench:dump -- [--scale S] [--rows N] [--runs R] [--levels 6,3,1]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { benchHost, flag, machineLine, median, runBench, timed } from './benchData';

async function main(): Promise<void> {
  const scale = Number(flag('scale', '20'));
  const rows = Number(flag('rows', '1500000'));
  const runs = Number(flag('runs', '3'));
  const levels = flag('levels', '6,3,1,0').split(',').map(Number);
  if (levels.some((l) => !Number.isInteger(l) || l < 0 || l > 9)) throw new Error('--levels: gzip levels 0-9, comma-separated');
  if (!levels.includes(6)) levels.unshift(6); // pg_dump's default: the reference of the ratios
  const b = await benchHost();
  const { sb } = b;
  try {
    const pg = (tool: string): string => path.join(sb.pg.binDir, tool);
    const conn = ['-h', sb.pg.socketDir, '-p', String(sb.pg.port), '-U', 'postgres']; // the sandbox's superuser, over its socket
    await sb.psql('CREATE DATABASE bench_pgbench; CREATE DATABASE bench_metadata;', 'postgres');
    process.stderr.write(`Generating data: pgbench scale ${scale}; ${rows} Kadi-like records…\n`);
    execFileSync(pg('pgbench'), ['-i', '-q', '-s', String(scale), ...conn, 'bench_pgbench'], { stdio: 'ignore' });
    await sb.psql(
      `CREATE TABLE record AS SELECT g AS id, 'record-' || g AS identifier, 'Sample ' || md5(g::text) AS title,
         repeat('tensile test of specimen ' || (g % 97) || ' at ' || (g % 300) || ' K; ', 1 + g % 8) AS description,
         jsonb_build_object('temperature', jsonb_build_object('value', (g::bigint * 7919 % 40000) / 100.0, 'unit', 'K'),
           'operator', 'user' || (g % 50), 'sample', md5((g * 7)::text), 'tags', jsonb_build_array('steel', 'tensile', g % 13)) AS extras,
         timestamp '2026-01-01' + (g || ' minutes')::interval AS created
       FROM generate_series(1, ${rows}) g;
       ALTER TABLE record ADD PRIMARY KEY (id);`,
      'bench_metadata',
    );
    const out = path.join(sb.root, 'dump-bench');
    fs.mkdirSync(out);
    const lines = ['| data | database | level | median time | dump size | time ÷ level 6 | size ÷ level 6 |', '|---|---:|---:|---:|---:|---:|---:|'];
    for (const db of ['bench_pgbench', 'bench_metadata']) {
      const dbBytes = Number((await sb.psql(`select pg_database_size('${db}')`, 'postgres')).trim());
      const times = new Map<number, number[]>(levels.map((l) => [l, []]));
      const sizes = new Map<number, number>();
      for (let i = 0; i < runs; i++) {
        // Levels rotate per run, so no level always runs first (page cache, background work).
        for (const l of [...levels.slice(i % levels.length), ...levels.slice(0, i % levels.length)]) {
          const file = path.join(out, `${db}-${l}.dump`);
          times.get(l)?.push(await timed(async () => void execFileSync(pg('pg_dump'), ['-Fc', '-Z', String(l), ...conn, '-f', file, db])));
          sizes.set(l, fs.statSync(file).size);
        }
      }
      const t6 = median(times.get(6) ?? [NaN]);
      const s6 = sizes.get(6) ?? NaN;
      for (const l of levels) {
        const t = median(times.get(l) ?? []);
        const s = sizes.get(l) ?? 0;
        lines.push(`| ${db === 'bench_pgbench' ? `pgbench scale ${scale}` : `${rows} Kadi-like records`} | ${(dbBytes / 1048576).toFixed(0)} MiB | ${l} | ${t.toFixed(2)} s | ${(s / 1048576).toFixed(1)} MiB | ${(t / t6).toFixed(2)}× | ${(s / s6).toFixed(2)}× |`);
      }
    }
    process.stdout.write([`${runs} runs per level, levels rotating, medians.`, machineLine(), '', ...lines].join('\n') + '\n');
  } finally {
    await b.stop();
  }
}

runBench(main);
