"""{{name}}: a Sentinela monitor. `search` looks for problems and returns one issue per
problem; the host creates, updates and solves issues, and calls `is_solved` to ask whether one
is gone. Every call runs in a fresh instance: keep what `is_solved` needs in the issue's data.
"""

from sentinela_monitor import Issue, Monitor, export, log, settings


def used_percent() -> int:
    """Stands in for a real measurement: call AWS with `Aws(...)`, read a queue with `queue`,
    ... (see the SDK reference)."""
    return 97


class {{type_name}}(Monitor):
    def search(self):
        # `settings:` in the monitor's config entry; 90 when not set.
        threshold = settings.parse("threshold", int, 90)
        used = used_percent()
        log.info(f"used {used}%, threshold {threshold}%")
        if used <= threshold:
            return []
        return [Issue("sample", {"used_percent": used, "threshold": threshold})]

    def is_solved(self, issue):
        return used_percent() <= issue.data["threshold"]


Checks = export({{type_name}})
