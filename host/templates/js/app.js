/**
 * {{name}}: a Sentinela monitor. `search` looks for problems and returns one issue per
 * problem; the host creates, updates and solves issues, and calls `isSolved` to ask whether
 * one is gone. Every call runs in a fresh instance: keep what `isSolved` needs in the
 * issue's data. The build puts the SDK, sentinela_monitor.js, next to this file.
 */
import { Issue, Monitor, exportMonitor, log, settings } from './sentinela_monitor.js';

/** Stands in for a real measurement: call AWS with `new Aws(...)`, read a queue with
 * `queue`, ... (see the SDK reference). */
function usedPercent() {
  return 97;
}

class {{type_name}} extends Monitor {
  search() {
    // `settings:` in the monitor's config entry; 90 when not set.
    const threshold = settings.parse('threshold', 'int', 90);
    const used = usedPercent();
    log.info(`used ${used}%, threshold ${threshold}%`);
    if (used <= threshold) return [];
    return [new Issue('sample', { used_percent: used, threshold })];
  }

  isSolved(issue) {
    return usedPercent() <= issue.data.threshold;
  }
}

export const checks = exportMonitor({{type_name}});
