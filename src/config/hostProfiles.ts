/**
 * Host profiles: validate what the user wrote (settings or --config file), merge it with
 * ~/.ssh/config, fill in the defaults of a standard Kadi install. Entry point of src/config.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import * as c from './checks';
import { PROFILE_DEFAULTS as D } from './defaults';
import { describeValue, type ConfigError } from './errors';
import { displayPath, expandTilde, realFiles, type LocalFiles } from './localFiles';
import { PROFILE_SPEC, validateAgainst } from './profileSpec';
import { computeSshConfig, expandTokens, listSshConfigAliases, type SshConfigContext, type SshConfigValues } from './sshConfig';
import type { HostProfile, HostProfileInput, OffsiteInput } from './types';

export { formatConfigError, type ConfigError } from './errors';
export { ConfigFileError, loadConfigFile } from './configFile';

export interface SshConfigOptions {
  /** ssh_config text; when absent it is read from sshConfigPath (a missing file means no ssh_config). */
  sshConfigText?: string;
  /** Default `<homeDir>/.ssh/config`. */
  sshConfigPath?: string;
  /** Default os.homedir(); `~`, `%d` and relative Include names are resolved against it. */
  homeDir?: string;
  readFile?: (p: string) => string | undefined;
  readDir?: (p: string) => string[] | undefined;
}

export interface ResolveOptions extends SshConfigOptions {
  /** Local login name, for `%u` and as the ssh user in sudo mode when nothing else says. Default os.userInfo(). */
  localUser?: string;
  /** The `kadiOps.backupMaxAgeHours` setting, used by hosts that do not set their own. */
  backupMaxAgeHours?: number;
}

export interface ResolveResult {
  /** The hosts without errors, in the order written. */
  profiles: HostProfile[];
  /** One entry per bad field; a host with any error is left out of `profiles`. */
  errors: ConfigError[];
  /** Problems in ~/.ssh/config that did not stop resolution (e.g. unsupported Include placement). */
  warnings: string[];
}

interface Env {
  ctx: SshConfigContext;
  sshText: string;
  localUser: string;
}

function makeEnv(opts: SshConfigOptions & { localUser?: string }): Env {
  const homeDir = opts.homeDir ?? os.homedir();
  const files: LocalFiles = {
    readFile: opts.readFile ?? realFiles.readFile,
    readDir: opts.readDir ?? realFiles.readDir,
  };
  const configPath = opts.sshConfigPath ?? path.join(homeDir, '.ssh', 'config');
  const sshText = opts.sshConfigText ?? files.readFile(configPath) ?? '';
  return { ctx: { homeDir, files, configPath }, sshText, localUser: opts.localUser ?? localUserName() };
}

function localUserName(): string {
  try {
    return os.userInfo().username;
  } catch {
    return process.env.USER ?? process.env.USERNAME ?? 'root';
  }
}

/**
 * Validates and resolves every host entry. Never throws on bad input: each problem becomes a
 * ConfigError naming the host and field, and the remaining good hosts are still returned.
 */
export function resolveProfiles(inputs: unknown, opts: ResolveOptions = {}): ResolveResult {
  const errors: ConfigError[] = [];
  const warnings = new Set<string>();
  const profiles: HostProfile[] = [];
  if (inputs === undefined || inputs === null) return { profiles, errors, warnings: [] };
  if (!Array.isArray(inputs)) {
    errors.push({ host: '', field: '', message: `The host list must be a list of host objects (got ${describeValue(inputs)})` });
    return { profiles, errors, warnings: [] };
  }
  const globalMaxAge = opts.backupMaxAgeHours ?? D.backupMaxAgeHours;
  const maxAgeProblem = c.maxAgeHours(globalMaxAge);
  if (maxAgeProblem) {
    errors.push({ host: '', field: 'kadiOps.backupMaxAgeHours', message: `kadiOps.backupMaxAgeHours ${maxAgeProblem}` });
  }
  const env = makeEnv(opts);
  const duplicates = duplicateNames(inputs, errors);

  inputs.forEach((entry: unknown, index) => {
    const name = c.isPlainObject(entry) && c.profileName(entry.name) === undefined ? (entry.name as string) : undefined;
    const host = name ?? `#${index + 1}`;
    const report = (field: string, message: string): void => void errors.push({ host, field, message });
    if (!validateAgainst(entry, PROFILE_SPEC, '', report) || (name !== undefined && duplicates.has(envHostSuffix(name)))) return;
    const resolved = resolveOne(entry as HostProfileInput, env, report, maxAgeProblem ? D.backupMaxAgeHours : globalMaxAge);
    resolved.warnings.forEach((w) => warnings.add(w));
    if (resolved.profile) profiles.push(resolved.profile);
  });
  return { profiles, errors, warnings: [...warnings] };
}

/** A host profile's name as an environment variable suffix: upper case, other characters as `_`. */
export function envHostSuffix(host: string): string {
  return host.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

/**
 * Names used more than once: case-insensitively, since the CLI takes them as arguments, and also
 * when they differ only in what is not a letter or digit (prod-a, prod_a, Prod.A), since they would
 * share their secrets' environment variables (envHostSuffix). All entries sharing a name are
 * dropped: guessing which one "prod" means could restore the wrong host, or send one host's
 * password to another.
 */
function duplicateNames(inputs: unknown[], errors: ConfigError[]): Set<string> {
  const positions = new Map<string, { name: string; at: number[] }>();
  inputs.forEach((entry, index) => {
    if (!c.isPlainObject(entry) || c.profileName(entry.name) !== undefined) return;
    const name = entry.name as string;
    const group = positions.get(envHostSuffix(name)) ?? { name, at: [] };
    group.at.push(index + 1);
    positions.set(envHostSuffix(name), group);
  });
  const dup = new Set<string>();
  for (const [key, { name, at }] of positions) {
    if (at.length < 2) continue;
    dup.add(key);
    errors.push({
      host: name,
      field: 'name',
      message: `name ${JSON.stringify(name)} is used by hosts ${at.map((n) => `#${n}`).join(', ')} (names that differ only in case or in characters other than letters and digits count as one: they share the environment variables of their secrets, …_${envHostSuffix(name)}); names must be unique, so none of these hosts is loaded until they are renamed`,
    });
  }
  return dup;
}

type Report = (field: string, message: string) => void;

/** Takes one directive from ssh_config, reporting it (not the profile) as the culprit when it is bad. */
function fromSshConfig<T>(raw: string | undefined, directive: string, field: string, env: Env, report: Report, parse: (s: string) => T | undefined): T | undefined {
  if (raw === undefined) return undefined;
  const value = parse(raw);
  if (value === undefined) {
    report(field, `${directive} ${JSON.stringify(raw)} in ${displayPath(env.ctx.configPath, env.ctx.homeDir)} is not usable for ${field}; fix it there or set ${field} in the profile`);
  }
  return value;
}

const intIn = (min: number, max: number) => (s: string): number | undefined => {
  const n = /^\d+$/.test(s) ? Number(s) : NaN;
  return c.integer(min, max)(n) === undefined ? n : undefined;
};
const passes = (check: c.Check) => (s: string): string | undefined => (check(s) === undefined ? s : undefined);
const stripSlash = (p: string): string => p.replace(/(.)\/+$/, '$1');

function resolveOne(input: HostProfileInput, env: Env, report: Report, globalMaxAge: number): { profile?: HostProfile; warnings: string[] } {
  let bad = false;
  const note: Report = (field, message) => {
    bad = true;
    report(field, message);
  };
  const alias = input.ssh.host;
  const sc: SshConfigValues & { warnings: string[] } =
    // ssh(1) lowercases the destination before matching Host patterns, so "Kadi-Prod" finds "Host kadi-prod".
    env.sshText.trim() === '' ? { identityFiles: [], warnings: [] } : computeSshConfig(alias.toLowerCase(), env.sshText, env.ctx);

  // Profile first, then ssh_config, then the default: "the profile wins".
  const runAs = input.runAs ?? D.runAs;
  const kadiUser = input.kadi?.user ?? D.kadi.user;
  const port = input.ssh.port ?? fromSshConfig(sc.port, 'Port', 'ssh.port', env, note, intIn(1, 65535)) ?? D.ssh.port;
  const configUser = fromSshConfig(sc.user, 'User', 'ssh.user', env, note, passes(c.unixUser));
  // Logging in directly means logging in as the Kadi user; otherwise ssh(1)'s own default applies.
  const user = input.ssh.user ?? configUser ?? (runAs === 'direct' ? kadiUser : env.localUser);
  if (runAs === 'direct' && user !== kadiUser) {
    const source = input.ssh.user !== undefined ? 'ssh.user' : `User in ${displayPath(env.ctx.configPath, env.ctx.homeDir)}`;
    note('runAs', `runAs is "direct" (log in as the Kadi user "${kadiUser}"), but the login user is "${user}" (from ${source}); set runAs to "sudo" to switch users with sudo, or make ssh.user and kadi.user the same account`);
  }
  const hostName =
    fromSshConfig(sc.hostName, 'HostName', 'ssh.host', env, note, (s) => passes(c.sshHost)(expandTokens(s, { h: alias }))) ?? alias;

  const home = env.ctx.homeDir;
  const tokens = { d: home, u: env.localUser, h: hostName, n: alias, p: String(port), r: user };
  // Relative paths are taken relative to the home directory: an extension's working directory is arbitrary.
  const local = (p: string): string => path.resolve(home, expandTilde(expandTokens(p, tokens), home));

  const identityFiles =
    input.ssh.identityFile !== undefined ? [local(input.ssh.identityFile)] : sc.identityFiles.filter((f) => f !== 'none').map(local);
  const jump = input.ssh.proxyJump ?? fromSshConfig(sc.proxyJump, 'ProxyJump', 'ssh.proxyJump', env, note, passes(c.proxyJump));
  const knownHosts =
    input.ssh.knownHostsFile ?? (sc.userKnownHostsFile !== undefined && sc.userKnownHostsFile !== 'none' ? sc.userKnownHostsFile : undefined);
  const keepalive =
    input.ssh.keepaliveIntervalSeconds ??
    fromSshConfig(sc.serverAliveInterval, 'ServerAliveInterval', 'ssh.keepaliveIntervalSeconds', env, note, intIn(0, 3600)) ??
    D.ssh.keepaliveIntervalSeconds;
  const connectTimeout =
    input.ssh.connectTimeoutSeconds ??
    fromSshConfig(sc.connectTimeout, 'ConnectTimeout', 'ssh.connectTimeoutSeconds', env, note, intIn(1, 600)) ??
    D.ssh.connectTimeoutSeconds;

  if (bad) return { warnings: sc.warnings };
  const o = input.overrides;
  const database: HostProfile['overrides']['database'] = { ...o?.database };
  const profile: HostProfile = {
    name: input.name,
    ssh: {
      hostName,
      alias,
      port,
      user,
      identityFiles,
      agent: input.ssh.agent ?? sc.identityAgent?.toLowerCase() !== 'none',
      ...(jump !== undefined && jump !== 'none' ? { proxyJump: jump } : {}),
      knownHostsFile: local(knownHosts ?? D.ssh.knownHostsFile),
      keepaliveIntervalSeconds: keepalive,
      connectTimeoutSeconds: connectTimeout,
    },
    runAs,
    kadi: {
      user: kadiUser,
      cli: input.kadi?.cli ?? D.kadi.cli,
      configFile: input.kadi?.configFile ?? D.kadi.configFile,
    },
    backupDir: stripSlash(input.backupDir ?? D.backupDir),
    services: [...(input.services ?? D.services)],
    redis: {
      enabled: input.redis?.enabled ?? D.redis.enabled,
      dumpPath: input.redis?.dumpPath ?? D.redis.dumpPath,
      service: input.redis?.service ?? D.redis.service,
      cli: input.redis?.cli ?? D.redis.cli,
      port: input.redis?.port ?? D.redis.port,
    },
    overrides: {
      database,
      ...(o?.storagePath !== undefined ? { storagePath: stripSlash(o.storagePath) } : {}),
      ...(o?.uploadsPath !== undefined ? { uploadsPath: stripSlash(o.uploadsPath) } : {}),
    },
    backupMaxAgeHours: input.backupMaxAgeHours ?? globalMaxAge,
    dumpCompression: input.dumpCompression ?? D.dumpCompression,
    jobHistory: { keepLast: input.jobHistory?.keepLast ?? D.jobHistory.keepLast, keepDays: input.jobHistory?.keepDays ?? D.jobHistory.keepDays },
    ...(input.schedule ? { schedule: { ...input.schedule, ...(input.schedule.retention ? { retention: { ...input.schedule.retention } } : {}) } } : {}),
    ...(input.monitoring ? { monitoring: { ...input.monitoring } } : {}),
    ...(input.offsite ? { offsite: JSON.parse(JSON.stringify(input.offsite)) as OffsiteInput } : {}),
  };
  return { profile, warnings: sc.warnings };
}

/** Concrete (non-wildcard) `Host` aliases in ssh_config, Includes followed; candidates for "Add host". */
export function listSshConfigHosts(text: string, opts: Omit<SshConfigOptions, 'sshConfigText'> = {}): string[] {
  return listSshConfigAliases(text, makeEnv({ ...opts, sshConfigText: text }).ctx);
}

/**
 * A minimal profile for an ssh_config alias. Only the alias is stored, so ~/.ssh/config stays the one
 * place HostName/User/Port live. A login user other than "kadi" suggests switching users with sudo.
 */
export function profileFromSshHost(alias: string, sshConfigText: string, opts: Omit<SshConfigOptions, 'sshConfigText'> = {}): HostProfileInput {
  const env = makeEnv({ ...opts, sshConfigText });
  const user = computeSshConfig(alias, sshConfigText, env.ctx).user;
  const profile: HostProfileInput = { name: alias, ssh: { host: alias } };
  if (user !== undefined && user !== D.kadi.user) profile.runAs = 'sudo';
  return profile;
}
