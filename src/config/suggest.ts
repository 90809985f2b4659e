/** "Did you mean" for misspelt names: setting keys, and the CLI's commands and options. */

/**
 * Edits between `a` and `b`: insertions, deletions, substitutions and swaps of two neighbouring
 * characters (Damerau's optimal string alignment), so "verfiy" is one edit from "verify", as a person
 * counts it.
 */
export function editDistance(a: string, b: string): number {
  let before: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      let d = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, before[j - 2] + 1);
      row.push(d);
    }
    before = prev;
    prev = row;
  }
  return prev[b.length];
}

/**
 * The known key closest to `unknown`, or undefined when nothing is plausibly meant. Case is ignored
 * and a shared prefix counts (`hostName` → `host`, `backupDirectory` → `backupDir`), because those
 * are the mistakes people make when copying from ssh_config or other tools. Up to a third of a name
 * may be edits, and at least `minEdits` (2 by default; the CLI asks 1, so "--dep" does not become
 * "--help").
 */
export function closestKey(unknown: string, known: readonly string[], minEdits = 2): string | undefined {
  const u = unknown.toLowerCase();
  let best: { key: string; score: number } | undefined;
  for (const key of known) {
    const k = key.toLowerCase();
    let score = editDistance(u, k);
    if (score > Math.max(minEdits, Math.floor(k.length / 3))) {
      const prefix = k.length >= 3 && (u.startsWith(k) || k.startsWith(u)) && u.length >= 3;
      if (!prefix) continue;
      score = 10 + Math.abs(u.length - k.length);
    }
    if (!best || score < best.score) best = { key, score };
  }
  return best?.key;
}
