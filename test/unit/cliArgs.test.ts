/**
 * The CLI's command line (issue 16, item 2): strict options per verb with did-you-mean, did-you-mean
 * for verbs, help and --version, the documented exit statuses and JSON errors. All in-process through
 * main(argv), with nothing to connect to: usage errors come before the configuration is read, and
 * configuration errors before anything connects. The bundled dist/cli.js is run once as users run it.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { GLOBAL_OPTIONS, ParsedArgs, UsageError } from '../../src/cli/args';
import { commands } from '../../src/cli/commands';
import { errorOutput, main } from '../../src/cli/main';
import { CancelledError } from '../../src/ssh/errors';

const ROOT = path.resolve(__dirname, '../../..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let home: string;
let dir: string;

/** main(argv) with stdout and stderr captured, HOME an empty folder and $KADI_OPS_CONFIG unset unless given. */
async function run(argv: string[], env: Record<string, string> = {}): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const saved = { HOME: process.env.HOME, KADI_OPS_CONFIG: process.env.KADI_OPS_CONFIG };
  const writes = { out: process.stdout.write, err: process.stderr.write };
  process.env.HOME = home;
  delete process.env.KADI_OPS_CONFIG;
  Object.assign(process.env, env);
  process.stdout.write = ((chunk: string | Uint8Array) => out.push(String(chunk)) > 0) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => err.push(String(chunk)) > 0) as typeof process.stderr.write;
  try {
    const code = await main(argv);
    return { code, stdout: out.join(''), stderr: err.join('') };
  } finally {
    process.stdout.write = writes.out;
    process.stderr.write = writes.err;
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** A usage or configuration error: exit status 2, nothing on stdout, exactly `stderr`. */
async function fails(argv: string[], stderr: string, env: Record<string, string> = {}): Promise<void> {
  const r = await run(argv, env);
  assert.deepEqual(r, { code: 2, stdout: '', stderr }, argv.join(' '));
}

/** The one JSON error line on stderr. */
function jsonError(r: Run): unknown {
  assert.equal(r.stdout, '');
  assert.equal(r.stderr.split('\n').length, 2, r.stderr);
  assert.ok(r.stderr.endsWith('\n'));
  return JSON.parse(r.stderr);
}

const hintFor = (verb: string): string => `Run \`kadi-ops help ${verb}\` for its arguments and options.\n`;
const HELP_HINT = 'Run `kadi-ops --help` for the list of commands.\n';
const NO_CONFIG = '/nonexistent/kadi-ops-hosts.json';

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kadi-ops-cli-'));
  home = path.join(dir, 'home');
  fs.mkdirSync(home);
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('CLI options are strict, per verb', () => {
  it('an unknown option is a usage error naming it and the nearest option of that verb', async () => {
    await fails(['verify', 'sandbox', 'latest', '--deeep'], `Unknown option --deeep for verify. Did you mean --deep?\n${hintFor('verify')}`);
    await fails(['verify', 'sandbox', 'latest', '--jsn'], `Unknown option --jsn for verify. Did you mean --json?\n${hintFor('verify')}`);
    await fails(['verify', 'sandbox', 'latest', '--bogus'], `Unknown option --bogus for verify.\n${hintFor('verify')}`);
    await fails(['prune', 'sandbox', '--keep-dayly', '7'], `Unknown option --keep-dayly for prune. Did you mean --keep-daily?\n${hintFor('prune')}`);
    await fails(['backup', 'sandbox', '--stop-sevrices'], `Unknown option --stop-sevrices for backup. Did you mean --stop-services?\n${hintFor('backup')}`);
    await fails(['restore', 'sandbox', 'latest', '--no-safety'], `Unknown option --no-safety for restore. Did you mean --no-safety-backup?\n${hintFor('restore')}`);
    await fails(['verify', 'sandbox', 'latest', '-x'], `Unknown option -x for verify.\n${hintFor('verify')}`);
  });

  it('an option given twice with two values is refused, not the last one taken (before: --yes a --yes b meant b)', async () => {
    await fails(['restore', 'sandbox', 'latest', '--yes', 'other', '--yes', 'sandbox'], `Option --yes is given twice (other and sandbox): give it once.\n${hintFor('restore')}`);
    await fails(['prune', 'sandbox', '--keep-daily', '7', '--keep-daily=3'], `Option --keep-daily is given twice (7 and 3): give it once.\n${hintFor('prune')}`);
    // The same value twice says nothing ambiguous: it reads the configuration next (here: none).
    const same = await run(['prune', 'sandbox', '--keep-daily', '7', '--keep-daily', '7', '--config', NO_CONFIG]);
    assert.equal(same.code, 2);
    assert.doesNotMatch(same.stderr, /given twice/);
    // A global option keeps the last (a wrapper's default, then the caller's): here the second, missing, file is the one read.
    const config = await run(['--config', path.join(dir, 'a.json'), 'hosts', '--config', NO_CONFIG]);
    assert.equal(config.code, 2);
    assert.doesNotMatch(config.stderr, /given twice/);
    assert.ok(config.stderr.includes(NO_CONFIG), config.stderr);
  });

  it("an option of another verb says whose it is, and the nearest is that verb's own, not another's", async () => {
    await fails(['verify', 'sandbox', 'latest', '--dry-run'], `Unknown option --dry-run for verify: it is an option of prune, offsite.\n${hintFor('verify')}`);
    await fails(['check', 'sandbox', '--break-stale-lock'], `Unknown option --break-stale-lock for check: it is an option of backup, verify, prune, restore, db-upgrade, reindex, remove-orphans, files-check, redis-snapshot, fix-permissions, offsite.\n${hintFor('check')}`);
    // --deep is verify's; list has no option near "--dep".
    await fails(['list', 'sandbox', '--dep'], `Unknown option --dep for list.\n${hintFor('list')}`);
  });

  it('a boolean option given a value, and a value option without one, are usage errors', async () => {
    await fails(['verify', 'sandbox', 'latest', '--deep=yes'], `Option --deep takes no value (got --deep=yes).\n${hintFor('verify')}`);
    await fails(['hosts', '--json=false'], `Option --json takes no value (got --json=false).\n${hintFor('hosts')}`);
    await fails(['prune', 'sandbox', '--keep-last'], `Option --keep-last needs a value: --keep-last N.\n${hintFor('prune')}`);
    await fails(['hosts', '--config='], `Option --config needs a value: --config FILE.\n${hintFor('hosts')}`);
    await fails(
      ['restore', 'sandbox', 'latest', '--yes', '--json'],
      `Option --yes needs a value: --yes HOST (--json after it is read as an option; write --yes=--json if it is the value).\n${hintFor('restore')}`,
    );
  });

  it('too many arguments, and a missing set or job, are usage errors before any configuration is read', async () => {
    await fails(['verify', 'sandbox', 'latest', 'extra'], `Unexpected argument "extra" for verify: it takes <host> <set|latest>.\n${hintFor('verify')}`);
    await fails(['hosts', 'prod'], `Unexpected argument "prod" for hosts: it takes none.\n${hintFor('hosts')}`);
    await fails(['verify', 'sandbox'], `Name a backup set (see \`kadi-ops list <host>\`), or "latest".\n${hintFor('verify')}`);
    await fails(['attach', 'sandbox'], `Name a job (see \`kadi-ops jobs <host>\`).\n${hintFor('attach')}`);
  });

  it('declares exactly these options per verb, and every one of them is accepted', async () => {
    const expected: Record<string, string[]> = {
      hosts: [],
      check: [],
      sudoers: [],
      backup: ['archive', 'redis', 'stop-services', 'break-stale-lock', 'keep-last', 'keep-daily', 'keep-weekly', 'keep-monthly', 'min-keep'],
      list: [],
      verify: ['deep', 'break-stale-lock'],
      prune: ['keep-last', 'keep-daily', 'keep-weekly', 'keep-monthly', 'min-keep', 'dry-run', 'break-stale-lock'],
      pin: [],
      unpin: [],
      'clean-partials': [],
      jobs: [],
      attach: [],
      cancel: ['force'],
      restore: ['components', 'no-safety-backup', 'checksum', 'listing', 'overwrite-config', 'verify-again', 'jobs', 'break-stale-lock', 'yes'],
      'db-upgrade': ['break-stale-lock'],
      reindex: ['model', 'break-stale-lock'],
      indices: [],
      'remove-orphans': ['yes', 'break-stale-lock'],
      'files-check': ['resolve', 'confirm-count', 'break-stale-lock'],
      'redis-snapshot': ['break-stale-lock'],
      'fix-permissions': ['break-stale-lock'],
      schedule: ['remove', 'show', 'root-script'],
      status: [],
      offsite: ['to-host', 'read-data-subset', 'dry-run', 'keep-last', 'keep-daily', 'keep-weekly', 'keep-monthly', 'min-keep', 'break-stale-lock'],
    };
    assert.deepEqual(Object.fromEntries(Object.entries(commands).map(([verb, c]) => [verb, c.options.map((o) => o.name)])), expected);
    assert.deepEqual(GLOBAL_OPTIONS.map((o) => o.name), ['config', 'json', 'accept-new-host-key', 'verbose', 'help', 'version']);
    // Each option (and every global one) gets past the parser: the configuration is what fails next.
    for (const [verb, c] of Object.entries(commands)) {
      const positionals = c.args.filter((a) => a.required).map((_, i) => `arg${i}`);
      for (const o of [...c.options, ...GLOBAL_OPTIONS.filter((g) => !['help', 'version'].includes(g.name))]) {
        const argv = [verb, ...positionals, ...(o.type === 'string' ? [`--${o.name}`, '1'] : [`--${o.name}`]), '--json'];
        if (o.name !== 'config') argv.push('--config', NO_CONFIG);
        const e = jsonError(await run(argv)) as { error: { kind: string; command: string } };
        assert.equal(e.error.kind, 'config', `${argv.join(' ')}: ${JSON.stringify(e)}`);
        assert.equal(e.error.command, verb);
      }
    }
  });

  it('accepts every command line the integration suites, the demo and the sandbox give', async () => {
    const lines = [
      ['check', 'sandbox'],
      ['check', 'sandbox-sudo', '--json'],
      ['check', 'sandbox', '--accept-new-host-key'],
      ['backup', 'sandbox'],
      ['backup', 'sandbox', '--json'],
      ['backup', 'sandbox', '--archive', '--redis'],
      ['backup', 'sandbox', '--stop-services'],
      ['backup', 'sandbox', '--keep-last', '2'],
      ['list', 'sandbox', '--json'],
      ['verify', 'sandbox', '2026-01-01T00-00-00Z'],
      ['verify', 'sandbox', 'latest', '--break-stale-lock'],
      ['pin', 'sandbox', '2026-01-01T00-00-00Z'],
      ['unpin', 'sandbox', '2026-01-01T00-00-00Z'],
      ['prune', 'sandbox', '--keep-last', '1', '--dry-run'],
      ['files-check', 'sandbox'],
      ['reindex', 'sandbox', '--model', 'record'],
      ['reindex', 'sandbox'],
      ['indices', 'sandbox'],
      ['remove-orphans', 'sandbox', 'record_20200101000000000009', '--yes', 'sandbox'],
      ['db-upgrade', 'sandbox'],
      ['restore', 'sandbox-sudo', '2026-01-01T00-00-00Z', '--components', 'db', '--no-safety-backup'],
      ['restore', 'sandbox-sudo', '2026-01-01T00-00-00Z', '--components', 'db', '--no-safety-backup', '--yes', 'sandbox-sudo'],
      ['sudoers', 'systemd-host'],
    ];
    for (const argv of lines) {
      const r = await run([...argv, '--config', NO_CONFIG]);
      assert.equal(r.code, 2, argv.join(' '));
      assert.ok(r.stderr.includes('Cannot read config file /nonexistent/kadi-ops-hosts.json (given by --config)'), `${argv.join(' ')}: ${r.stderr}`);
    }
  });

  it('options may come before the verb, and -- ends the options', async () => {
    await fails(['--config', NO_CONFIG, 'verify', 'sandbox', 'latest', '--deeep'], `Unknown option --deeep for verify. Did you mean --deep?\n${hintFor('verify')}`);
    await fails(['--keep-last', '1', 'prune', 'sandbox', 'extra'], `Unexpected argument "extra" for prune: it takes <host>.\n${hintFor('prune')}`);
    const r = await run(['remove-orphans', 'sandbox', '--config', NO_CONFIG, '--', '--not-an-option']);
    assert.match(r.stderr, /^Cannot read config file/);
  });

  it('a verb that reads an option it does not declare is a programming error', () => {
    const args = new ParsedArgs('verify', [], { deep: true }, [{ name: 'deep', type: 'boolean', description: '' }]);
    assert.equal(args.flag('deep'), true);
    assert.throws(() => args.flag('dry-run'), /^Error: Internal error: verify reads --dry-run as a boolean option, which it does not declare\.$/);
    assert.throws(() => args.value('deep'), /reads --deep as a string option/);
  });

  it('every option the verbs read is declared (src/cli)', () => {
    const declared = new Set([...GLOBAL_OPTIONS, ...Object.values(commands).flatMap((c) => c.options)].map((o) => o.name));
    const dir = path.join(ROOT, 'src', 'cli');
    const read = new Set<string>();
    for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.ts'))) {
      const text = fs.readFileSync(path.join(dir, f), 'utf8');
      for (const m of text.matchAll(/\.(?:flag|value)\('([a-z-]+)'\)|intFlag\(ctx, '([a-z-]+)'/g)) read.add(m[1] ?? m[2]);
    }
    assert.ok(read.size >= 15, [...read].join(' '));
    assert.deepEqual([...read].filter((n) => !declared.has(n)), []);
  });
});

describe('CLI commands, help and version', () => {
  it('an unknown command names the nearest one and points to --help in one line', async () => {
    await fails(['verfy'], `Unknown command "verfy". Did you mean "verify"?\n${HELP_HINT}`);
    await fails(['lsit', 'sandbox'], `Unknown command "lsit". Did you mean "list"?\n${HELP_HINT}`);
    await fails(['restroe', 'sandbox', 'latest', '--deeep'], `Unknown command "restroe". Did you mean "restore"?\n${HELP_HINT}`);
    await fails(['frobnicate'], `Unknown command "frobnicate".\n${HELP_HINT}`);
    await fails(['constructor'], `Unknown command "constructor".\n${HELP_HINT}`);
    await fails(['verfy', '--help'], `Unknown command "verfy". Did you mean "verify"?\n${HELP_HINT}`);
    await fails(['help', 'verfy'], `Unknown command "verfy". Did you mean "verify"?\n${HELP_HINT}`);
  });

  it('no arguments: the short usage on stderr, exit status 2; an unknown option alone says so', async () => {
    await fails([], `Usage: kadi-ops <command> [arguments] [options]\n${HELP_HINT}`);
    await fails(['--json'], '{"error":{"kind":"usage","message":"Usage: kadi-ops <command> [arguments] [options]","exitCode":2}}\n');
    await fails(['--bogus'], `Unknown option --bogus.\n${HELP_HINT}`);
    await fails(['--deep'], `Unknown option --deep: it is an option of verify.\n${HELP_HINT}`);
  });

  it('--help, -h and help print the full help on stdout with exit status 0, without a configuration', async () => {
    const r = await run(['--help']);
    assert.equal(r.code, 0);
    assert.equal(r.stderr, '');
    assert.ok(r.stdout.startsWith(`kadi-ops ${VERSION}: back up, verify, restore and maintain Kadi4Mat hosts over SSH.\n\nUsage: kadi-ops <command> [arguments] [options]\n\nCommands:\n  hosts\n      list the configured hosts\n`), r.stdout);
    assert.ok(r.stdout.includes('\n  verify <host> <set|latest> [--deep] [--break-stale-lock]\n      check every artifact and file against the manifest;'));
    assert.ok(r.stdout.includes('\n  restore <host> <set|latest> [--components LIST] [--no-safety-backup] [--checksum] [--listing FILE] [--overwrite-config] [--verify-again] [--jobs N] [--break-stale-lock] [--yes HOST]\n'));
    for (const verb of [...Object.keys(commands), 'help', 'version']) assert.match(r.stdout, new RegExp(`^  ${verb}\\b`, 'm'), verb);
    assert.ok(r.stdout.includes('\nOptions for every command:\n  --config FILE          host profiles'));
    assert.ok(r.stdout.includes('\n  -h, --help             show the help'));
    assert.ok(r.stdout.includes('\nExit status: 0 success, 1 the operation failed, 2 usage or configuration error, 130 cancelled.\n'));
    assert.ok(r.stdout.endsWith("Run `kadi-ops help <command>` for a command's arguments and options.\n"));
    assert.deepEqual(await run(['help']), r);
    assert.deepEqual(await run(['-h']), r);
    assert.deepEqual(await run(['--json', '--help']), r);
  });

  it("<verb> --help and help <verb> print that verb's arguments and options, exit status 0, even after a bad option", async () => {
    const r = await run(['verify', '--help']);
    assert.equal(r.code, 0);
    assert.equal(r.stderr, '');
    assert.ok(
      r.stdout.startsWith(
        [
          'Usage: kadi-ops verify <host> <set|latest> [--deep] [--break-stale-lock]',
          '',
          'Check every artifact and file against the manifest; --deep also restores the dump into a throwaway PostgreSQL cluster (or a scratch DB) and checks it.',
          '',
          'Arguments:',
          "  <host>        a host profile's name (`kadi-ops hosts` lists them)",
          '  <set|latest>  a backup set (`kadi-ops list <host>` lists them), or latest: the newest complete one',
          '',
          'Options:',
          '  --deep              also restore the dump into a throwaway PostgreSQL cluster (or a scratch database) and cross-check it with the files',
          '  --break-stale-lock  break the lock a dead job left behind (it is named); without it such a lock is refused',
          '',
          'Options for every command:',
          '',
        ].join('\n'),
      ),
      r.stdout,
    );
    assert.ok(r.stdout.endsWith('\nExit status: 0 success, 1 the operation failed, 2 usage or configuration error, 130 cancelled.\n'));
    assert.deepEqual(await run(['help', 'verify']), r);
    assert.deepEqual(await run(['verify', 'sandbox', '--deeep', '-h']), r);
  });

  it("each verb's help lists every option it declares with its description (one source for both)", async () => {
    for (const [verb, c] of Object.entries(commands)) {
      const { code, stdout } = await run(['help', verb]);
      assert.equal(code, 0);
      const usage = stdout.split('\n')[0];
      for (const a of c.args) assert.ok(usage.includes(a.required ? ` ${a.name}` : ` [${a.name}`), `${verb}: ${a.name}`);
      for (const o of c.options) {
        assert.ok(usage.includes(`[--${o.name}${o.type === 'string' ? ` ${o.value}` : ''}]`), `${verb} usage: --${o.name}`);
        assert.match(stdout, new RegExp(`^  --${o.name}${o.type === 'string' ? ` ${o.value}` : ''} +${o.description.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'), `${verb}: --${o.name}`);
      }
    }
  });

  it('--version and version print "kadi-ops <version>" from package.json, exit status 0, without a configuration', async () => {
    const v = { code: 0, stdout: `kadi-ops ${VERSION}\n`, stderr: '' };
    assert.deepEqual(await run(['--version']), v);
    assert.deepEqual(await run(['version']), v);
    assert.deepEqual(await run(['verify', '--version']), v);
    assert.deepEqual(await run(['--version', '--json']), { code: 0, stdout: `{"name":"kadi-ops","version":"${VERSION}"}\n`, stderr: '' });
    await fails(['version', 'now'], `Unexpected argument "now" for version: it takes none.\n${hintFor('version')}`);
  });
});

describe('CLI configuration errors: exit status 2, before connecting', () => {
  const write = (name: string, text: string): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text);
    return f;
  };

  it('without any configuration, says where it looked and how to point elsewhere', async () => {
    const file = path.join(home, '.config', 'kadi-ops', 'hosts.json');
    const message =
      `No host configuration: looked for ${file} (the default, ~/.config/kadi-ops/hosts.json), which does not exist.\n` +
      'Point to one with --config <file> or $KADI_OPS_CONFIG, or create it: {"hosts": [{"name": "prod", "ssh": {"host": "kadi.example.org"}}]}.\n';
    await fails(['hosts'], message);
    await fails(['hosts'], message, { KADI_OPS_CONFIG: '' });
    await fails(['check', 'prod'], message);
  });

  it('a missing --config or $KADI_OPS_CONFIG file names where it came from', async () => {
    const again = 'Point to another with --config <file> or $KADI_OPS_CONFIG (without either: ~/.config/kadi-ops/hosts.json).\n';
    await fails(['hosts', '--config', NO_CONFIG], `Cannot read config file ${NO_CONFIG} (given by --config): it does not exist.\n${again}`);
    await fails(['hosts'], `Cannot read config file ${NO_CONFIG} (given by $KADI_OPS_CONFIG): it does not exist.\n${again}`, { KADI_OPS_CONFIG: NO_CONFIG });
    // --config wins over $KADI_OPS_CONFIG.
    const ok = write('env-ok.json', '{"hosts": [{"name": "prod", "ssh": {"host": "kadi.example.org"}}]}');
    await fails(['hosts', '--config', NO_CONFIG], `Cannot read config file ${NO_CONFIG} (given by --config): it does not exist.\n${again}`, { KADI_OPS_CONFIG: ok });
    assert.equal((await run(['hosts'], { KADI_OPS_CONFIG: ok })).code, 0);
  });

  it('invalid JSON and invalid host entries are configuration errors with line and column, or host and field', async () => {
    const bad = write('bad.json', '{\n  "hosts": [\n    { "name": "a", "ssh": { "host": "h" } }\n    { "name": "b" }\n  ]\n}\n');
    await fails(['hosts', '--config', bad], `Config file ${bad} is not valid JSON: Expected "," or "]" after a list item but found "{" at line 4, column 5.\n`);
    const unreadable = path.join(dir);
    await fails(['hosts', '--config', unreadable], `Cannot read config file ${unreadable}: it is a directory.\n`);
    const port = write('port.json', JSON.stringify({ hosts: [{ name: 'x', ssh: { host: 'h', port: 'abc' } }] }));
    const r = await run(['check', 'x', '--config', port]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`^Invalid host configuration in ${port.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\n  Host "x": ssh\\.port`));
  });

  it('reindex --model of a model Kadi has no index for is a usage error naming the models, before connecting', async () => {
    const ok = write('reindex.json', '{"hosts": [{"name": "prod", "ssh": {"host": "kadi.invalid"}}]}');
    await fails(['reindex', 'prod', '--model', 'nosuch', '--config', ok], `--model must be one of record, collection, template, group, not "nosuch".\n`);
  });

  it('sudoers --json gives the file\'s text and each privileged command as its words (before: the text alone)', async () => {
    const ok = write('sudoers.json', JSON.stringify({ hosts: [{ name: 'prod', ssh: { host: 'kadi.invalid' }, services: ['kadi-uwsgi'] }] }));
    const text = await run(['sudoers', 'prod', '--config', ok]);
    const r = await run(['sudoers', 'prod', '--config', ok, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as { host: string; user: string; file: string; text: string; commands: { runAs: string; argv: string[] }[] };
    assert.equal(doc.host, 'prod');
    assert.equal(doc.text.trimEnd(), text.stdout.trimEnd());
    assert.deepEqual(doc.commands.map((c) => [c.runAs, c.argv.slice(1).join(' ')]), [['root', 'stop kadi-uwsgi'], ['root', 'start kadi-uwsgi']]);
    assert.ok(doc.commands.every((c) => c.argv[0].startsWith('/')), 'absolute commands');
  });

  it('a good configuration runs the verb: hosts lists, an unknown host name is a usage error', async () => {
    const ok = write('ok.jsonc', '{\n  // comments are fine\n  "hosts": [{ "name": "prod", "ssh": { "host": "kadi.example.org" } },],\n}\n');
    assert.deepEqual(await run(['hosts', '--config', ok]), { code: 0, stdout: 'prod                 kadi@kadi.example.org:22  /mnt/backups/kadi\n', stderr: '' });
    await fails(['check', 'nope', '--config', ok], 'No host named "nope" in the configuration (known: prod).\n');
  });
});

describe('CLI errors under --json', () => {
  it('a usage error is one JSON object on stderr, with the verb once known', async () => {
    const r = await run(['verify', 'sandbox', 'latest', '--deeep', '--json']);
    assert.equal(r.code, 2);
    assert.deepEqual(jsonError(r), { error: { kind: 'usage', message: 'Unknown option --deeep for verify. Did you mean --deep?', exitCode: 2, command: 'verify' } });
    const v = await run(['--json', 'verfy']);
    assert.equal(v.code, 2);
    assert.deepEqual(jsonError(v), { error: { kind: 'usage', message: 'Unknown command "verfy". Did you mean "verify"?', exitCode: 2 } });
  });

  it('a configuration error is kind "config", exit status 2', async () => {
    const r = await run(['hosts', '--json', '--config', NO_CONFIG]);
    assert.equal(r.code, 2);
    assert.deepEqual(jsonError(r), {
      error: {
        kind: 'config',
        message: `Cannot read config file ${NO_CONFIG} (given by --config): it does not exist.\nPoint to another with --config <file> or $KADI_OPS_CONFIG (without either: ~/.config/kadi-ops/hosts.json).`,
        exitCode: 2,
        command: 'hosts',
      },
    });
  });

  it('a failed operation is kind "failed", exit status 1 (a refused connection)', async () => {
    // A port nothing listens on: one just closed.
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise((resolve) => server.close(resolve));
    const f = path.join(dir, 'dead.json');
    fs.writeFileSync(f, JSON.stringify({ hosts: [{ name: 'dead', ssh: { host: '127.0.0.1', port, knownHostsFile: path.join(dir, 'known_hosts') } }] }));
    const message = `Connection to kadi@127.0.0.1:${port} refused (is sshd running on that port?).`;
    assert.deepEqual(await run(['check', 'dead', '--config', f]), { code: 1, stdout: '', stderr: `kadi-ops: ${message}\n` });
    const r = await run(['check', 'dead', '--config', f, '--json']);
    assert.equal(r.code, 1);
    assert.deepEqual(jsonError(r), { error: { kind: 'failed', message, exitCode: 1, command: 'check' } });
    // Every verb that connects gets as far as connecting (a review found five maintenance verbs
    // failing before it, on an option they do not declare).
    for (const argv of [['db-upgrade'], ['reindex'], ['files-check'], ['redis-snapshot'], ['fix-permissions'], ['indices'], ['remove-orphans', '--yes', 'dead'],
      ['restore', 'dead', 'latest', '--yes', 'dead'], ['list'], ['verify', 'dead', 'latest'], ['backup'], ['jobs'], ['status']]) {
      const [verb, ...rest] = argv;
      const args = rest[0] === 'dead' ? [verb, ...rest] : [verb, 'dead', ...rest];
      const got = await run([...args, '--config', f]);
      assert.equal(got.code, 1, `${args.join(' ')}: ${got.stderr}`);
      assert.ok(got.stderr.includes(message) || (verb === 'status' && got.stdout.includes('refused')), `${args.join(' ')}: ${got.stderr}${got.stdout}`);
    }
  });

  it('a cancel is kind "cancelled", exit status 130; text output keeps the hint line for usage errors only', () => {
    assert.deepEqual(errorOutput(new CancelledError('The backup'), true, 'backup'), { text: '{"error":{"kind":"cancelled","message":"The backup was cancelled.","exitCode":130,"command":"backup"}}', exitCode: 130 });
    assert.deepEqual(errorOutput(new CancelledError('The backup'), false), { text: 'The backup was cancelled.', exitCode: 130 });
    assert.deepEqual(errorOutput(new UsageError('Bad.', 'Hint.'), false), { text: 'Bad.\nHint.', exitCode: 2 });
    assert.deepEqual(errorOutput(new UsageError('Bad.', 'Hint.'), true), { text: '{"error":{"kind":"usage","message":"Bad.","exitCode":2}}', exitCode: 2 });
    assert.deepEqual(errorOutput(new Error('Boom.'), false), { text: 'kadi-ops: Boom.', exitCode: 1 });
  });
});

describe('the bundled CLI (dist/cli.js) behaves the same', () => {
  const bundled = (...args: string[]): Run => {
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, HOME: home, KADI_OPS_CONFIG: '' }, timeout: 30000 });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };

  it('--version, a misspelt verb, a misspelt option and --help', async () => {
    assert.ok(fs.existsSync(CLI), `${CLI} is built (npm run build)`);
    assert.deepEqual(bundled('--version'), { code: 0, stdout: `kadi-ops ${VERSION}\n`, stderr: '' });
    assert.deepEqual(bundled('verfy'), { code: 2, stdout: '', stderr: `Unknown command "verfy". Did you mean "verify"?\n${HELP_HINT}` });
    assert.deepEqual(bundled('verify', 'sandbox', 'latest', '--deeep', '--json'), await run(['verify', 'sandbox', 'latest', '--deeep', '--json']));
    assert.deepEqual(bundled('--help'), await run(['--help']));
    assert.deepEqual(bundled('hosts'), await run(['hosts']));
  });
});
