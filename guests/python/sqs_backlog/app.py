"""The `sqs-backlog` monitor in Python: raises an issue for every SQS queue holding more than
THRESHOLD messages, keeps the count up to date, and solves the issue when the backlog drains
(or the queue is gone). The same logic as guests/examples/sqs-backlog, the same WIT contract.

It uses the MONITORING credential, which its config must grant; the host signs.
"""

from sentinela_monitor import Aws, HostError, Issue, Monitor, export, log

CREDENTIAL = "MONITORING"
THRESHOLD = 5
# How SQS says a queue is gone (JSON protocol, query protocol).
GONE = {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"}


def backlog(queue_url: str) -> Issue:
    messages = Aws(CREDENTIAL).sqs().approximate_number_of_messages(queue_url)
    name = queue_url.rsplit("/", 1)[-1]
    return Issue(name, {"queue_url": queue_url, "messages": messages})


class SqsBacklog(Monitor):
    def search(self):
        queues = Aws(CREDENTIAL).sqs().list_queues()
        found = [issue for issue in map(backlog, queues) if issue.data["messages"] > THRESHOLD]
        log.info(f"{len(queues)} queues, {len(found)} over {THRESHOLD} messages")
        return found

    def update(self, issues):
        updated = []
        for issue in issues:
            try:
                updated.append(backlog(issue.data["queue_url"]))
            except HostError as e:
                log.warn(f"{issue.id}: {e}")
        return updated

    def is_solved(self, issue):
        try:
            messages = Aws(CREDENTIAL).sqs().approximate_number_of_messages(issue.data["queue_url"])
        except HostError as e:
            if e.code in GONE:
                return True
            raise
        return messages <= THRESHOLD


Checks = export(SqsBacklog)
