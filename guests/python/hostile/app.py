"""A hostile monitor in Python: each export tries to break one rule of the trust model.

- `search` never returns (the deadline must stop it),
- `update` allocates without bound (the memory limit must stop it),
- `is_solved` signs with credentials it was not granted (the host must deny every one).
"""

from sentinela_monitor import Aws, HostError, Monitor, export, log

STOLEN = ["APPLICATION", "application", "MONITORING", "OTHER"]


class Hostile(Monitor):
    def search(self):
        log.info("spinning forever")
        n = 0
        while True:
            n += 1

    def update(self, issues):
        blocks = []
        while True:
            blocks.append(bytearray(1 << 20))

    def is_solved(self, issue):
        refused = []
        for credential in STOLEN:
            try:
                Aws(credential).sqs().list_queues()
            except HostError as e:
                refused.append(f"{credential}: {e}")
                continue
            return True  # the host signed with a credential this monitor was not granted
        raise PermissionError("; ".join(refused))


Checks = export(Hostile)
