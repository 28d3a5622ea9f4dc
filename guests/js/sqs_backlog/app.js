/**
 * The `sqs-backlog` monitor in JavaScript: raises an issue for every SQS queue holding more
 * than `threshold` messages (setting, default 5), keeps the count up to date, and solves the
 * issue when the backlog drains (or the queue is gone). The same logic as
 * guests/examples/sqs-backlog and guests/python/sqs_backlog, the same WIT contract.
 *
 * It uses the MONITORING credential, which its config must grant; the host signs.
 */
import { Aws, HostError, Issue, Monitor, exportMonitor, log, settings } from './sentinela_monitor.js';

const CREDENTIAL = 'MONITORING';
// How SQS says a queue is gone (JSON protocol, query protocol).
const GONE = new Set(['QueueDoesNotExist', 'AWS.SimpleQueueService.NonExistentQueue']);

function threshold() {
  return settings.parse('threshold', 'int', 5);
}

function backlog(queueUrl) {
  const messages = new Aws(CREDENTIAL).sqs().approximateNumberOfMessages(queueUrl);
  const name = queueUrl.split('/').pop();
  return new Issue(name, { queue_url: queueUrl, messages });
}

class SqsBacklog extends Monitor {
  search() {
    const queues = new Aws(CREDENTIAL).sqs().listQueues(settings.get('queue_prefix'));
    const limit = threshold();
    const found = queues.map(backlog).filter((issue) => issue.data.messages > limit);
    log.info(`${queues.length} queues, ${found.length} over ${limit} messages`);
    return found;
  }

  update(issues) {
    const updated = [];
    for (const issue of issues) {
      try {
        updated.push(backlog(issue.data.queue_url));
      } catch (e) {
        if (!(e instanceof HostError)) throw e;
        log.warn(`${issue.id}: ${e.message}`);
      }
    }
    return updated;
  }

  isSolved(issue) {
    let messages;
    try {
      messages = new Aws(CREDENTIAL).sqs().approximateNumberOfMessages(issue.data.queue_url);
    } catch (e) {
      if (e instanceof HostError && GONE.has(e.code)) return true;
      throw e;
    }
    return messages <= threshold();
  }
}

export const checks = exportMonitor(SqsBacklog);
