/**
 * The components of a Kadi instance, in their canonical order. Adding one is a module here (with
 * the ClientComponent interface of types.ts) and its counterpart in agent/kadi_ops_agent/components/.
 */
import { config } from './config';
import { database } from './database';
import { redis } from './redis';
import { storage } from './storage';
import type { ClientComponent, ComponentName } from './types';
import { uploads } from './uploads';

export type { ClientComponent, ComponentName, PreflightContext } from './types';

export const COMPONENTS: readonly ClientComponent[] = [database, storage, uploads, redis, config];

/** What a restore can replace, and how the CLI/UI names it. */
export const RESTORE_COMPONENTS: readonly ComponentName[] = COMPONENTS.map((c) => c.name);
export type RestoreComponent = ComponentName;

/** Replaced unless the operator names components. */
export const DEFAULT_COMPONENTS: readonly ComponentName[] = COMPONENTS.filter((c) => c.restoredByDefault).map((c) => c.name);

export class RestoreUsageError extends Error {}

/** The components named, in canonical order. */
export function componentsNamed(names: readonly ComponentName[]): ClientComponent[] {
  return COMPONENTS.filter((c) => names.includes(c.name));
}

/** "db,storage" → ['db', 'storage'] in canonical order; unknown names are an error. */
export function parseComponents(text: string | undefined): ComponentName[] {
  if (text === undefined) return [...DEFAULT_COMPONENTS];
  const names = text.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = names.filter((n) => !(RESTORE_COMPONENTS as readonly string[]).includes(n));
  if (bad.length > 0) throw new RestoreUsageError(`Unknown component(s): ${bad.join(', ')} (known: ${RESTORE_COMPONENTS.join(', ')}).`);
  if (names.length === 0) throw new RestoreUsageError('Name at least one component.');
  return RESTORE_COMPONENTS.filter((c) => names.includes(c));
}
