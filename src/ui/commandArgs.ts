/**
 * What a command was invoked with: a tree node (context menu, inline action, item click), a URI
 * (editor title or explorer menus), or nothing (palette, keybinding). Pure, so it is unit-tested;
 * anything unexpected is treated like "nothing", and the command asks with a QuickPick.
 */
import type { BackupSet } from '../backup/manifest';
import type { HostProfile } from '../config/types';
import type { ModelNode } from './treeModel';

const KINDS = new Set(['host', 'group', 'set', 'artifact', 'job', 'partial', 'snapshot', 'message']);

export function nodeArg(arg: unknown): ModelNode | undefined {
  if (typeof arg !== 'object' || arg === null || Array.isArray(arg)) return undefined;
  const kind = (arg as { kind?: unknown }).kind;
  if (typeof kind !== 'string' || !KINDS.has(kind)) return undefined;
  const n = arg as ModelNode;
  if (n.kind !== 'message' && (typeof n.profile !== 'object' || n.profile === null || typeof n.profile.name !== 'string')) return undefined;
  if ((n.kind === 'set' || n.kind === 'artifact') && (typeof n.set !== 'object' || n.set === null || typeof n.set.name !== 'string')) return undefined;
  if (n.kind === 'snapshot' && (typeof n.snapshot !== 'object' || n.snapshot === null || typeof n.snapshot.id !== 'string')) return undefined;
  return n;
}

export interface UriLike {
  scheme: string;
  path: string;
  fsPath?: string;
}

export function uriArg(arg: unknown): UriLike | undefined {
  if (typeof arg !== 'object' || arg === null) return undefined;
  const u = arg as { scheme?: unknown; path?: unknown };
  return typeof u.scheme === 'string' && typeof u.path === 'string' ? (arg as UriLike) : undefined;
}

/** The host a node belongs to, if any (a message node about a host counts). */
export function hostOf(node: ModelNode | undefined): HostProfile | undefined {
  if (!node) return undefined;
  return 'profile' in node ? node.profile : undefined;
}

/** The backup set a node stands for: the set itself or one of its artifacts. */
export function setOf(node: ModelNode | undefined): { profile: HostProfile; set: BackupSet } | undefined {
  if (node?.kind === 'set' || node?.kind === 'artifact') return { profile: node.profile, set: node.set };
  return undefined;
}
