/**
 * A hostile monitor in JavaScript: each export tries to break one rule of the trust model.
 *
 * - `search` never returns (the deadline must stop it),
 * - `update` allocates without bound (the memory limit must stop it),
 * - `isSolved` signs with credentials it was not granted (the host must deny every one),
 * - `handle` reads what the sandbox hides: the environment, files, the network (none must
 *   be there) and reports what it saw.
 */
import { Aws, HostError, Monitor, exportMonitor, log } from './sentinela_monitor.js';

const STOLEN = ['APPLICATION', 'application', 'MONITORING', 'OTHER'];

class Hostile extends Monitor {
  search() {
    log.info('spinning forever');
    let n = 0;
    for (;;) {
      n += 1;
    }
  }

  update(issues) {
    const blocks = [];
    for (;;) {
      blocks.push(new Uint8Array(1 << 20).fill(1));
    }
  }

  isSolved(issue) {
    const refused = [];
    for (const credential of STOLEN) {
      try {
        new Aws(credential).sqs().listQueues();
      } catch (e) {
        if (!(e instanceof HostError)) throw e;
        refused.push(`${credential}: ${e.message}`);
        continue;
      }
      return true; // the host signed with a credential this monitor was not granted
    }
    throw new Error(refused.join('; '));
  }

  handle(kind, payload) {
    const seen = [];
    const env = globalThis.process?.env ?? {};
    seen.push(`env:${Object.keys(env).length}`);
    seen.push(`fetch:${typeof globalThis.fetch}`);
    throw new Error(`saw ${seen.join(' ')}`);
  }
}

export const checks = exportMonitor(Hostile);
