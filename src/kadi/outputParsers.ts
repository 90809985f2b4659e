/**
 * Parsers for what the `kadi` CLI prints (shared/reference/kadi-cli.md). The CLI's exit code lies in
 * both directions — `search reindex` exits 0 after per-object errors, dev-only commands exit 0 having
 * done nothing — so every verdict here comes from the text: a success trailer AND no error lines.
 * Nothing returned carries a secret in the clear: passwords become `Secret`s, URLs are masked.
 */
import type { RedisAuthJson } from '../core/plan';
import { REDACTED, Secret } from '../core/secret';

// ---------------------------------------------------------------------------------------------
// Shared line handling

/** Lines without colours, CR or trailing blanks; leading indentation kept (it marks traceback frames). */
function rawLines(text: string): string[] {
  // Colours are dropped without a terminal, but a forced TERM must not break the parsers.
  return text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').split(/\r?\n/).map((l) => l.trimEnd());
}

function outputLines(text: string): string[] {
  return rawLines(text).map((l) => l.trimStart());
}

const TRACEBACK = 'Traceback (most recent call last):';
/** An exception line without a traceback, e.g. `KeyError: 'SQLALCHEMY_DATABASE_URI'`. */
const PY_EXCEPTION_RE = /^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)(?::.*)?$/;

/**
 * Lines that mean the command as a whole failed: a traceback and its exception line (the first
 * unindented line after the frames), click usage errors, a missing --i-am-sure (the command refused
 * and did nothing), an aborted prompt. URL passwords are masked: exception texts may quote them.
 */
function fatalLines(text: string, isExpectedError: (line: string) => boolean = () => false): string[] {
  const fatal: string[] = [];
  let inTraceback = false;
  for (const raw of rawLines(text)) {
    const line = raw.trimStart();
    if (line === TRACEBACK) {
      fatal.push(line);
      inTraceback = true;
    } else if (inTraceback) {
      if (raw !== line || line === '') continue;
      fatal.push(line);
      inTraceback = false;
    } else if (
      PY_EXCEPTION_RE.test(line) ||
      /--i-am-sure\.$/.test(line) ||
      /(^|\s)Aborted!$/.test(line) ||
      // Python logging lines of Flask-Migrate/alembic, e.g. "ERROR [flask_migrate] Error: Can't locate revision …"
      /^(ERROR|CRITICAL) \[[\w.]+\] /.test(line) ||
      (/^Error\b/.test(line) && !isExpectedError(line))
    ) {
      fatal.push(line);
    }
  }
  return fatal.map(redactUriPasswords);
}

/** The line of `fatal` that says what went wrong: the exception line rather than "Traceback …". */
export function fatalReason(fatal: readonly string[]): string | undefined {
  return [...fatal].reverse().find((l) => l !== TRACEBACK) ?? fatal[0];
}

// ---------------------------------------------------------------------------------------------
// kadi search ls / reindex / remove

export interface SearchIndex {
  name: string;
  /** Set on the live index: the alias (= model name) that points to it. */
  alias?: string;
}

export interface ModelIndices {
  model: string;
  indices: SearchIndex[];
}

export interface SearchLsResult {
  models: ModelIndices[];
  fatal: string[];
  /** At least one model's header and no fatal line: the listing can be trusted, also when it shows no orphans. */
  success: boolean;
}

/** `kadi search ls` with a verdict: a traceback, or output without a single model header, is no listing. */
export function parseSearchLsOutput(text: string): SearchLsResult {
  const models = parseSearchLs(text);
  const fatal = fatalLines(text);
  return { models, fatal, success: models.length > 0 && fatal.length === 0 };
}

export function parseSearchLs(text: string): ModelIndices[] {
  const result: ModelIndices[] = [];
  let current: ModelIndices | undefined;
  for (const line of outputLines(text)) {
    const header = /^Indices for '(.+)':$/.exec(line);
    if (header) {
      current = { model: header[1], indices: [] };
      result.push(current);
      continue;
    }
    const index = /^\*\s+(\S+)(?:\s+\(pointed to by alias '(.+)'\))?$/.exec(line);
    if (index && current) current.indices.push(index[2] === undefined ? { name: index[1] } : { name: index[1], alias: index[2] });
  }
  return result;
}

export interface OrphanedIndex {
  model: string;
  name: string;
}

/**
 * Indices no alias points to: the only ones `kadi search remove` may be given. Never a name that is
 * a model or alias name (removing `record` deletes the LIVE index) and never one with wildcard
 * characters, since `remove` treats its argument as a pattern.
 */
export function orphanedIndices(parsed: readonly ModelIndices[]): OrphanedIndex[] {
  const protectedNames = new Set<string>();
  for (const m of parsed) {
    protectedNames.add(m.model);
    for (const i of m.indices) {
      if (i.alias !== undefined) {
        protectedNames.add(i.alias);
        protectedNames.add(i.name);
      }
    }
  }
  return parsed.flatMap((m) =>
    m.indices
      .filter((i) => i.alias === undefined && !protectedNames.has(i.name) && !/[*?]/.test(i.name))
      .map((i) => ({ model: m.model, name: i.name })),
  );
}

export interface RebuiltIndex {
  model: string;
  newIndex: string;
  oldIndex?: string;
  count?: number;
}

export interface ReindexResult {
  rebuilt: RebuiltIndex[];
  /** Objects that failed to index; the CLI carries on and still exits 0. */
  errors: { model: string; id: string }[];
  fatal: string[];
  success: boolean;
}

export function parseReindexOutput(text: string): ReindexResult {
  const lines = outputLines(text);
  const rebuilt: RebuiltIndex[] = [];
  const errors: { model: string; id: string }[] = [];
  let trailer = false;
  for (const line of lines) {
    let m: RegExpExecArray | null;
    if ((m = /^Populating new index '(.+?)' with (\d+) (.+?)\(s\)\.\.\.$/.exec(line))) {
      rebuilt.push({ model: m[3], newIndex: m[1], count: Number(m[2]) });
    } else if ((m = /^Moved alias '(.+?)' from old index '(.+?)' to new index '(.+?)'\.$/.exec(line))) {
      const [, model, oldIndex, newIndex] = m;
      const entry = rebuilt.find((r) => r.newIndex === newIndex);
      if (entry) entry.oldIndex = oldIndex;
      else rebuilt.push({ model, newIndex, oldIndex });
    } else if ((m = /^Error indexing (.+?) with ID '(.*)'\.$/.exec(line))) {
      errors.push({ model: m[1], id: m[2] });
    } else if (line === 'Search indices rebuilt successfully.') {
      trailer = true;
    }
  }
  const fatal = fatalLines(text, (l) => l.startsWith('Error indexing '));
  return { rebuilt, errors, fatal, success: trailer && errors.length === 0 && fatal.length === 0 };
}

export interface SearchRemoveResult {
  removed: string[];
  /** "No indices found for '<pattern>'." — the CLI exits 1. */
  noneFound: boolean;
  fatal: string[];
  success: boolean;
}

export function parseSearchRemove(text: string): SearchRemoveResult {
  const lines = outputLines(text);
  const removed = lines.flatMap((l) => /^Removing index '(.+)'\.\.\.$/.exec(l)?.[1] ?? []);
  const noneFound = lines.some((l) => /^No indices found for '.*'\.$/.test(l));
  const fatal = fatalLines(text);
  const trailer = lines.includes('Search indices removed successfully.');
  return { removed, noneFound, fatal, success: trailer && !noneFound && fatal.length === 0 };
}

// ---------------------------------------------------------------------------------------------
// kadi files check

export type FileFindingKind = 'mismatched-size' | 'orphaned-active' | 'deleted-with-data' | 'upload' | 'other';

export interface FileFinding {
  /** The CLI's running number, `[n]`. */
  n: number;
  kind: FileFindingKind;
  /** For the three file kinds. */
  fileId?: string;
  /** For findings about uploads. */
  uploadId?: string;
  text: string;
}

export interface FilesCheckResult {
  filesChecked?: number;
  uploadsChecked?: number;
  findings: FileFinding[];
  /** Only with "Files checked successfully." and nothing found, aborted or failed. */
  clean: boolean;
  /**
   * The check ran to its end: it printed "Files checked successfully." or "Found N inconsistencies."
   * and nothing fatal. Only then do `clean`, `reportedCount` and `findings` describe the files.
   */
  completed: boolean;
  /** N of "Found N inconsistencies.". */
  reportedCount?: number;
  /** The resolve prompt was shown. */
  prompted: boolean;
  /** "Aborted!": the prompt got EOF instead of an answer (exit 1). */
  aborted: boolean;
  fatal: string[];
}

const FILE_FINDINGS: [RegExp, FileFindingKind][] = [
  [/^Mismatched size for active file\b/, 'mismatched-size'],
  [/^Found orphaned active file\b/, 'orphaned-active'],
  [/^Found deleted file with associated data\b/, 'deleted-with-data'],
];

export function parseFilesCheck(text: string): FilesCheckResult {
  const lines = outputLines(text);
  const result: FilesCheckResult = { findings: [], clean: false, completed: false, prompted: false, aborted: false, fatal: [] };
  let inUploads = false;
  let trailer = false;
  for (const line of lines) {
    let m: RegExpExecArray | null;
    if ((m = /^Checking (\d+) files\.\.\.$/.exec(line))) {
      result.filesChecked = Number(m[1]);
    } else if ((m = /^Checking (\d+) uploads\.\.\.$/.exec(line))) {
      result.uploadsChecked = Number(m[1]);
      inUploads = true;
    } else if ((m = /^\[(\d+)\]\s+(.*)$/.exec(line))) {
      result.findings.push(classifyFinding(Number(m[1]), m[2], inUploads));
    } else if ((m = /^Found (\d+) inconsistenc(?:y|ies)\.$/.exec(line))) {
      result.reportedCount = Number(m[1]);
    } else if (line === 'Files checked successfully.') {
      trailer = true;
    }
    if (line.startsWith('Do you want to resolve all inconsistencies automatically')) result.prompted = true;
    if (/(^|\s)Aborted!$/.test(line)) result.aborted = true;
  }
  result.fatal = fatalLines(text).filter((l) => !/(^|\s)Aborted!$/.test(l));
  result.completed = (trailer || result.reportedCount !== undefined) && result.fatal.length === 0;
  result.clean = result.completed && trailer && result.findings.length === 0 && result.reportedCount === undefined && !result.aborted;
  return result;
}

function classifyFinding(n: number, text: string, inUploads: boolean): FileFinding {
  const id = /\bID '([^']+)'/.exec(text)?.[1];
  const fileKind = FILE_FINDINGS.find(([re]) => re.test(text))?.[1];
  if (fileKind) return id === undefined ? { n, kind: fileKind, text } : { n, kind: fileKind, fileId: id, text };
  if (inUploads || /\bupload\b/i.test(text)) return id === undefined ? { n, kind: 'upload', text } : { n, kind: 'upload', uploadId: id, text };
  return { n, kind: 'other', text };
}

// ---------------------------------------------------------------------------------------------
// kadi utils config

export interface DatabaseConfig {
  /** 'localhost' when the URI names no host. */
  host: string;
  port: number;
  name: string;
  user: string;
  /** Empty when the URI has none (e.g. peer authentication). */
  password: Secret;
  /** The URI scheme, e.g. `postgresql+psycopg2`. */
  driver: string;
  /**
   * The query's other parameters, libpq's as psycopg passes them on (sslmode, sslrootcert, sslcert,
   * sslkey, sslpassword, options, ...): a JSON object's text, '' when there are none. A secret
   * (sslpassword may be one); the agent gives them to its own connections (pg.make_passfile).
   */
  params: Secret;
}

export interface KadiConfig {
  database?: DatabaseConfig;
  storagePath?: string;
  /** MISC_UPLOADS_PATH. */
  uploadsPath?: string;
  /** Passwords inside the URLs are masked. */
  elasticsearchHosts?: string[];
  /** Password masked. */
  celeryBrokerUrl?: string;
  /** Where the broker's Redis is and its credentials, when CELERY_BROKER_URL is a Redis URL. */
  redisAuth?: RedisAuth;
  /** Key file paths named by OIDC_SIGNING_KEYS, if it names any. */
  oidcSigningKeys?: string[];
  /** Every key with its value as `redactConfigText` would show it. */
  redactedValues: Record<string, string>;
  /** Why a value could not be used; never quotes a secret. */
  problems: string[];
}

// s flag: a value may contain U+2028/U+2029, which `.` would not match (found by the fuzz test).
const CONFIG_LINE_RE = /^([A-Z][A-Z0-9_]*): ?(.*)$/s;

/** `KEY: value` lines; a line that is not one continues the previous value (multi-line strings). */
function configEntries(text: string): Map<string, string> {
  const entries = new Map<string, string>();
  let last: string | undefined;
  for (const line of text.split(/\r?\n/)) {
    const m = CONFIG_LINE_RE.exec(line);
    if (m) {
      last = m[1];
      entries.set(last, m[2]);
    } else if (last !== undefined && line !== '') {
      entries.set(last, `${entries.get(last)}\n${line}`);
    }
  }
  return entries;
}

export function parseKadiConfig(text: string): KadiConfig {
  const entries = configEntries(text);
  const config: KadiConfig = { redactedValues: {}, problems: [] };
  for (const [key, value] of entries) config.redactedValues[key] = redactValue(key, value);

  const uri = presentValue(entries.get('SQLALCHEMY_DATABASE_URI'));
  if (uri !== undefined) {
    const db = parseDatabaseUri(uri);
    if (db) config.database = db;
    else config.problems.push(`SQLALCHEMY_DATABASE_URI is not a PostgreSQL URI I can read: ${redactSingleUri(uri)}`);
  } else {
    config.problems.push('SQLALCHEMY_DATABASE_URI is not set.');
  }
  const storage = presentValue(entries.get('STORAGE_PATH'));
  if (storage !== undefined) config.storagePath = storage;
  const uploads = presentValue(entries.get('MISC_UPLOADS_PATH'));
  if (uploads !== undefined) config.uploadsPath = uploads;
  const es = entries.get('ELASTICSEARCH_HOSTS');
  if (es !== undefined) config.elasticsearchHosts = pythonStrings(es).map(redactSingleUri);
  const broker = presentValue(entries.get('CELERY_BROKER_URL'));
  if (broker !== undefined) {
    config.celeryBrokerUrl = redactSingleUri(broker);
    const auth = parseRedisAuth(broker);
    if (auth) config.redisAuth = auth;
  }
  const oidc = entries.get('OIDC_SIGNING_KEYS');
  if (oidc !== undefined) config.oidcSigningKeys = pythonStrings(oidc).filter((s) => s.startsWith('/'));
  return config;
}

/** The value unless Python printed an empty or None one. */
function presentValue(v: string | undefined): string | undefined {
  const t = v?.trim();
  return t === undefined || t === '' || t === 'None' ? undefined : t;
}

/** Strings in a printed Python value: `['a', "b"]`, `{'k': 'a'}`, or a bare `a`. */
function pythonStrings(value: string): string[] {
  const v = value.trim();
  if (v === '' || v === 'None') return [];
  if (!/^[[({]/.test(v)) return [v];
  const out: string[] = [];
  for (const m of v.matchAll(/'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"/g)) out.push((m[1] ?? m[2]).replace(/\\(.)/g, '$1'));
  return out;
}

/** Query parameters of a database URI that say where and as whom: read into the connection's own fields, not passed on. */
const URI_OWN_PARAMS = new Set(['host', 'port', 'user', 'password', 'dbname']);

/**
 * `postgresql[+driver]://user:pass@host:port/name?host=...`, as SQLAlchemy reads it: user and
 * password percent-decoded as Python's unquote does (a '%' not followed by two hex digits stays), port 5432 unless given, a `host`/`port` query parameter (Unix socket
 * directory) used when the authority names none, host '' when neither does (libpq's default socket).
 */
export function parseDatabaseUri(uri: string): DatabaseConfig | undefined {
  const m = /^(postgres(?:ql)?(?:\+[\w.]+)?):\/\/(.*)$/is.exec(uri.trim());
  if (!m) return undefined;
  const [, driver, afterScheme] = m;
  // The password may hold an unencoded '@' or '/', the host part cannot: split at the last '@'.
  const at = afterScheme.lastIndexOf('@');
  const userinfo = at >= 0 ? afterScheme.slice(0, at) : '';
  const hostPart = at >= 0 ? afterScheme.slice(at + 1) : afterScheme;

  const q = hostPart.indexOf('?');
  const query = new URLSearchParams(q >= 0 ? hostPart.slice(q + 1) : '');
  const beforeQuery = q >= 0 ? hostPart.slice(0, q) : hostPart;
  const slash = beforeQuery.indexOf('/');
  const authority = slash >= 0 ? beforeQuery.slice(0, slash) : beforeQuery;
  const name = unquote(slash >= 0 ? beforeQuery.slice(slash + 1) : '');

  let host = authority;
  let portText = '';
  const v6 = /^\[([^\]]*)\](?::(.*))?$/.exec(authority);
  if (v6) {
    host = v6[1];
    portText = v6[2] ?? '';
  } else if (authority.includes(':')) {
    host = authority.slice(0, authority.lastIndexOf(':'));
    portText = authority.slice(authority.lastIndexOf(':') + 1);
  }
  // No host at all (postgresql:///kadi): psycopg2 passes none and libpq takes its default Unix
  // socket directory (often peer authentication), not TCP localhost. '' here; the agent names the
  // directory it connected to (facts' pg_host).
  host = unquote(host) || (query.get('host') ?? '');
  portText ||= query.get('port') ?? '';
  const port = portText === '' ? 5432 : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;

  const colon = userinfo.indexOf(':');
  const user = unquote(colon >= 0 ? userinfo.slice(0, colon) : userinfo) || (query.get('user') ?? '');
  const password = colon >= 0 ? unquote(userinfo.slice(colon + 1)) : (query.get('password') ?? '');
  const params: Record<string, string> = {};
  // As SQLAlchemy reads the query (parse_qsl): a parameter without a value is left out; the first of a repeated one here.
  for (const [k, v] of query) if (v !== '' && !URI_OWN_PARAMS.has(k) && !(k in params)) params[k] = v;
  const paramsText = Object.keys(params).length ? JSON.stringify(params) : '';
  return { host, port, name, user, password: new Secret(password), driver: driver.toLowerCase(), params: new Secret(paramsText) };
}

/** Where Kadi's Redis is (its broker URL) and its credentials (AUTH [user] password), if any. */
export interface RedisAuth {
  /** A Unix socket (redis+socket:///run/redis/redis.sock): redis-cli -s; host '' and port 0 then. */
  socket?: string;
  /** The URL's host ('localhost' when it names none); the agent asks Redis there. */
  host: string;
  port: number;
  /** Empty: the default user (requirepass), or no credentials. */
  user: string;
  /** Empty: Redis asks for no password. */
  password: Secret;
}

/**
 * Where a `redis[s]://[user]:password@host[:port][/db]` URL points and its credentials, as kombu
 * (Kadi's broker client) reads it and as the agent's plan.redis_auth does: the first of a ';'
 * failover list, the host part ending at the first '/', '?' or '#', percent-decoded; port 6379
 * unless given; a Unix socket's path for redis+socket://, socket:// and unix:// URLs; undefined for
 * a URL that is not Redis or has a port that is none.
 */
export function parseRedisAuth(url: string): RedisAuth | undefined {
  const first = url.trim().split(';')[0];
  // A Unix socket: redis+socket:///path (kombu), also socket:// and unix:// (redis-py); credentials before the path.
  const sock = /^(?:redis\+socket|socket|unix):\/\/(?:([^@/]*)@)?(\/[^?#]*)/is.exec(first);
  if (sock) {
    const userinfo = sock[1] ?? '';
    const colon = userinfo.indexOf(':');
    const password = colon >= 0 ? unquote(userinfo.slice(colon + 1)) : '';
    return { socket: unquote(sock[2]), host: '', port: 0, user: password ? unquote(userinfo.slice(0, colon)) : '', password: new Secret(password) };
  }
  const m = /^rediss?:\/\/(.*)$/is.exec(first);
  if (!m) return undefined;
  const netloc = m[1].split(/[/?#]/)[0];
  const at = netloc.lastIndexOf('@');
  const userinfo = at >= 0 ? netloc.slice(0, at) : '';
  const authority = at >= 0 ? netloc.slice(at + 1) : netloc;
  const colon = userinfo.indexOf(':');
  const password = colon >= 0 ? unquote(userinfo.slice(colon + 1)) : '';
  const v6 = /^\[([^\]]*)\](?::(.*))?$/.exec(authority);
  const cut = authority.lastIndexOf(':');
  const [hostText, portText] = v6 ? [v6[1], v6[2] ?? ''] : cut >= 0 ? [authority.slice(0, cut), authority.slice(cut + 1)] : [authority, ''];
  if (portText !== '' && !(/^[0-9]{1,5}$/.test(portText) && Number(portText) >= 1 && Number(portText) <= 65535)) return undefined;
  return {
    host: unquote(hostText) || 'localhost',
    port: portText === '' ? 6379 : Number(portText),
    user: password ? unquote(userinfo.slice(0, colon)) : '',
    password: new Secret(password),
  };
}

/** Percent-decoding as Python's urllib.parse.unquote does it: each run of valid %XX sequences as UTF-8 (invalid bytes U+FFFD), anything else as it is. */
function unquote(s: string): string {
  return s.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => Buffer.from(run.replace(/%/g, ''), 'hex').toString('utf8'));
}

/** Where Redis is and its credentials as the agent reads them (JSON, never in argv): for a job's input or a verb's stdin line. */
export function redisAuthJson(a: RedisAuth | undefined): RedisAuthJson | undefined {
  return a ? { ...(a.socket ? { socket: a.socket } : {}), host: a.host, port: a.port, user: a.user, password: a.password.reveal() } : undefined;
}


const SENSITIVE_KEY_RE = /SECRET|PASSWORD|KEY|TOKEN/;

function redactValue(key: string, value: string): string {
  return SENSITIVE_KEY_RE.test(key) ? REDACTED : redactConfigValue(value);
}

/**
 * A config value with URI passwords masked. A value that is one URI is split at its LAST '@', as
 * SQLAlchemy does, so an unencoded '@' or space in the password cannot leave a tail in the clear;
 * printed Python lists are masked string by string.
 */
function redactConfigValue(value: string): string {
  if (/^[[({]/.test(value.trim())) {
    return value.replace(/'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"/g, (quoted: string) => quoted[0] + redactSingleUri(quoted.slice(1, -1)) + quoted[0]);
  }
  return redactSingleUri(value);
}

function redactSingleUri(value: string): string {
  const m = /^(\s*[a-z][a-z0-9+.-]*:\/\/)(.*)$/is.exec(value);
  if (!m) return redactUriPasswords(value);
  const [, scheme, rest] = m;
  const at = rest.lastIndexOf('@');
  const colon = rest.indexOf(':');
  const masked = at >= 0 && colon >= 0 && colon < at ? `${rest.slice(0, colon + 1)}${REDACTED}${rest.slice(at)}` : rest;
  return scheme + maskPasswordParams(masked);
}

/**
 * `kadi utils config` output safe to show: values of keys naming a SECRET, PASSWORD, KEY or TOKEN
 * (including their continuation lines) and every password inside a URI are masked.
 */
export function redactConfigText(text: string): string {
  let masking = false;
  return text
    .split('\n')
    .map((line) => {
      const cr = line.endsWith('\r') ? '\r' : '';
      const body = cr ? line.slice(0, -1) : line;
      const m = CONFIG_LINE_RE.exec(body);
      if (m) {
        masking = SENSITIVE_KEY_RE.test(m[1]);
        return `${m[1]}: ${redactValue(m[1], m[2])}${cr}`;
      }
      return masking && body !== '' ? REDACTED + cr : redactUriPasswords(line);
    })
    .join('\n');
}

/**
 * Masks `user:password@` in every URI inside free text (exception messages) and password= query
 * parameters. Over-masks rather than leaks.
 */
export function redactUriPasswords(text: string): string {
  return maskPasswordParams(text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)([^\s:@/]*):\S*@/gi, (_all, scheme: string, user: string) => `${scheme}${user}:${REDACTED}@`));
}

function maskPasswordParams(text: string): string {
  return text.replace(/([?&;](?:password|passwd|pwd)=)[^&\s'"]*/gi, `$1${REDACTED}`);
}

// ---------------------------------------------------------------------------------------------
// kadi --version, kadi db upgrade

export interface KadiVersion {
  major: number;
  minor: number;
  patch: number;
  /** Anything after the patch number, e.g. `rc1` or `.dev0`. */
  suffix: string;
  /** The version as printed, e.g. `1.13.0`. */
  text: string;
}

/** The bare `1.13.0` of `kadi --version` (also click's `kadi, version 1.13.0`); warnings before it are ignored. */
export function parseKadiVersion(text: string): KadiVersion | undefined {
  const lines = outputLines(text).filter((l) => l !== '');
  const last = lines[lines.length - 1];
  const m = last === undefined ? null : /(?:^|\bversion\s+)v?((\d+)\.(\d+)\.(\d+)([0-9A-Za-z.+-]*))$/.exec(last);
  if (!m) return undefined;
  return { major: Number(m[2]), minor: Number(m[3]), patch: Number(m[4]), suffix: m[5], text: m[1] };
}

/** Orders by major, minor, patch; a release sorts after its pre-releases (`1.13.0rc1` < `1.13.0`). */
export function compareKadiVersions(a: KadiVersion, b: KadiVersion): number {
  const d = a.major - b.major || a.minor - b.minor || a.patch - b.patch;
  if (d !== 0) return Math.sign(d);
  if (a.suffix === b.suffix) return 0;
  if (a.suffix === '') return 1;
  if (b.suffix === '') return -1;
  return a.suffix < b.suffix ? -1 : 1;
}

export interface Migration {
  /** Absent for the first migration of an empty database. */
  from?: string;
  to: string;
  message?: string;
}

export interface DbUpgradeResult {
  /** Alembic's "Running upgrade a -> b, message" lines. */
  migrations: Migration[];
  fatal: string[];
  /** Only with "Upgrade completed successfully." and no fatal line. */
  success: boolean;
}

export function parseDbUpgradeOutput(text: string): DbUpgradeResult {
  const lines = outputLines(text);
  const migrations: Migration[] = [];
  for (const line of lines) {
    const m = /Running upgrade (\S*) -> (\S+?)(?:, (.*))?$/.exec(line);
    if (!m) continue;
    const mig: Migration = { to: m[2] };
    if (m[1] !== '') mig.from = m[1];
    if (m[3] !== undefined) mig.message = m[3];
    migrations.push(mig);
  }
  const fatal = fatalLines(text);
  const trailer = lines.includes('Upgrade completed successfully.');
  return { migrations, fatal, success: trailer && fatal.length === 0 };
}
