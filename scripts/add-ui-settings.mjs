// Adds the UI's settings to package.json contributes.configuration.properties (idempotent; touches nothing else).
import fs from 'node:fs';

const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8'));
const props = pkg.contributes.configuration.properties;
const count = (what, def) => ({ type: 'integer', minimum: 0, maximum: 1000, default: def, description: what });
props['kadiOps.retention'] = {
  type: 'object',
  order: 3,
  additionalProperties: false,
  default: { keepDaily: 7, keepWeekly: 4, keepMonthly: 6, minKeep: 3 },
  properties: {
    keepLast: count('Keep this many newest sets regardless of age.', 0),
    keepDaily: count('Keep the newest set of each of this many most recent days that have one.', 7),
    keepWeekly: count('Keep the newest set of each of this many most recent ISO weeks that have one.', 4),
    keepMonthly: count('Keep the newest set of each of this many most recent months that have one.', 6),
    minKeep: count('Never keep fewer good (not failed) sets than this, whatever their age.', 3),
  },
  description: 'Which backup sets "Prune Backups" keeps. Pinned sets and pre-restore safety sets are always kept; everything else not kept by a rule is offered for deletion (a preview is shown first).',
  markdownDescription:
    'Which backup sets **Prune Backups** keeps. Pinned sets and pre-restore safety sets are always kept; a set kept by any rule stays, and every other set is offered for deletion after a preview.\n\nExample: `{ "keepLast": 2, "keepDaily": 7, "keepWeekly": 4, "keepMonthly": 12, "minKeep": 3 }` keeps the two newest sets, one per day for a week, one per week for a month and one per month for a year.',
};
fs.writeFileSync('package.json', JSON.stringify(pkg, null, 2) + '\n');
