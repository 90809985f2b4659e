/**
 * The CLI's command line. Every verb declares its arguments and options (name, type, description);
 * node:util's parseArgs in strict mode parses them, and the usage lines and help are made from the
 * same declarations (help.ts), so the three cannot drift apart.
 */
import { parseArgs as nodeParseArgs } from 'node:util';
import { closestKey } from '../config/suggest';

export interface OptionSpec {
  /** Without the leading "--". */
  readonly name: string;
  /** boolean: present or not, never a value; string: needs a value (--name VALUE or --name=VALUE). */
  readonly type: 'boolean' | 'string';
  /** What the value is, in usage lines: FILE, N, HOST… (string options). */
  readonly value?: string;
  /** A one-letter alias (-h). */
  readonly short?: string;
  readonly description: string;
}

export interface ArgSpec {
  /** As shown in the usage line: <host>, <set|latest>, INDEX. */
  readonly name: string;
  readonly required: boolean;
  /** Takes every remaining argument (the last one only). */
  readonly variadic?: boolean;
  readonly description: string;
  /** The usage error when a required argument is missing, checked before the configuration is read. */
  readonly missing?: string;
}

export interface CommandSpec {
  readonly summary: string;
  readonly args: readonly ArgSpec[];
  /** The verb's own options; the global ones (GLOBAL_OPTIONS) are accepted by every verb. */
  readonly options: readonly OptionSpec[];
}

/** A usage error: exit status 2. `hint` is one more line for the terminal (where to find help). */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Accepted by every verb, before or after it. */
export const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  {
    name: 'config',
    type: 'string',
    value: 'FILE',
    description: 'host profiles: {"hosts": [...]}, the schema of the kadiOps.hosts setting (comments allowed); default: $KADI_OPS_CONFIG, else ~/.config/kadi-ops/hosts.json',
  },
  { name: 'json', type: 'boolean', description: 'machine-readable output on stdout; an error is one JSON object on stderr' },
  { name: 'accept-new-host-key', type: 'boolean', description: 'trust a host key seen for the first time (like StrictHostKeyChecking=accept-new)' },
  { name: 'verbose', type: 'boolean', description: "show tool chatter live (pg_restore -v, each system table ANALYZE skipped: always in the job's log), and log SSH details on stderr" },
  { name: 'help', short: 'h', type: 'boolean', description: 'show the help (of the command, when one is given) and exit' },
  { name: 'version', type: 'boolean', description: 'print "kadi-ops <version>" and exit' },
];

/** `--name`, and `-x, --name` when it has a short alias. */
export function optionLabel(o: OptionSpec): string {
  const long = `--${o.name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
  return o.short ? `-${o.short}, ${long}` : long;
}

type NodeOptions = Record<string, { type: 'boolean' | 'string'; short?: string }>;

function nodeOptions(options: readonly OptionSpec[]): NodeOptions {
  const out: NodeOptions = {};
  for (const o of options) out[o.name] = o.short ? { type: o.type, short: o.short } : { type: o.type };
  return out;
}

/**
 * The options and positional arguments of one verb, as given. Reading an option the verb did not
 * declare is a programming error and throws, so a verb cannot quietly read one its users cannot give.
 */
export class ParsedArgs {
  private readonly declared: ReadonlyMap<string, OptionSpec>;

  constructor(
    readonly command: string,
    readonly positionals: readonly string[],
    private readonly values: Readonly<Record<string, string | boolean | undefined>>,
    options: readonly OptionSpec[],
  ) {
    this.declared = new Map(options.map((o) => [o.name, o]));
  }

  private spec(name: string, type: OptionSpec['type']): void {
    const o = this.declared.get(name);
    if (!o || o.type !== type) throw new Error(`Internal error: ${this.command} reads --${name} as a ${type} option, which it does not declare.`);
  }

  /** A boolean option: given or not. */
  flag(name: string): boolean {
    this.spec(name, 'boolean');
    return this.values[name] === true;
  }

  /** A value option's value, or undefined when not given. */
  value(name: string): string | undefined {
    this.spec(name, 'string');
    const v = this.values[name];
    return typeof v === 'string' ? v : undefined;
  }
}

interface OptionToken {
  kind: 'option';
  name: string;
  rawName: string;
  value?: string;
  inlineValue?: boolean;
}

/** What a non-strict pass found: the tokens, for a message naming exactly what was wrong. */
function tokensOf(argv: readonly string[], options: NodeOptions): OptionToken[] {
  const { tokens } = nodeParseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  return tokens.filter((t): t is OptionToken & (typeof tokens)[number] => t.kind === 'option');
}

export interface ParseContext {
  /** The verb, for messages ("for verify"); undefined before any verb. */
  command?: string;
  /** The verbs that take an option of this name (none: []), to say so when another verb was given. */
  ownersOf(name: string): readonly string[];
  /** The hint line under an error: where the valid options are listed. */
  hint: string;
}

/**
 * Parses `argv` (the verb itself left out) against the verb's options plus the global ones, strictly:
 * an unknown option, a value given to a boolean option and a value option without one are usage
 * errors naming the option, with the nearest valid option of this verb when there is one.
 */
export function parseCommandLine(argv: readonly string[], options: readonly OptionSpec[], pc: ParseContext): { positionals: string[]; values: Record<string, string | boolean | undefined> } {
  const config = nodeOptions(options);
  let parsed: ReturnType<typeof nodeParseArgs>;
  try {
    parsed = nodeParseArgs({ args: [...argv], options: config, strict: true, allowPositionals: true });
  } catch (e) {
    if (!/^ERR_PARSE_ARGS_/.test(String((e as NodeJS.ErrnoException).code))) throw e;
    throw explain(argv, options, config, pc, e as Error);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  // A verb's option given twice with two values is ambiguous (--yes a --yes b, --keep-daily 7
  // --keep-daily 3): refused, not the last taken. A global one (--config) keeps the last, as a
  // wrapper that sets a default and a caller that overrides it expect.
  const seen = new Map<string, string>();
  for (const t of tokensOf(argv, config)) {
    if (t.value === undefined || GLOBAL_OPTIONS.some((g) => g.name === t.name)) continue;
    const before = seen.get(t.name);
    if (before !== undefined && before !== t.value) throw new UsageError(`Option --${t.name} is given twice (${before} and ${t.value}): give it once.`, pc.hint);
    seen.set(t.name, t.value);
  }
  for (const o of options) {
    if (o.type === 'string' && values[o.name] === '') throw new UsageError(`Option --${o.name} needs a value: ${optionLabel(o)}.`, pc.hint);
  }
  return { positionals: parsed.positionals, values };
}

/** The usage error for what strict parsing refused, worded for people. */
function explain(argv: readonly string[], options: readonly OptionSpec[], config: NodeOptions, pc: ParseContext, original: Error): UsageError {
  const where = pc.command ? ` for ${pc.command}` : '';
  for (const t of tokensOf(argv, config)) {
    const o = options.find((x) => x.name === t.name);
    if (!o) {
      if (t.rawName.startsWith('--')) {
        const owners = pc.ownersOf(t.name).filter((c) => c !== pc.command);
        if (owners.length > 0) return new UsageError(`Unknown option ${t.rawName}${where}: it is an option of ${owners.join(', ')}.`, pc.hint);
        const guess = closestKey(t.name, options.map((x) => x.name), 1);
        return new UsageError(`Unknown option ${t.rawName}${where}.${guess ? ` Did you mean --${guess}?` : ''}`, pc.hint);
      }
      return new UsageError(`Unknown option ${t.rawName}${where}.`, pc.hint);
    }
    if (o.type === 'boolean' && t.value !== undefined) return new UsageError(`Option --${o.name} takes no value (got ${t.rawName}=${t.value}).`, pc.hint);
    if (o.type === 'string' && (t.value === undefined || (!t.inlineValue && t.value.startsWith('-')))) {
      const dash = t.value === undefined ? '' : ` (${t.value} after it is read as an option; write --${o.name}=${t.value} if it is the value)`;
      return new UsageError(`Option ${t.rawName} needs a value: ${optionLabel(o)}${dash}.`, pc.hint);
    }
  }
  return new UsageError(original.message, pc.hint);
}

/** Checks the positional arguments against the declared ones: none too many, the required ones that have their own message present. */
export function checkPositionals(command: string, spec: CommandSpec, positionals: readonly string[], hint: string): void {
  const variadic = spec.args.some((a) => a.variadic);
  if (!variadic && positionals.length > spec.args.length) {
    const extra = positionals[spec.args.length];
    throw new UsageError(`Unexpected argument "${extra}" for ${command}: it takes ${spec.args.length === 0 ? 'none' : spec.args.map((a) => a.name).join(' ')}.`, hint);
  }
  spec.args.forEach((a, i) => {
    if (a.required && a.missing && positionals[i] === undefined) throw new UsageError(a.missing, hint);
  });
}

/** Finds the verb without knowing it yet: the first positional, every known option read with its type. */
export function scanCommandLine(argv: readonly string[], allOptions: readonly OptionSpec[]): { commandIndex: number; given: ReadonlySet<string> } {
  const { tokens } = nodeParseArgs({ args: [...argv], options: nodeOptions(allOptions), strict: false, allowPositionals: true, tokens: true });
  const first = tokens.find((t) => t.kind === 'positional');
  // Only an option given as itself (not --json=x, not a value of another option) counts.
  const given = new Set(tokens.filter((t) => t.kind === 'option' && t.value === undefined).map((t) => (t as OptionToken).name));
  return { commandIndex: first ? first.index : -1, given };
}
