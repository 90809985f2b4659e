/**
 * One RemoteHost per host profile. Its connection is opened on first use and reopened on demand
 * after it dropped, so a RemoteHost stays valid across a cut connection.
 */
import type { HostProfile } from '../config/types';
import { SshConnection, type ConnectDeps } from '../ssh/connection';
import { CancelledError } from '../ssh/errors';
import { RemoteHost } from './remoteHost';

export class ConnectionPool {
  private readonly hosts = new Map<string, Promise<RemoteHost>>();

  constructor(private readonly deps: ConnectDeps) {}

  /**
   * The host's RemoteHost, connected. signal: stop waiting at once when it aborts (Ctrl-C while the
   * connection is being made, the host unreachable): CancelledError; the connection still being
   * made is closed when it is made (closeAll/drop).
   */
  async get(profile: HostProfile, signal?: AbortSignal): Promise<RemoteHost> {
    if (!signal) return this.open(profile);
    if (signal.aborted) throw new CancelledError('Connecting to ' + profile.name);
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(new CancelledError('Connecting to ' + profile.name));
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([this.open(profile), aborted]);
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }

  private async open(profile: HostProfile): Promise<RemoteHost> {
    let opening = this.hosts.get(profile.name);
    if (!opening) {
      const connect = (): Promise<SshConnection> => SshConnection.connect(profile, this.deps);
      opening = connect().then((conn) => new RemoteHost(conn, this.deps.secrets, connect));
      this.hosts.set(profile.name, opening);
      opening.catch(() => {
        if (this.hosts.get(profile.name) === opening) this.hosts.delete(profile.name);
      });
    }
    const host = await opening;
    await host.live();
    return host;
  }

  /** Whether the host currently has an open connection (for the tree's connection state). */
  async isConnected(name: string): Promise<boolean> {
    const h = this.hosts.get(name);
    if (!h) return false;
    try {
      return (await h).connection.isOpen;
    } catch {
      return false;
    }
  }

  drop(name: string): void {
    const h = this.hosts.get(name);
    this.hosts.delete(name);
    h?.then((x) => x.connection.close(), () => undefined);
  }

  closeAll(): void {
    for (const name of [...this.hosts.keys()]) this.drop(name);
  }
}
