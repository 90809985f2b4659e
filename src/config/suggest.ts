/** "Did you mean" for misspelt setting names. */

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length];
}

/**
 * The known key closest to `unknown`, or undefined when nothing is plausibly meant. Case is ignored
 * and a shared prefix counts (`hostName` → `host`, `backupDirectory` → `backupDir`), because those
 * are the mistakes people make when copying from ssh_config or other tools.
 */
export function closestKey(unknown: string, known: readonly string[]): string | undefined {
  const u = unknown.toLowerCase();
  let best: { key: string; score: number } | undefined;
  for (const key of known) {
    const k = key.toLowerCase();
    let score = editDistance(u, k);
    if (score > Math.max(2, Math.floor(k.length / 3))) {
      const prefix = k.length >= 3 && (u.startsWith(k) || k.startsWith(u)) && u.length >= 3;
      if (!prefix) continue;
      score = 10 + Math.abs(u.length - k.length);
    }
    if (!best || score < best.score) best = { key, score };
  }
  return best?.key;
}
