/**
 * Host profile types. `HostProfileInput` is what a user writes (setting `kadiOps.hosts` or a
 * `--config` JSON file); `HostProfile` is the fully resolved form every other layer works with.
 */
import type { HostPlan, PlanMonitoring, PlanOffsite, PlanSchedule } from '../core/plan';

type PlanRetention = NonNullable<HostPlan['retention']>;

/** How commands reach the Kadi user on the host. */
export type RunAsMode = 'direct' | 'sudo';

export interface HostProfileInput {
  name: string;
  ssh: {
    host: string;
    port?: number;
    user?: string;
    identityFile?: string;
    agent?: boolean;
    proxyJump?: string;
    /** Path of the known_hosts file to verify against (default ~/.ssh/known_hosts). */
    knownHostsFile?: string;
    keepaliveIntervalSeconds?: number;
    connectTimeoutSeconds?: number;
  };
  runAs?: RunAsMode;
  kadi?: {
    user?: string;
    cli?: string;
    configFile?: string;
  };
  backupDir?: string;
  services?: string[];
  redis?: {
    enabled?: boolean;
    dumpPath?: string;
    service?: string;
    cli?: string;
    port?: number;
  };
  /** Overrides for values normally discovered from `kadi utils config`. */
  overrides?: {
    database?: { host?: string; port?: number; name?: string; user?: string };
    storagePath?: string;
    uploadsPath?: string;
  };
  /** Warn in the tree when the newest good backup is older than this many hours. */
  backupMaxAgeHours?: number;
  /** gzip level of the database dump (pg_dump -Z), 0-9. */
  dumpCompression?: number;
  /** Finished jobs kept on the host (log and status): the newest keepLast, and all younger than keepDays. */
  jobHistory?: { keepLast?: number; keepDays?: number };
  /** Backups the host runs on its own (`kadi-ops schedule <host>` installs the systemd timer). */
  schedule?: ScheduleInput;
  /** Where scheduled runs report (Healthchecks-style pings, a webhook, ntfy). */
  monitoring?: MonitoringInput;
  /** Off-site copies in a restic repository (`kadi-ops offsite …`). */
  offsite?: OffsiteInput;
}

/** A profile's off-site destination: the plan's. */
export type OffsiteInput = PlanOffsite;

/** A profile's schedule: the plan's (core/plan.ts), with what each run keeps afterwards. */
export type ScheduleInput = PlanSchedule & { retention?: PlanRetention };

/** Where scheduled runs report: the plan's monitoring. */
export type MonitoringInput = PlanMonitoring;

export interface HostProfile {
  name: string;
  ssh: {
    /** Host name or address actually connected to (after ~/.ssh/config HostName). */
    hostName: string;
    /** The alias as written in the profile (used for known_hosts lookups when it is the host name). */
    alias: string;
    port: number;
    user: string;
    identityFiles: string[];
    agent: boolean;
    proxyJump?: string;
    knownHostsFile: string;
    keepaliveIntervalSeconds: number;
    connectTimeoutSeconds: number;
  };
  runAs: RunAsMode;
  kadi: { user: string; cli: string; configFile: string };
  backupDir: string;
  services: string[];
  redis: { enabled: boolean; dumpPath: string; service: string; cli: string; port: number };
  overrides: {
    database: { host?: string; port?: number; name?: string; user?: string };
    storagePath?: string;
    uploadsPath?: string;
  };
  backupMaxAgeHours: number;
  dumpCompression: number;
  jobHistory: { keepLast: number; keepDays: number };
  /** As written (validated); undefined: the host has no schedule. */
  schedule?: ScheduleInput;
  monitoring?: MonitoringInput;
  /** As written (validated); undefined: no off-site copies. */
  offsite?: OffsiteInput;
}
