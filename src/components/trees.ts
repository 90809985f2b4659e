/** A file tree of the instance (STORAGE_PATH, MISC_UPLOADS_PATH): the shared part of storage and uploads. */
import type { Manifest } from '../backup/manifest';
import { quoteArg } from '../core/shellCommand';
import type { ClientComponent, ComponentName } from './types';

/** What a set's tree holds in bytes (a copied tree's files, or an archive's size), 0 when the set has none. */
export function setTreeBytes(m: Manifest, name: 'storage' | 'uploads'): number {
  return m.trees?.[name]?.bytes ?? m.artifacts.find((a) => a.archiveOf === name)?.size ?? 0;
}

export function treeComponent(name: Extract<ComponentName, 'storage' | 'uploads'>, setting: string): ClientComponent {
  return {
    name,
    planKey: name,
    restoredByDefault: true,
    planPart: (p) => {
      const path = name === 'storage' ? p.overrides.storagePath : p.overrides.uploadsPath;
      return path ? { path } : {};
    },
    checkLive({ host, d, set, probe, blockers, warnings, disk }) {
      const live = probe[name];
      if (live.missing) {
        blockers.push(`${setting} does not exist on the host.`);
        return;
      }
      const where = name === 'storage' ? d.facts.storagePath : d.facts.uploadsPath;
      if (live.writable === false) {
        // Its files step would fail after the database step committed: refused before anything runs.
        const user = host.profile.kadi.user;
        blockers.push(
          `${setting} ${where} (owned by ${live.owner ?? '?'}, mode ${live.mode ?? '?'}) cannot be written by ${probe.remoteUser}, so its files cannot be restored. Nothing was changed. As root, run: chown ${quoteArg(user)}: ${quoteArg(where)} && chmod 750 ${quoteArg(where)} (a new disk mounted there is root's until then).`,
        );
        return;
      }
      const m = set.manifest;
      const setBytes = setTreeBytes(m, name);
      disk.push({ where, needBytes: Math.max(0, setBytes - (live.bytes ?? 0)), freeBytes: live.freeBytes });
      if (!m.trees?.[name]) disk.push({ where: `${host.profile.backupDir} (extracting ${name})`, needBytes: setBytes * 3, freeBytes: probe.backupFreeBytes });
      if (live.owner && live.owner !== probe.remoteUser && probe.remoteUser !== 'root') {
        warnings.push(`${name} is owned by ${live.owner}, not by ${probe.remoteUser}: restored files cannot be given to ${live.owner} without root (the restore reports what needs a chown).`);
      }
    },
  };
}
