/**
 * Test doubles for what the user sees and answers: notifications, modal confirmations and input
 * boxes. The extension and this suite share one `vscode` API object (the suite lives inside the
 * extension's folder), so replacing `vscode.window.show*` here is what the extension calls.
 * Every call is recorded; answers come from rules (first match wins); anything unanswered is
 * dismissed, as if the user pressed Escape.
 */
import * as vscode from 'vscode';

export type DialogKind = 'information' | 'warning' | 'error' | 'input' | 'pick' | 'open';

export interface Shown {
  kind: DialogKind;
  message: string;
  modal: boolean;
  detail?: string;
  items: string[];
  /** What the double answered (undefined: dismissed). */
  answer?: string;
  /** An input box's placeholder (the grey text in the empty box). */
  placeHolder?: string;
}

interface Rule {
  kind: DialogKind | 'any';
  match: RegExp;
  answer: string | undefined;
  once: boolean;
}

type MessageFn = (message: string, ...rest: unknown[]) => Thenable<unknown>;

function titleOf(item: unknown): string {
  if (typeof item === 'string') return item;
  if (item && typeof item === 'object' && 'title' in item) return String((item as vscode.MessageItem).title);
  return String(item);
}

export class Dialogs implements vscode.Disposable {
  readonly shown: Shown[] = [];
  /** Every message reported to a progress notification, under its title ("Backup on sandbox"). */
  readonly progress: { title: string; message: string }[] = [];
  private readonly rules: Rule[] = [];
  private readonly restore: (() => void)[] = [];
  private readonly listeners: ((s: Shown) => void)[] = [];

  constructor() {
    const w = vscode.window as unknown as Record<string, unknown>;
    const patch = (name: string, fn: unknown): void => {
      const original = w[name];
      w[name] = fn;
      if (w[name] !== fn) throw new Error(`cannot replace vscode.window.${name} in this VS Code`);
      this.restore.push(() => {
        w[name] = original;
      });
    };
    const message =
      (kind: DialogKind): MessageFn =>
      async (text: string, ...rest: unknown[]) => {
        let options: vscode.MessageOptions = {};
        if (rest.length > 0 && rest[0] !== null && typeof rest[0] === 'object' && !('title' in (rest[0] as object))) options = rest.shift() as vscode.MessageOptions;
        const items = rest.filter((r) => r !== undefined);
        const shown: Shown = { kind, message: text, modal: !!options.modal, detail: options.detail, items: items.map(titleOf) };
        const rule = this.take(kind, text);
        const wanted = rule?.answer;
        const item = wanted === undefined ? undefined : items.find((i) => titleOf(i) === wanted);
        if (wanted !== undefined && item === undefined) throw new Error(`dialog "${text}" has no button "${wanted}" (has: ${shown.items.join(', ')})`);
        shown.answer = item === undefined ? undefined : titleOf(item);
        this.record(shown);
        return item;
      };
    // withProgress still shows the real notification; the reports are recorded on the way.
    const withProgress = vscode.window.withProgress.bind(vscode.window);
    patch('withProgress', <R>(options: vscode.ProgressOptions, task: (p: vscode.Progress<{ message?: string; increment?: number }>, t: vscode.CancellationToken) => Thenable<R>) =>
      withProgress(options, (progress, token) =>
        task(
          {
            report: (value) => {
              if (value.message !== undefined) this.progress.push({ title: options.title ?? '', message: value.message });
              progress.report(value);
            },
          },
          token,
        ),
      ),
    );
    patch('showInformationMessage', message('information'));
    patch('showWarningMessage', message('warning'));
    patch('showErrorMessage', message('error'));
    patch('showInputBox', async (options?: vscode.InputBoxOptions) => {
      const text = [options?.title, options?.prompt].filter(Boolean).join(': ');
      const rule = this.take('input', text);
      const shown: Shown = { kind: 'input', message: text, modal: false, items: [], answer: rule?.answer, placeHolder: options?.placeHolder };
      this.record(shown);
      return rule?.answer;
    });
    // A quick pick is answered by an item's label; an open dialog by a path.
    patch('showQuickPick', async (items: readonly (string | vscode.QuickPickItem)[] | Thenable<readonly (string | vscode.QuickPickItem)[]>, options?: vscode.QuickPickOptions) => {
      const list = await items;
      const text = options?.title ?? options?.placeHolder ?? '';
      const labels = list.map((i) => (typeof i === 'string' ? i : i.label));
      const rule = this.take('pick', text);
      const item = rule?.answer === undefined ? undefined : list[labels.indexOf(rule.answer)];
      if (rule?.answer !== undefined && item === undefined) throw new Error(`quick pick "${text}" has no item "${rule.answer}" (has: ${labels.join(', ')})`);
      this.record({ kind: 'pick', message: text, modal: false, items: labels, answer: rule?.answer });
      return item;
    });
    patch('showOpenDialog', async (options?: vscode.OpenDialogOptions) => {
      const text = options?.title ?? '';
      const rule = this.take('open', text);
      this.record({ kind: 'open', message: text, modal: false, items: [], answer: rule?.answer });
      return rule?.answer === undefined ? undefined : [vscode.Uri.file(rule.answer)];
    });
  }

  /** Answers the next dialog (of `kind`, or any) whose message matches with the given button / input. */
  answer(kind: DialogKind | 'any', match: RegExp, answer: string | undefined, opts: { once?: boolean } = {}): this {
    this.rules.push({ kind, match, answer, once: opts.once ?? false });
    return this;
  }

  /** Position to pass to waitFor() to ignore what was shown so far. */
  mark(): number {
    return this.shown.length;
  }

  /** Resolves with the first dialog (shown since `from`, or still to come) that matches. */
  waitFor(kind: DialogKind | 'any', match: RegExp, from = 0, timeoutMs = 30000): Promise<Shown> {
    const seen = this.shown.slice(from).find((s) => (kind === 'any' || s.kind === kind) && match.test(s.message));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${kind} dialog matching ${match} within ${timeoutMs} ms; shown: ${JSON.stringify(this.shown.map((s) => s.message))}`)), timeoutMs);
      this.listeners.push((s) => {
        if ((kind === 'any' || s.kind === kind) && match.test(s.message)) {
          clearTimeout(timer);
          resolve(s);
        }
      });
    });
  }

  of(kind: DialogKind): Shown[] {
    return this.shown.filter((s) => s.kind === kind);
  }

  dispose(): void {
    for (const r of this.restore.reverse()) r();
    this.restore.length = 0;
  }

  private take(kind: DialogKind, text: string): Rule | undefined {
    const i = this.rules.findIndex((r) => (r.kind === 'any' || r.kind === kind) && r.match.test(text));
    if (i < 0) return undefined;
    const rule = this.rules[i];
    if (rule.once) this.rules.splice(i, 1);
    return rule;
  }

  private record(s: Shown): void {
    this.shown.push(s);
    for (const l of this.listeners) l(s);
  }
}

/**
 * Records what is written to a host's output channel (the channel object is a plain object, so its
 * methods can be wrapped; the real channel still receives everything).
 */
export class ChannelRecorder implements vscode.Disposable {
  private readonly parts: string[] = [];
  private readonly restore: (() => void)[] = [];

  constructor(channel: vscode.LogOutputChannel) {
    const c = channel as unknown as Record<string, (...a: unknown[]) => unknown>;
    for (const name of ['append', 'appendLine', 'replace', 'trace', 'debug', 'info', 'warn', 'error']) {
      const original = c[name];
      c[name] = (...args: unknown[]) => {
        const text = args[0] instanceof Error ? args[0].message : String(args[0]);
        this.parts.push(name === 'append' || name === 'replace' ? text : `[${name}] ${text}\n`);
        return original.apply(channel, args);
      };
      this.restore.push(() => {
        c[name] = original;
      });
    }
  }

  text(): string {
    return this.parts.join('');
  }

  lines(): string[] {
    return this.text().split('\n').filter((l) => l.length > 0);
  }

  dispose(): void {
    for (const r of this.restore.reverse()) r();
    this.restore.length = 0;
  }
}
