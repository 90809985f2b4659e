/**
 * Values for a standard Kadi4Mat install, so a profile needs only a name and an ssh target.
 * The settings schema in package.json repeats these as `default`s; a unit test keeps them equal.
 */
export const PROFILE_DEFAULTS = {
  ssh: {
    port: 22,
    agent: true,
    knownHostsFile: '~/.ssh/known_hosts',
    keepaliveIntervalSeconds: 15,
    connectTimeoutSeconds: 20,
  },
  runAs: 'direct',
  kadi: {
    user: 'kadi',
    cli: '/opt/kadi/venv/bin/kadi',
    configFile: '/opt/kadi/config/kadi.py',
  },
  backupDir: '/mnt/backups/kadi',
  services: ['apache2', 'kadi-uwsgi', 'kadi-celery', 'kadi-celerybeat'],
  redis: {
    enabled: false,
    dumpPath: '/var/lib/redis/dump.rdb',
    service: 'redis-server',
    cli: 'redis-cli',
    port: 6379,
  },
  backupMaxAgeHours: 26,
  // pg_dump's own default is 6. gzip levels 1-3 use zlib's fast strategy: on Kadi-like metadata
  // level 3 took 0.58x the time of 6 for an 11% larger file (BENCHMARKS.md, section 1a).
  dumpCompression: 3,
  jobHistory: { keepLast: 100, keepDays: 30 },
} as const;

/** Keys OpenSSH tries when neither the profile nor ~/.ssh/config names one (ssh(1) -i). */
export const DEFAULT_IDENTITY_FILES = [
  '~/.ssh/id_rsa',
  '~/.ssh/id_ecdsa',
  '~/.ssh/id_ecdsa_sk',
  '~/.ssh/id_ed25519',
  '~/.ssh/id_ed25519_sk',
] as const;
