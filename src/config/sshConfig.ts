/**
 * Reading ~/.ssh/config the way ssh(1) would for one alias. Parsing and matching are the `ssh-config`
 * package's; it does not follow `Include`, so that is done here before `compute()` sees the lines.
 */
import * as path from 'node:path';
import SSHConfig, { glob, LineType, type Directive, type Line, type Section } from 'ssh-config';
import { displayPath, expandGlob, expandTilde, type LocalFiles } from './localFiles';

/** ssh(1) gives up at this Include depth (READCONF_MAX_DEPTH); a loop would otherwise never end. */
const MAX_INCLUDE_DEPTH = 16;

export interface SshConfigContext {
  homeDir: string;
  files: LocalFiles;
  /** Path of the main file, for messages. */
  configPath: string;
}

/** The directives Kadi Ops takes from ssh_config, as written there (tokens not yet expanded). */
export interface SshConfigValues {
  hostName?: string;
  user?: string;
  port?: string;
  identityFiles: string[];
  proxyJump?: string;
  identityAgent?: string;
  userKnownHostsFile?: string;
  connectTimeout?: string;
  serverAliveInterval?: string;
}

export interface ParsedSshConfig {
  config: SSHConfig;
  warnings: string[];
}

const isDirective = (l: Line): l is Directive => l.type === LineType.DIRECTIVE;
const isSection = (l: Line): l is Section => isDirective(l) && 'config' in l;
// Not a type guard: narrowing on it would wrongly exclude Sections (which are Directives too) in the else branch.
const isInclude = (l: Line): boolean => isDirective(l) && !('config' in l) && /^include$/i.test(l.param);
const values = (d: Directive): string[] => (typeof d.value === 'string' ? [d.value] : d.value.map((v) => v.val));

function withConfig(section: Section, lines: Line[]): Section {
  const config = new SSHConfig();
  config.push(...lines);
  return { ...section, config };
}

class IncludeExpander {
  readonly warnings: string[] = [];
  constructor(
    private readonly ctx: SshConfigContext,
    /** The alias being resolved; undefined when listing hosts, where every Include is followed. */
    private readonly alias: string | undefined,
  ) {}

  /** The top-level lines of `lines` with every reachable Include replaced by the files' lines. */
  expand(lines: readonly Line[], depth: number, from: string): Line[] {
    const out: Line[] = [];
    for (const line of lines) {
      if (isInclude(line)) out.push(...this.include(line as Directive, depth, from));
      else if (isSection(line) && line.config.some(isInclude)) out.push(...this.expandSection(line, depth, from));
      else out.push(line);
    }
    return out;
  }

  /**
   * ssh(1) reads an Include inside a Host/Match block only when that block applies, and restores the
   * block afterwards. For a Host block we know whether it applies to our alias, so its included lines
   * can be lifted to the top level and the rest of the block continues in a copy of the section.
   * Match blocks cannot be decided here: included plain directives stay inside the Match, but Host
   * sections from such files are left out (with a warning) rather than applied unconditionally.
   */
  private expandSection(section: Section, depth: number, from: string): Line[] {
    const isHost = /^host$/i.test(section.param);
    const applies = this.alias === undefined || (isHost && glob(values(section), this.alias));
    if (isHost && !applies) return [withConfig(section, section.config.filter((l) => !isInclude(l)))];
    const out: Line[] = [];
    let current: Line[] = [];
    const flush = (): void => {
      out.push(withConfig(section, current));
      current = [];
    };
    for (const line of section.config) {
      if (!isInclude(line)) {
        current.push(line);
        continue;
      }
      const included = this.include(line as Directive, depth, from);
      if (isHost || this.alias === undefined) {
        flush();
        out.push(...included);
      } else {
        current.push(...included.filter((l) => !isSection(l)));
        if (included.some(isSection)) {
          this.warnings.push(`${from}: Host/Match sections in files included from a Match block are ignored by Kadi Ops`);
        }
      }
    }
    flush();
    return out;
  }

  private include(line: Directive, depth: number, from: string): Line[] {
    if (depth >= MAX_INCLUDE_DEPTH) {
      this.warnings.push(`${from}: Include nested more than ${MAX_INCLUDE_DEPTH} levels deep; not followed further`);
      return [];
    }
    const out: Line[] = [];
    for (const raw of values(line)) {
      // Relative names are relative to ~/.ssh for a user configuration (ssh_config(5), Include).
      const expanded = expandTilde(raw, this.ctx.homeDir);
      const pattern = path.isAbsolute(expanded) ? expanded : path.join(this.ctx.homeDir, '.ssh', expanded);
      for (const file of expandGlob(pattern, this.ctx.files)) {
        const text = this.ctx.files.readFile(file);
        if (text === undefined) continue; // ssh(1) silently skips Include patterns that match nothing
        out.push(...this.expand(SSHConfig.parse(text), depth + 1, displayPath(file, this.ctx.homeDir)));
      }
    }
    return out;
  }
}

/** Parses ssh_config text and inlines its Includes as seen from `alias` (all of them when undefined). */
export function parseSshConfig(text: string, ctx: SshConfigContext, alias?: string): ParsedSshConfig {
  const expander = new IncludeExpander(ctx, alias);
  const config = new SSHConfig();
  config.push(...expander.expand(SSHConfig.parse(text), 0, displayPath(ctx.configPath, ctx.homeDir)));
  return { config, warnings: expander.warnings };
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The settings ssh(1) would use for `alias`. `Match exec` blocks are NOT run: resolving a profile
 * must never execute commands from a config file as a side effect.
 */
export function computeSshConfig(alias: string, text: string, ctx: SshConfigContext): SshConfigValues & { warnings: string[] } {
  const { config, warnings } = parseSshConfig(text, ctx, alias);
  const r = config.compute(alias, { ignoreCase: true, matchExec: false });
  const identity = r['identityfile'];
  return {
    hostName: first(r['hostname']),
    user: first(r['user']),
    port: first(r['port']),
    identityFiles: Array.isArray(identity) ? identity : identity === undefined ? [] : [identity],
    proxyJump: first(r['proxyjump']),
    identityAgent: first(r['identityagent']),
    userKnownHostsFile: first(r['userknownhostsfile']),
    connectTimeout: first(r['connecttimeout']),
    serverAliveInterval: first(r['serveraliveinterval']),
    warnings,
  };
}

/**
 * The concrete host aliases declared by `Host` lines (Includes followed), in file order: patterns
 * with wildcards or negation describe groups of hosts, not hosts one could add.
 */
export function listSshConfigAliases(text: string, ctx: SshConfigContext): string[] {
  const { config } = parseSshConfig(text, ctx);
  const seen = new Set<string>();
  for (const line of config) {
    if (!isSection(line) || !/^host$/i.test(line.param)) continue;
    for (const pattern of values(line)) {
      if (!/[*?!]/.test(pattern) && pattern !== '') seen.add(pattern);
    }
  }
  return [...seen];
}

/** Expands the OpenSSH %-tokens that make sense on this side (ssh_config(5), TOKENS); others stay literal. */
export function expandTokens(s: string, tokens: Readonly<Record<string, string>>): string {
  return s.replace(/%(.)/g, (whole, ch: string) => (ch === '%' ? '%' : tokens[ch] ?? whole));
}
