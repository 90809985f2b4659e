/** Host profiles, sets and jobs for the tree model tests. */
import type { HostOverview } from '../../src/backup/backupSets';
import type { ArtifactEntry, BackupSet, Manifest } from '../../src/backup/manifest';
import { resolveProfiles } from '../../src/config/hostProfiles';
import type { HostProfile } from '../../src/config/types';
import type { JobInfo } from '../../src/remote/jobs';

export function profile(name = 'prod', extra: Record<string, unknown> = {}): HostProfile {
  const { profiles, errors } = resolveProfiles([{ name, ssh: { host: 'kadi.example.org', user: 'kadi' }, ...extra }], { sshConfigText: '', localUser: 'alice' });
  if (errors.length) throw new Error(JSON.stringify(errors));
  return profiles[0];
}

export const ARTIFACTS: ArtifactEntry[] = [
  { name: 'config.tar.gz', size: 2048, sha256: 'c'.repeat(64) },
  { name: 'db.dump', size: 5 * 1024 * 1024, sha256: 'a'.repeat(64), tocEntries: 51, tables: 7, rows: 1234 },
  { name: 'storage.files.jsonl', size: 300, sha256: 'b'.repeat(64), tree: 'storage', files: 12, bytes: 4096, newFiles: 2, newBytes: 100 },
  { name: 'uploads.tar.zst', size: 999, sha256: 'd'.repeat(64), archiveOf: 'uploads' },
];

export function manifest(): Manifest {
  return {
    formatVersion: 1,
    toolVersion: '0.1.0',
    profile: 'prod',
    hostname: 'kadi.example.org',
    kadiVersion: '1.2.3',
    alembicRevision: 'abc123',
    postgres: { serverMajor: 15 },
    database: { host: '127.0.0.1', port: 5432, name: 'kadi', user: 'kadi' },
    paths: { storage: '/opt/kadi/storage', uploads: '/opt/kadi/uploads', kadiConfig: '/opt/kadi/config/kadi.py' },
    options: { filesMode: 'tree', redis: false },
    startedAt: '2026-11-26T06:37:07Z',
    endedAt: '2026-11-26T06:39:00Z',
    artifacts: ARTIFACTS,
    trees: { storage: { files: 12, bytes: 4096, newFiles: 2, newBytes: 100 } },
  };
}

export function backupSet(name: string, patch: Partial<BackupSet> = {}): BackupSet {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})Z$/.exec(name);
  if (!m) throw new Error(name);
  return { name, time: new Date(`${m[1]}T${m[2]}:${m[3]}:${m[4]}Z`), manifest: manifest(), verify: null, pinned: false, preRestore: false, status: 'unverified', size: 5 * 1024 * 1024, ...patch };
}

export function job(patch: Partial<JobInfo> = {}): JobInfo {
  return { id: '20261126T063700Z-1', kind: 'backup', operator: 'alice', client: 'laptop', started: '2026-11-26T06:37:00Z', command: 'backup', state: 'finished', status: '0', logBytes: 10, ...patch };
}

export function overview(patch: Partial<HostOverview> = {}): HostOverview {
  return { sets: [], partials: [], invalid: [], jobs: [], ...patch };
}
