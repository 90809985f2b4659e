/** Modal for a host key seen for the first time; a changed key never reaches this (it is refused). */
import * as vscode from 'vscode';
import type { HostKeyPrompt, UnknownHostKey } from '../ssh/connection';

export class HostKeyDialog implements HostKeyPrompt {
  async onUnknownHostKey(info: UnknownHostKey): Promise<'accept-once' | 'trust' | 'reject'> {
    const trust = 'Trust and save to known_hosts';
    const once = 'Accept once';
    const other = info.otherKeyTypes?.length
      ? `\n\nWARNING: known_hosts already has ${info.otherKeyTypes.join(', ')} key(s) for this host, not ${info.keyType}. The server may have been replaced; trust it only after its administrator confirms the new key.`
      : '';
    const answer = await vscode.window.showWarningMessage(
      `${other ? 'A new type of host key' : 'Unknown host key'} for ${info.host} (Kadi host "${info.profile}")`,
      { modal: true, detail: `${info.keyType} key fingerprint:\n${info.fingerprint}\n\nCompare it with the fingerprint the server's administrator gives you (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) before trusting it.${other}` },
      trust,
      once,
    );
    if (answer === trust) return 'trust';
    if (answer === once) return 'accept-once';
    return 'reject';
  }
}
