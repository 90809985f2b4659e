/** Errors the SSH layer raises; each message is written for the operator who will read it. */
export class SshError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
    this.name = 'SshError';
  }
}

export class HostKeyChangedError extends SshError {
  constructor(readonly host: string, readonly fingerprint: string, readonly knownHostsFile: string, lines: number[]) {
    super(
      `REMOTE HOST KEY CHANGED for ${host}: the server offered ${fingerprint}, which does not match ` +
        `${knownHostsFile} (line ${lines.join(', ')}). This may be an attack, or the host was reinstalled. ` +
        `Connection refused; if the change is expected, remove the old entry (ssh-keygen -R) and connect again.`,
      'HOST_KEY_CHANGED',
    );
  }
}

export class HostKeyRejectedError extends SshError {
  constructor(host: string, fingerprint: string, reason: string) {
    super(`Host key of ${host} (${fingerprint}) not trusted: ${reason}.`, 'HOST_KEY_REJECTED');
  }
}

export class ChannelClosedError extends SshError {
  constructor(command: string) {
    super(`The connection closed before "${command}" reported an exit status; its outcome is unknown.`, 'NO_EXIT_STATUS');
  }
}

export class CancelledError extends Error {
  constructor(what = 'Operation') {
    super(`${what} was cancelled.`);
    this.name = 'CancelledError';
  }
}
