// Writes package.json "contributes" except "configuration" (kept as is) from one readable table.
import fs from 'node:fs';

const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8'));
const cmd = (id, title, icon, extra = {}) => ({ command: `kadiOps.${id}`, title, category: 'Kadi Ops', ...(icon ? { icon: `$(${icon})` } : {}), ...extra });
const commands = [
  cmd('refresh', 'Refresh', 'refresh'),
  cmd('addHost', 'Add Host…', 'add'),
  cmd('editHosts', 'Edit Hosts (settings.json)', 'settings-gear'),
  cmd('checkHost', 'Check Host', 'pulse'),
  cmd('showSudoers', 'Show Sudoers Rules'),
  cmd('scheduleBackups', 'Schedule Backups…', 'watch'),
  cmd('showOutput', 'Show Output', 'output'),
  cmd('backupNow', 'Backup Now', 'cloud-upload'),
  cmd('verify', 'Verify Backup (quick)', 'verified'),
  cmd('verifyDeep', 'Verify Backup (deep: scratch restore + file cross-check)', 'workspace-trusted'),
  cmd('restore', 'Restore…', 'history'),
  cmd('restoreComponents', 'Restore Components…', 'checklist'),
  cmd('dbUpgrade', 'DB Upgrade (kadi db upgrade)', 'arrow-up'),
  cmd('reindex', 'Reindex Search…', 'search'),
  cmd('showIndices', 'Show Search Indices', 'list-unordered'),
  cmd('removeOrphans', 'Remove Orphaned Indices…', 'trash'),
  cmd('filesCheck', 'Files Check (kadi files check)', 'checklist'),
  cmd('fixPermissions', 'Fix Permissions', 'lock'),
  cmd('redisSnapshot', 'Redis Snapshot', 'database'),
  cmd('pin', 'Pin Backup', 'pinned'),
  cmd('unpin', 'Unpin Backup', 'pin'),
  cmd('prune', 'Prune Backups…', 'trash'),
  cmd('cancelJob', 'Cancel Job', 'debug-stop'),
  cmd('attachJob', 'Attach to Job', 'debug-disconnect'),
  cmd('showJobLog', 'Show Job Log', 'output'),
  cmd('cleanPartials', 'Remove Partial Sets…', 'clear-all'),
  cmd('showDumpListing', 'Show Dump Listing', 'list-flat'),
  cmd('saveListingCopy', 'Save Editable Copy of Dump Listing…', 'edit'),
  cmd('restoreFromListing', 'Restore from Listing…', 'history'),
  cmd('downloadSet', 'Download Set…', 'cloud-download'),
  cmd('uploadSet', 'Upload Set…', 'repo-push'),
  cmd('forgetSecrets', 'Forget Secrets for Host…', 'key'),
  cmd('offsiteSetUp', 'Set Up Off-site Repository…', 'cloud'),
  cmd('offsitePush', 'Copy Set Off-site', 'cloud-upload'),
  cmd('offsiteCheck', 'Check Off-site Repository…', 'checklist'),
  cmd('offsiteForget', 'Forget Old Off-site Snapshots…', 'trash'),
  cmd('offsiteRestore', 'Restore Set from Off-site…', 'cloud-download'),
  cmd('openDashboard', 'Open Dashboard', 'dashboard'),
];
const SET_DIR_RE = '/^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9]{2}Z$/';
const step = (id, title, description, completionEvents) => ({ id, title, description, media: { markdown: `media/walkthrough/${id}.md` }, completionEvents });
const hostItem = 'view == kadiOps.hosts && viewItem =~ /^host;/';
const setItem = 'view == kadiOps.hosts && viewItem =~ /^backup;/';
const jobRunning = 'view == kadiOps.hosts && viewItem =~ /^job;running;/';
const dumpItem = 'view == kadiOps.hosts && viewItem =~ /^artifact;dbdump;/';
const offsiteHost = `${hostItem} && viewItem =~ /;offsiterepo;/`;
const offsiteGroup = 'view == kadiOps.hosts && viewItem =~ /^group;offsite;/';
// A damaged set is not copied off-site (the agent refuses it too).
const offsiteSet = `${setItem} && viewItem =~ /;offsiterepo;/ && viewItem =~ /^backup;(verified|unverified);/`;
const snapshotItem = 'view == kadiOps.hosts && viewItem =~ /^snapshot;set;/';
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
  languages: [
    {
      id: 'pg-toc-listing',
      aliases: ['pg_restore Listing', 'pg-toc'],
      extensions: ['.pgtoc'],
      firstLine: '^; kadi-ops-origin: ',
      configuration: './syntaxes/pg-toc.language-configuration.json',
    },
  ],
  grammars: [{ language: 'pg-toc-listing', scopeName: 'source.pg-toc', path: './syntaxes/pg-toc.tmLanguage.json' }],
  walkthroughs: [
    {
      id: 'kadiOps.firstSteps',
      title: 'Get started with Kadi Ops',
      description: 'Add a Kadi4Mat host, check it, make a first backup and verify it.',
      steps: [
        step('addHost', 'Add a Kadi host', 'A host needs a name and an SSH target; everything else defaults to a standard Kadi4Mat install and your ~/.ssh/config.\n[Add Host](command:kadiOps.addHost)\n[Edit Hosts in Settings](command:kadiOps.editHosts)', ['onCommand:kadiOps.addHost', 'onSettingChanged:kadiOps.hosts']),
        step('checkHost', 'Check the host', 'Connects over SSH, verifies the host key, finds Kadi, PostgreSQL and the storage paths, and lists any problem before you rely on a backup.\n[Check Host](command:kadiOps.checkHost)', ['onCommand:kadiOps.checkHost']),
        step('backupNow', 'Make a first backup', 'Dumps the database, copies STORAGE_PATH and MISC_UPLOADS_PATH and writes a checksummed manifest. The job keeps running on the host if your connection drops.\n[Backup Now](command:kadiOps.backupNow)', ['onCommand:kadiOps.backupNow']),
        step('verify', 'Verify it', 'A quick verify checks every checksum and that the dump is readable; a deep verify restores into a throwaway PostgreSQL cluster and cross-checks the files.\n[Verify Backup](command:kadiOps.verify)', ['onCommand:kadiOps.verify', 'onCommand:kadiOps.verifyDeep']),
      ],
    },
  ],
  menus: {
    commandPalette: [
      { command: 'kadiOps.refresh', when: 'false' },
      { command: 'kadiOps.cancelJob', when: 'false' },
      { command: 'kadiOps.attachJob', when: 'false' },
      { command: 'kadiOps.showJobLog', when: 'false' },
      { command: 'kadiOps.restoreFromListing', when: 'editorLangId == pg-toc-listing' },
    ],
    'editor/title': [
      { command: 'kadiOps.saveListingCopy', when: 'resourceScheme == kadi-dump', group: 'navigation@1' },
      { command: 'kadiOps.restoreFromListing', when: 'editorLangId == pg-toc-listing && resourceScheme != kadi-dump', group: 'navigation@1' },
    ],
    'explorer/context': [{ command: 'kadiOps.uploadSet', when: `explorerResourceIsFolder && resourceFilename =~ ${SET_DIR_RE}`, group: 'kadiOps@1' }],
    'view/title': [
      { command: 'kadiOps.openDashboard', when: 'view == kadiOps.hosts', group: 'navigation@0' },
      { command: 'kadiOps.addHost', when: 'view == kadiOps.hosts', group: 'navigation@1' },
      { command: 'kadiOps.refresh', when: 'view == kadiOps.hosts', group: 'navigation@2' },
      { command: 'kadiOps.editHosts', when: 'view == kadiOps.hosts', group: '1_config' },
    ],
    'view/item/context': [
      { command: 'kadiOps.backupNow', when: hostItem, group: 'inline@1' },
      { command: 'kadiOps.backupNow', when: hostItem, group: '0_backup@1' },
      { command: 'kadiOps.prune', when: hostItem, group: '0_backup@2' },
      { command: 'kadiOps.refresh', when: hostItem, group: 'inline@3' },
      { command: 'kadiOps.dbUpgrade', when: hostItem, group: '5_maintenance@1' },
      { command: 'kadiOps.reindex', when: hostItem, group: '5_maintenance@2' },
      { command: 'kadiOps.showIndices', when: hostItem, group: '5_maintenance@3' },
      { command: 'kadiOps.removeOrphans', when: hostItem, group: '5_maintenance@4' },
      { command: 'kadiOps.removeOrphans', when: 'view == kadiOps.hosts && viewItem =~ /^(index;orphaned;|group;indices;)/', group: '1_index@1' },
      { command: 'kadiOps.reindex', when: 'view == kadiOps.hosts && viewItem =~ /^(group;indices;|index;)/', group: '1_index@2' },
      { command: 'kadiOps.filesCheck', when: hostItem, group: '5_maintenance@5' },
      { command: 'kadiOps.fixPermissions', when: hostItem, group: '5_maintenance@6' },
      { command: 'kadiOps.redisSnapshot', when: `${hostItem} && viewItem =~ /;redis;/`, group: '5_maintenance@7' },
      { command: 'kadiOps.restore', when: setItem, group: '0_restore@1' },
      { command: 'kadiOps.restoreComponents', when: setItem, group: '0_restore@2' },
      { command: 'kadiOps.verify', when: setItem, group: '1_verify@1' },
      { command: 'kadiOps.verifyDeep', when: setItem, group: '1_verify@2' },
      { command: 'kadiOps.pin', when: `${setItem} && viewItem =~ /;unpinned;/`, group: '2_pin@1' },
      { command: 'kadiOps.unpin', when: `${setItem} && viewItem =~ /;pinned;/`, group: '2_pin@1' },
      { command: 'kadiOps.cancelJob', when: jobRunning, group: 'inline@1' },
      { command: 'kadiOps.cancelJob', when: jobRunning, group: '1_job@1' },
      { command: 'kadiOps.attachJob', when: 'view == kadiOps.hosts && viewItem =~ /^job;/', group: '1_job@2' },
      { command: 'kadiOps.showJobLog', when: 'view == kadiOps.hosts && viewItem =~ /^job;/', group: '1_job@3' },
      { command: 'kadiOps.cleanPartials', when: 'view == kadiOps.hosts && viewItem =~ /^(partial;|group;partials;)/', group: '1_partial@1' },
      { command: 'kadiOps.checkHost', when: hostItem, group: 'inline@2' },
      { command: 'kadiOps.checkHost', when: hostItem, group: '1_host@1' },
      { command: 'kadiOps.showSudoers', when: hostItem, group: '9_output@0' },
      { command: 'kadiOps.showOutput', when: hostItem, group: '9_output@1' },
      { command: 'kadiOps.scheduleBackups', when: hostItem, group: '0_backup@4' },
      { command: 'kadiOps.uploadSet', when: hostItem, group: '0_backup@3' },
      { command: 'kadiOps.forgetSecrets', when: hostItem, group: '8_secrets@1' },
      { command: 'kadiOps.showDumpListing', when: setItem, group: '3_listing@1' },
      { command: 'kadiOps.saveListingCopy', when: setItem, group: '3_listing@2' },
      { command: 'kadiOps.downloadSet', when: setItem, group: '4_transfer@1' },
      { command: 'kadiOps.offsiteSetUp', when: offsiteHost, group: '6_offsite@1' },
      { command: 'kadiOps.offsitePush', when: offsiteSet, group: '4_transfer@2' },
      { command: 'kadiOps.refresh', when: offsiteGroup, group: 'inline@1' },
      { command: 'kadiOps.offsiteCheck', when: offsiteGroup, group: '1_offsite@1' },
      { command: 'kadiOps.offsiteForget', when: offsiteGroup, group: '1_offsite@2' },
      { command: 'kadiOps.offsiteSetUp', when: offsiteGroup, group: '2_setup@1' },
      { command: 'kadiOps.offsiteRestore', when: snapshotItem, group: '0_restore@1' },
      { command: 'kadiOps.showDumpListing', when: dumpItem, group: 'inline@1' },
      { command: 'kadiOps.showDumpListing', when: dumpItem, group: '1_listing@1' },
      { command: 'kadiOps.saveListingCopy', when: dumpItem, group: '1_listing@2' },
    ],
  },
};
fs.writeFileSync('package.json', JSON.stringify(pkg, null, 2) + '\n');
