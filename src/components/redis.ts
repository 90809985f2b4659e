/** Redis: its snapshot in a set (opt-in), restored with the service stopped. */
import type { ClientComponent } from './types';

export const redis: ClientComponent = {
  name: 'redis',
  planKey: 'redis',
  restoredByDefault: false,
  planPart: (p, opts) => ({ enabled: opts.redis ?? p.redis.enabled, cli: p.redis.cli, port: p.redis.port, dumpPath: p.redis.dumpPath }),
  checkLive({ host, set, probe, blockers, warnings }) {
    if (!set.manifest.artifacts.some((a) => a.name === 'redis.rdb')) blockers.push(`Set ${set.name} has no Redis snapshot.`);
    const rs = probe.services.find((x) => x.name === host.profile.redis.service);
    if (!rs?.exists) blockers.push(`Redis service ${host.profile.redis.service} not found (restoring Redis needs systemd).`);
    else {
      // Every privileged command of a Redis restore, probed before anything changes (agent privileges.py).
      const { service, dumpPath } = host.profile.redis;
      const missing = probe.sudoMissing.filter((m) => m.endsWith(` ${service}`) || m.endsWith(` ${dumpPath}`));
      if (missing.length > 0) blockers.push(`The Kadi user may not run ${missing.map((m) => `"sudo ${m}"`).join(', ')}; add the rules \`kadi-ops sudoers ${host.profile.name}\` prints.`);
    }
    if (probe.redisRefused) blockers.push(`${probe.redisRefused}.`);
    if (probe.redisUnchecked) warnings.push(`${probe.redisUnchecked}.`);
    warnings.push('Restoring Redis replays the Celery tasks that were queued when the backup was taken.');
  },
};
