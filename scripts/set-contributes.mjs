// Writes package.json "contributes" except "configuration" (kept as is) from one readable table.
import fs from 'node:fs';

const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8'));
const cmd = (id, title, icon, extra = {}) => ({ command: `kadiOps.${id}`, title, category: 'Kadi Ops', ...(icon ? { icon: `$(${icon})` } : {}), ...extra });
const commands = [
  cmd('refresh', 'Refresh', 'refresh'),
  cmd('addHost', 'Add Host…', 'add'),
  cmd('editHosts', 'Edit Hosts (settings.json)', 'settings-gear'),
  cmd('checkHost', 'Check Host', 'pulse'),
  cmd('showOutput', 'Show Output', 'output'),
  cmd('backupNow', 'Backup Now', 'cloud-upload'),
  cmd('verify', 'Verify Backup (quick)', 'verified'),
  cmd('verifyDeep', 'Verify Backup (deep: scratch restore + file cross-check)', 'workspace-trusted'),
  cmd('pin', 'Pin Backup', 'pinned'),
  cmd('unpin', 'Unpin Backup', 'pin'),
  cmd('prune', 'Prune Backups…', 'trash'),
  cmd('cancelJob', 'Cancel Job', 'debug-stop'),
  cmd('attachJob', 'Attach to Job', 'debug-disconnect'),
  cmd('cleanPartials', 'Remove Partial Sets…', 'clear-all'),
];
const hostItem = 'view == kadiOps.hosts && viewItem =~ /^host;/';
const setItem = 'view == kadiOps.hosts && viewItem =~ /^backup;/';
const jobRunning = 'view == kadiOps.hosts && viewItem =~ /^job;running;/';
pkg.contributes = {
  ...pkg.contributes,
  viewsContainers: { activitybar: [{ id: 'kadiOps', title: 'Kadi Ops', icon: 'media/activity.svg' }] },
  views: { kadiOps: [{ id: 'kadiOps.hosts', name: 'Kadi Hosts', icon: 'media/activity.svg', contextualTitle: 'Kadi Ops' }] },
  viewsWelcome: [
    {
      view: 'kadiOps.hosts',
      contents: 'No Kadi hosts are configured yet.\n[Add Host from ~/.ssh/config](command:kadiOps.addHost)\n[Edit Hosts in Settings](command:kadiOps.editHosts)\nA host needs only a name and an SSH target; paths default to a standard Kadi4Mat install.',
    },
  ],
  commands,
  menus: {
    commandPalette: [
      { command: 'kadiOps.refresh', when: 'false' },
      { command: 'kadiOps.cancelJob', when: 'false' },
      { command: 'kadiOps.attachJob', when: 'false' },
    ],
    'view/title': [
      { command: 'kadiOps.addHost', when: 'view == kadiOps.hosts', group: 'navigation@1' },
      { command: 'kadiOps.refresh', when: 'view == kadiOps.hosts', group: 'navigation@2' },
      { command: 'kadiOps.editHosts', when: 'view == kadiOps.hosts', group: '1_config' },
    ],
    'view/item/context': [
      { command: 'kadiOps.backupNow', when: hostItem, group: 'inline@1' },
      { command: 'kadiOps.backupNow', when: hostItem, group: '0_backup@1' },
      { command: 'kadiOps.prune', when: hostItem, group: '0_backup@2' },
      { command: 'kadiOps.refresh', when: hostItem, group: 'inline@3' },
      { command: 'kadiOps.verify', when: setItem, group: '1_verify@1' },
      { command: 'kadiOps.verifyDeep', when: setItem, group: '1_verify@2' },
      { command: 'kadiOps.pin', when: `${setItem} && viewItem =~ /;unpinned;/`, group: '2_pin@1' },
      { command: 'kadiOps.unpin', when: `${setItem} && viewItem =~ /;pinned;/`, group: '2_pin@1' },
      { command: 'kadiOps.cancelJob', when: jobRunning, group: 'inline@1' },
      { command: 'kadiOps.cancelJob', when: jobRunning, group: '1_job@1' },
      { command: 'kadiOps.attachJob', when: 'view == kadiOps.hosts && viewItem =~ /^job;/', group: '1_job@2' },
      { command: 'kadiOps.cleanPartials', when: 'view == kadiOps.hosts && viewItem =~ /^(partial;|group;partials;)/', group: '1_partial@1' },
      { command: 'kadiOps.checkHost', when: hostItem, group: 'inline@2' },
      { command: 'kadiOps.checkHost', when: hostItem, group: '1_host@1' },
      { command: 'kadiOps.showOutput', when: hostItem, group: '9_output@1' },
    ],
  },
};
fs.writeFileSync('package.json', JSON.stringify(pkg, null, 2) + '\n');
