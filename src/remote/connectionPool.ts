/**
 * One RemoteHost per host profile. Its connection is opened on first use and reopened on demand
 * after it dropped, so a RemoteHost stays valid across a cut connection.
 */
import type { HostProfile } from '../config/types';
import { SshConnection, type ConnectDeps } from '../ssh/connection';
import { RemoteHost } from './remoteHost';

export class ConnectionPool {
  private readonly hosts = new Map<string, Promise<RemoteHost>>();

  constructor(private readonly deps: ConnectDeps) {}

  async get(profile: HostProfile): Promise<RemoteHost> {
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
