"""The `sqs-backlog` monitor in Python: raises an issue for every SQS queue holding more than
`threshold` messages, keeps the count up to date, and solves the issue when the backlog drains
(or the queue is gone). The same logic as guests/examples/sqs-backlog, the same WIT contract.

Settings: `threshold` (default 5) and `queue_prefix` (only queues whose name starts with it;
default all).

It uses the MONITORING credential, which its config must grant; the host signs.
"""

from sentinela_monitor import Aws, HostError, Issue, Monitor, export, log, settings

CREDENTIAL = "MONITORING"
# How SQS says a queue is gone (JSON protocol, query protocol).
GONE = {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"}


def threshold() -> int:
    return settings.parse("threshold", int, 5)


def backlog(queue_url: str) -> Issue:
    messages = Aws(CREDENTIAL).sqs().approximate_number_of_messages(queue_url)
    name = queue_url.rsplit("/", 1)[-1]
    return Issue(name, {"queue_url": queue_url, "messages": messages})


class SqsBacklog(Monitor):
    def search(self):
        queues = Aws(CREDENTIAL).sqs().list_queues(settings.get("queue_prefix"))
        limit = threshold()
        found = [issue for issue in map(backlog, queues) if issue.data["messages"] > limit]
        log.info(f"{len(queues)} queues, {len(found)} over {limit} messages")
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
        return messages <= threshold()


Checks = export(SqsBacklog)
