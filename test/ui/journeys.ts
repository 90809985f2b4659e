/**
 * UI journeys on the code-server workbench, done with clicks and keys as a new user would, against
 * the sandbox host configured in the user settings. Run by scripts/vscode-test-codeserver.mjs after
 * the extension-host suite (so the host already has backup sets); each journey leaves the screen in
 * the state worth a screenshot, which the runner saves to test-results/screenshots/<id>.png.
 *
 * Adding a journey: append to `journeys`; keep each independent of the others' UI state (open what
 * you need, close what you opened) but not of the host's data.
 */
import type { FrameLocator, Locator, Page } from 'playwright-core';

export interface JourneyContext {
  page: Page;
  sandbox: { sshPort: number };
  /** Saves an extra screenshot now, as test-results/screenshots/<id>-<suffix>.png. */
  screenshot(suffix: string): Promise<unknown>;
}

export interface Journey {
  id: string;
  title: string;
  run(ctx: JourneyContext): Promise<void>;
}

const SET_LABEL = /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/;

function sidebarRow(page: Page, text: string | RegExp): Locator {
  return page.locator('.part.sidebar .monaco-list-row[role="treeitem"]').filter({ hasText: text });
}

/**
 * A notification in the Notifications center. code-server's workbench here does not pop up toasts
 * (they only land in the center), so the journeys open the center as a user would (bell icon).
 */
function notification(page: Page, text: string | RegExp): Locator {
  return page.locator('.notifications-center .monaco-list-row').filter({ hasText: text });
}

async function showNotifications(page: Page): Promise<void> {
  const center = page.locator('.notifications-center');
  if (!(await center.isVisible())) await page.locator('.statusbar').getByRole('button', { name: /Notifications/ }).last().click();
  await center.waitFor({ state: 'visible', timeout: 10000 });
}

async function clearNotifications(page: Page): Promise<void> {
  await page.keyboard.press('Escape');
  await runCommand(page, 'Notifications: Clear All Notifications').catch(() => undefined);
}

/** The text of the visible Output view, whitespace removed (Monaco renders spaces as NBSP and wraps lines). */
async function outputText(page: Page): Promise<string> {
  const texts = await page.locator('.part.panel .view-lines .view-line').allTextContents();
  return texts.join('').replace(/\s+/g, '');
}

async function waitForOutput(page: Page, pattern: RegExp, timeoutMs = 30000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!pattern.test(await outputText(page))) {
    if (Date.now() > until) throw new Error(`the Output view does not show ${pattern}: ${(await outputText(page)).slice(-400)}`);
    await page.waitForTimeout(250);
  }
}

/** Makes the side bar wide enough for the hosts' descriptions (drags its sash, as a user would). */
async function widenSidebar(page: Page, width = 560): Promise<void> {
  const box = await page.locator('.part.sidebar').boundingBox();
  if (!box || box.width >= width - 20) return;
  const x = box.x + box.width + 1;
  const y = box.y + box.height / 2;
  await page.mouse.move(x, y);
  await page.mouse.down();
  await page.mouse.move(box.x + width, y, { steps: 8 });
  await page.mouse.up();
}

/** Runs a command through the Command Palette (F1), as a user would. */
async function runCommand(page: Page, label: string): Promise<void> {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible', timeout: 10000 });
  await input.fill(`>${label}`);
  const row = page.locator('.quick-input-widget .monaco-list-row').filter({ hasText: label }).first();
  await row.waitFor({ timeout: 10000 });
  await page.keyboard.press('Enter');
}

/** Opens the Kadi Ops view from the activity bar (if it is not open yet) and waits for the host rows. */
async function openKadiOpsView(page: Page): Promise<void> {
  await page.locator('.monaco-workbench').waitFor({ timeout: 60000 });
  const tab = page.locator('.activitybar').getByRole('tab', { name: /Kadi Ops/ });
  await tab.waitFor({ timeout: 60000 });
  // A click on the active container's tab hides the side bar again, so click only while the hosts are not visible.
  const host = sidebarRow(page, 'sandbox').first();
  for (let attempt = 0; !(await host.isVisible()); attempt++) {
    if (attempt === 3) throw new Error('the Kadi Ops view did not open');
    await tab.click();
    await host.waitFor({ timeout: 10000 }).catch(() => undefined);
  }
  await widenSidebar(page);
}

/** Collapses every tree row (the view's "Collapse All" title action). */
async function collapseAll(page: Page): Promise<void> {
  await page.locator('.part.sidebar').hover();
  await page.locator('.part.sidebar').getByRole('button', { name: 'Collapse All' }).click();
}

/** Expands a host row (a click toggles; only click when collapsed) and waits for its Backups group. */
async function expandHost(page: Page, name: string): Promise<void> {
  const row = sidebarRow(page, new RegExp(`^${name}(?!-)`)).first();
  await row.waitFor();
  if ((await row.getAttribute('aria-expanded')) !== 'true') await row.click();
  await sidebarRow(page, 'Backups').first().waitFor({ timeout: 30000 });
  // The click leaves the pointer on the host row, whose hover can cover the rows below it and take
  // the next click (a restore journey waited 30 s on it in CI).
  await restMouse(page);
}

async function newestSetRow(page: Page): Promise<Locator> {
  const row = sidebarRow(page, SET_LABEL).first();
  await row.waitFor({ timeout: 30000 });
  return row;
}

/** Drags the panel's top edge up so the Output view shows a whole job. */
async function tallerPanel(page: Page): Promise<void> {
  const box = await page.locator('.part.panel').boundingBox();
  if (!box || box.height > 400) return;
  const x = box.x + box.width / 2;
  await page.mouse.move(x, box.y - 2);
  await page.mouse.down();
  await page.mouse.move(x, 230, { steps: 8 });
  await page.mouse.up();
}

/** Moves the pointer to an empty spot and lets hover tooltips fade, so screenshots show no hover. */
async function restMouse(page: Page): Promise<void> {
  await page.mouse.move(1000, 120);
  await page.waitForTimeout(600);
}

/**
 * Chooses an item of the open context menu. VS Code's menu can swallow a click that comes right
 * after it opened (seen in CI: the item stayed highlighted, the menu open); a user clicks again,
 * and so does this, once, while the same item is still showing.
 */
async function chooseMenuItem(page: Page, name: string): Promise<void> {
  const item = page.getByRole('menuitem', { name });
  await item.click();
  try {
    await item.waitFor({ state: 'hidden', timeout: 2000 });
  } catch {
    await item.click();
    await item.waitFor({ state: 'hidden', timeout: 5000 });
  }
}

/** The content of the open dashboard webview (the workbench's webview iframe, then its active frame). */
function dashboardFrame(page: Page): FrameLocator {
  return page.frameLocator('iframe.webview.ready').frameLocator('iframe#active-frame');
}

export const journeys: Journey[] = [
  {
    id: 'tree-with-backups',
    title: 'open the Kadi Ops view, expand the host, see its backups',
    async run({ page }) {
      await openKadiOpsView(page);
      await expandHost(page, 'sandbox');
      const rows = sidebarRow(page, SET_LABEL);
      if ((await rows.count()) === 0) {
        // A fresh host: make the first backup from the host's context menu.
        await sidebarRow(page, /^sandbox(?!-)/).first().click({ button: 'right' });
        await chooseMenuItem(page, 'Backup Now');
        await showNotifications(page);
        await notification(page, /Backup on sandbox: succeeded/).waitFor({ timeout: 120000 });
        await clearNotifications(page);
      }
      // Open the newest set to see what it holds (dump, file lists, archives, manifest).
      const newest = await newestSetRow(page);
      if ((await newest.getAttribute('aria-expanded')) !== 'true') await newest.locator('.monaco-tl-twistie').click();
      await sidebarRow(page, 'db.dump').first().waitFor({ timeout: 30000 });
      await page.locator('.part.sidebar').getByText(/last backup .* ago/).first().waitFor();
      await restMouse(page);
    },
  },
  {
    id: 'verify-from-context-menu',
    title: 'right-click a backup → Verify Backup (quick), watch the notification',
    async run({ page }) {
      await clearNotifications(page);
      await openKadiOpsView(page);
      await expandHost(page, 'sandbox');
      const row = await newestSetRow(page);
      const label = ((await row.textContent()) ?? '').match(SET_LABEL)?.[0] ?? '';
      await row.click({ button: 'right' });
      await chooseMenuItem(page, 'Verify Backup (quick)');
      await showNotifications(page);
      await notification(page, /Verify \S+ on sandbox: succeeded/).waitFor({ timeout: 120000 });
      // The set shows as verified in the tree.
      await sidebarRow(page, label).filter({ hasText: /ago · verified/ }).first().waitFor({ timeout: 30000 });
      await restMouse(page);
    },
  },
  {
    id: 'output-channel-summary',
    title: 'open the host\'s output channel from the context menu and read the job summary',
    async run({ page }) {
      await openKadiOpsView(page);
      await sidebarRow(page, /^sandbox(?!-)/).first().click({ button: 'right' });
      await chooseMenuItem(page, 'Show Output');
      const panel = page.locator('.part.panel');
      await panel.waitFor({ state: 'visible', timeout: 30000 });
      await tallerPanel(page);
      await page.keyboard.press('Escape');
      await waitForOutput(page, /\[kadi-ops\]job\S+:exitstatus0at/);
      await waitForOutput(page, /■Verify\S+onsandbox:succeededafter[\d.]+s/);
      await restMouse(page);
    },
  },
  {
    id: 'backup-now-progress',
    title: 'Backup Now from the host\'s inline action: progress notification, then the new set in the tree',
    async run({ page, screenshot }) {
      await clearNotifications(page);
      await openKadiOpsView(page);
      await expandHost(page, 'sandbox');
      const before = await sidebarRow(page, SET_LABEL).count();
      const host = sidebarRow(page, /^sandbox(?!-)/).first();
      await host.hover();
      await host.getByRole('button', { name: 'Backup Now' }).click();
      await showNotifications(page);
      await notification(page, /Backup on sandbox/).first().waitFor({ timeout: 30000 });
      await screenshot('running');
      await notification(page, /Backup on sandbox: succeeded/).waitFor({ timeout: 120000 });
      for (let i = 0; (await sidebarRow(page, SET_LABEL).count()) <= before; i++) {
        if (i > 100) throw new Error(`the tree still shows ${before} sets`);
        await page.waitForTimeout(300);
      }
      await restMouse(page);
    },
  },
  {
    id: 'dump-listing-outline',
    title: 'right-click a backup → Show Dump Listing; the outline lists schemas and tables',
    async run({ page }) {
      await clearNotifications(page);
      await runCommand(page, 'View: Hide Panel').catch(() => undefined);
      await openKadiOpsView(page);
      await expandHost(page, 'sandbox');
      await (await newestSetRow(page)).click({ button: 'right' });
      await chooseMenuItem(page, 'Show Dump Listing');
      const tab = page.locator('.tabs-container .tab').filter({ hasText: 'db.toc' });
      await tab.waitFor({ timeout: 30000 });
      await page.locator('.statusbar').getByText('pg_restore Listing').waitFor({ timeout: 30000 });
      // The outline, as "Go to Symbol in Editor" shows it.
      await page.locator('.editor-group-container .monaco-editor').first().click({ position: { x: 200, y: 40 } });
      await page.keyboard.press('F1');
      const input = page.locator('.quick-input-widget input');
      await input.waitFor({ state: 'visible' });
      await input.fill('@');
      // The sandbox's odd schema sorts first; the Kadi tables are further down the outline.
      await page.locator('.quick-input-widget .monaco-list-row').filter({ hasText: 'odd "schema"; ü' }).first().waitFor({ timeout: 30000 });
      await input.fill('@record');
      await page.locator('.quick-input-widget .monaco-list-row').filter({ hasText: 'record' }).first().waitFor({ timeout: 30000 });
      await page.mouse.move(1000, 700);
      await page.waitForTimeout(600);
    },
  },
  {
    id: 'restore-typed-confirmation',
    title: 'right-click a backup → Restore…, read the plan, type the host name, watch the restore finish',
    async run({ page, screenshot }) {
      const host = 'sandbox-sudo';
      await page.keyboard.press('Escape');
      await runCommand(page, 'View: Close All Editors').catch(() => undefined);
      await clearNotifications(page);
      await openKadiOpsView(page);
      await collapseAll(page);
      await expandHost(page, host);
      if ((await sidebarRow(page, SET_LABEL).count()) === 0) {
        await sidebarRow(page, new RegExp(`^${host}`)).first().click({ button: 'right' });
        await chooseMenuItem(page, 'Backup Now');
        await showNotifications(page);
        await notification(page, new RegExp(`Backup on ${host}: succeeded`)).waitFor({ timeout: 120000 });
        await clearNotifications(page);
      }
      await (await newestSetRow(page)).click({ button: 'right' });
      await chooseMenuItem(page, 'Restore…');
      // The preflight verifies the set, then shows the plan and asks for the host's name.
      const input = page.locator('.quick-input-widget input');
      await page.locator('.quick-input-widget').filter({ hasText: `Type the host's name "${host}" to confirm` }).waitFor({ timeout: 120000 });
      await input.pressSequentially(host, { delay: 40 });
      await restMouse(page);
      await screenshot('confirm');
      await page.keyboard.press('Enter');
      await showNotifications(page);
      await notification(page, new RegExp(`Restore \\S+ on ${host}: succeeded`)).waitFor({ timeout: 180000 });
      await sidebarRow(page, /pre-restore/).first().waitFor({ timeout: 30000 });
      await restMouse(page);
    },
  },
  {
    id: 'dashboard',
    title: 'open the dashboard from the view\'s title bar; see hosts and charts; Refresh from the page',
    async run({ page }) {
      await page.keyboard.press('Escape');
      await runCommand(page, 'View: Close All Editors').catch(() => undefined);
      await runCommand(page, 'View: Hide Panel').catch(() => undefined);
      await clearNotifications(page);
      await openKadiOpsView(page);
      await page.locator('.part.sidebar').hover();
      await page.locator('.part.sidebar').getByRole('button', { name: 'Open Dashboard' }).click();
      await page.locator('.tabs-container .tab').filter({ hasText: 'Kadi Ops Dashboard' }).waitFor({ timeout: 30000 });
      // The page, not the tree, is what this screenshot is about: a click on the active container's
      // tab hides the side bar (openKadiOpsView opens it again for whoever comes next).
      await page.locator('.activitybar').getByRole('tab', { name: /Kadi Ops/ }).click();
      await page.locator('.part.sidebar').waitFor({ state: 'hidden', timeout: 10000 });
      const dash = dashboardFrame(page);
      for (const host of ['sandbox', 'sandbox-sudo']) await dash.locator(`tr[data-host="${host}"]`).waitFor({ timeout: 60000 });
      const row = dash.locator('tr[data-host="sandbox"]');
      await row.getByText(/free of/).waitFor({ timeout: 60000 });
      await dash.locator('section[data-host="sandbox"] svg').first().waitFor({ timeout: 30000 });
      // A click on the page's own button travels through postMessage to the extension and back.
      const rendered = await dash.locator('header.top').getAttribute('data-rendered');
      await row.getByRole('button', { name: 'Refresh' }).click();
      for (let i = 0; (await dash.locator('header.top').getAttribute('data-rendered', { timeout: 2000 }).catch(() => rendered)) === rendered; i++) {
        if (i > 150) throw new Error('Refresh in the page did not render the dashboard again');
        await page.waitForTimeout(400);
      }
      await dash.locator('tr[data-host="sandbox"]').getByText(/free of/).waitFor({ timeout: 60000 });
      await dash.locator('section[data-host="sandbox"] svg').nth(4).waitFor({ timeout: 30000 });
      await restMouse(page);
    },
  },
  {
    id: 'schedule-backups',
    title: 'right-click a host → Schedule Backups…, see the presets (nothing is changed: Escape)',
    async run({ page, screenshot }) {
      await page.keyboard.press('Escape');
      await runCommand(page, 'View: Close All Editors').catch(() => undefined);
      await clearNotifications(page);
      await openKadiOpsView(page);
      await collapseAll(page);
      // The tree says the host backs up only when someone starts it.
      await sidebarRow(page, /^sandbox(?!-)/).filter({ hasText: /no schedule/ }).first().waitFor({ timeout: 30000 });
      await sidebarRow(page, /^sandbox(?!-)/).first().click({ button: 'right' });
      await chooseMenuItem(page, 'Schedule Backups…');
      const widget = page.locator('.quick-input-widget').filter({ hasText: 'Schedule backups of sandbox' });
      await widget.waitFor({ timeout: 30000 });
      await widget.getByText('Nightly at 02:30, deep verification on Sundays at 04:00').waitFor();
      await restMouse(page);
      await screenshot('presets');
      await page.keyboard.press('Escape');
      await widget.waitFor({ state: 'hidden', timeout: 10000 });
    },
  },
];
