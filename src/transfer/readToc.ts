/** Reads a set's db.toc (the `pg_restore -l` output saved at backup time) from its host. */
import { checkAgent } from '../remote/agent';
import type { RemoteHost } from '../remote/remoteHost';

export async function readToc(host: RemoteHost, set: string): Promise<string> {
  const r = await checkAgent(host, `Reading the dump listing of ${set}`, 'read-toc', [host.profile.backupDir, set], { collectLimit: 256 * 1024 * 1024 });
  return r.stdout;
}
