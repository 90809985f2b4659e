/** Reads host profiles from the `kadiOps.hosts` setting (user level only in untrusted workspaces). */
import * as vscode from 'vscode';
import { formatConfigError, resolveProfiles } from '../config/hostProfiles';
import type { HostProfile } from '../config/types';

export interface LoadedProfiles {
  profiles: HostProfile[];
  errors: string[];
}

export function loadProfilesFromSettings(): LoadedProfiles {
  const config = vscode.workspace.getConfiguration('kadiOps');
  // In an untrusted workspace VS Code already hides workspace values of restricted settings;
  // inspect() keeps us explicit about which level is used.
  const inspected = config.inspect<unknown[]>('hosts');
  const raw = vscode.workspace.isTrusted ? config.get<unknown[]>('hosts', []) : inspected?.globalValue ?? [];
  // The global stale-backup threshold is not restricted: it only colours the tree.
  const { profiles, errors } = resolveProfiles(raw, { backupMaxAgeHours: config.get<number>('backupMaxAgeHours') });
  return { profiles, errors: errors.map(formatConfigError) };
}
