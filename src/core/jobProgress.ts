/**
 * The progress a remote job can tell: its `[step] NAME` lines and its `[progress] KEY PCT%
 * DONE/TOTAL UNIT` lines (printed by the agent's Progress in agent/kadi_ops_agent/common.py). Turns
 * them into one message for a progress notification: "files: copying … — 45% (900 of 2,000 files)".
 */
import { formatBytes } from './format';

export interface ProgressLine {
  key: string;
  percent: number;
  done: number;
  total: number;
  unit: string;
  /** The total is an estimate (e.g. the tables' size for pg_dump): the percentage is "about". */
  estimated: boolean;
}

const PROGRESS_RE = /^\[progress\] (\S+) (~?)(\d{1,3})% (\d+)\/(~?)(\d+) ([a-z]+)$/;
const STEP_RE = /^\[step\] (.+)$/;

export function parseProgressLine(line: string): ProgressLine | undefined {
  const m = PROGRESS_RE.exec(line);
  if (!m) return undefined;
  const total = Number(m[6]);
  if (total <= 0) return undefined;
  return { key: m[1], percent: Math.min(100, Number(m[3])), done: Number(m[4]), total, unit: m[7], estimated: m[2] === '~' || m[5] === '~' };
}

/** "900 of 2,000 files", "1.2 GiB of ~2.6 GiB". */
function amounts(p: ProgressLine): string {
  const about = p.estimated ? '~' : '';
  if (p.unit === 'bytes') return `${formatBytes(p.done)} of ${about}${formatBytes(p.total)}`;
  return `${p.done.toLocaleString('en-US')} of ${about}${p.total.toLocaleString('en-US')} ${p.unit}`;
}

/** Tracks one job's current step and the progress reported within it. */
export class JobProgress {
  private step = '';
  private readonly parts = new Map<string, ProgressLine>();

  /** Feeds one job output line; returns the new message when it changed what is shown. */
  feed(line: string): string | undefined {
    const step = STEP_RE.exec(line);
    if (step) {
      this.step = step[1];
      this.parts.clear();
      return this.message();
    }
    const p = parseProgressLine(line);
    if (!p) return undefined;
    this.parts.set(p.key, p);
    return this.message();
  }

  /** The overall percentage of the current step, when it reported any. */
  percent(): number | undefined {
    const parts = [...this.parts.values()];
    if (parts.length === 0) return undefined;
    if (parts.every((p) => p.unit === parts[0].unit)) {
      const total = parts.reduce((n, p) => n + p.total, 0);
      const done = parts.reduce((n, p) => n + Math.min(p.done, p.total), 0);
      const pct = Math.floor((done * 100) / total);
      return parts.some((p) => p.estimated) ? Math.min(pct, 99) : pct;
    }
    return Math.floor(parts.reduce((n, p) => n + p.percent, 0) / parts.length);
  }

  message(): string {
    const parts = [...this.parts.values()];
    const pct = this.percent();
    if (pct === undefined) return this.step;
    const about = parts.some((p) => p.estimated) ? '~' : '';
    let detail: string;
    if (parts.length === 1) {
      detail = amounts(parts[0]);
    } else {
      detail = parts.map((p) => `${p.key} ${p.estimated ? '~' : ''}${p.percent}%`).join(', ');
    }
    return `${this.step ? `${this.step} — ` : ''}${about}${pct}% (${detail})`;
  }
}
