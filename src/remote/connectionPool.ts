/** One live connection per host profile, reopened on demand after it dropped. */
import type { HostProfile } from '../config/types';
import { SshConnection, type ConnectDeps } from '../ssh/connection';
import { RemoteHost } from './remoteHost';

export class ConnectionPool {
  private readonly hosts = new Map<string, Promise<RemoteHost>>();

  constructor(private readonly deps: ConnectDeps) {}

  get(profile: HostProfile): Promise<RemoteHost> {
    const existing = this.hosts.get(profile.name);
    if (existing) return existing;
    const opening = SshConnection.connect(profile, this.deps).then((conn) => {
      conn.onClose(() => {
        if (this.hosts.get(profile.name) === opening) this.hosts.delete(profile.name);
      });
      return new RemoteHost(conn, this.deps.secrets);
    });
    opening.catch(() => this.hosts.delete(profile.name));
    this.hosts.set(profile.name, opening);
    return opening;
  }

  /** Connected profile names (for the tree's connection state). */
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
