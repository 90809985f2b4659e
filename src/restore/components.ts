/** What a restore can replace, and how the CLI/UI names it. */
export const RESTORE_COMPONENTS = ['db', 'storage', 'uploads', 'redis', 'config'] as const;
export type RestoreComponent = (typeof RESTORE_COMPONENTS)[number];

/** Replaced unless the operator names components: Redis and config are opt-in (see issue 4). */
export const DEFAULT_COMPONENTS: readonly RestoreComponent[] = ['db', 'storage', 'uploads'];

export class RestoreUsageError extends Error {}

/** "db,storage" → ['db', 'storage'] in canonical order; unknown names are an error. */
export function parseComponents(text: string | undefined): RestoreComponent[] {
  if (text === undefined) return [...DEFAULT_COMPONENTS];
  const names = text.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = names.filter((n) => !(RESTORE_COMPONENTS as readonly string[]).includes(n));
  if (bad.length > 0) throw new RestoreUsageError(`Unknown component(s): ${bad.join(', ')} (known: ${RESTORE_COMPONENTS.join(', ')}).`);
  if (names.length === 0) throw new RestoreUsageError('Name at least one component.');
  return RESTORE_COMPONENTS.filter((c) => names.includes(c));
}
