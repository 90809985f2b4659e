/** The Kadi configuration: archived with every set; replaced only with its own confirmation. */
import { configDiff, describeKeyChanges } from '../restore/configDiff';
import type { ClientComponent } from './types';

export const config: ClientComponent = {
  name: 'config',
  planKey: 'config',
  restoredByDefault: false,
  planPart: () => ({}),
  async decide({ host, set, decided }) {
    decided.config = await configDiff(host, set.name);
  },
  planLines(p) {
    return (p.config ?? []).map((c) => `  config ${c.path}: ${c.state}${c.keys ? ` (${describeKeyChanges(c.keys)})` : ''}`);
  },
};
