/** Human-readable sizes for the CLI, the tree and messages. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** An age for a row: "<1 min", "5 min", "12 h", "3 d" (never "0 min"). */
export function formatAge(ms: number): string {
  const m = Math.max(0, Math.round(ms / 60000));
  if (m < 1) return '<1 min';
  if (m < 60) return `${m} min`;
  const h = Math.round(m / 60);
  if (h < 48) return `${h} h`;
  return `${Math.round(h / 24)} d`;
}
