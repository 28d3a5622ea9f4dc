"""Write a Sentinela monitor in Python.

    from sentinela_monitor import Issue, Monitor, export

    class DiskFull(Monitor):
        def search(self):
            return [Issue("disk-1", {"used_percent": 97})]

        def is_solved(self, issue):
            return issue.data["used_percent"] < 90

    Checks = export(DiskFull)

Build it into a component with `guests/python/build.sh DIR` (componentize-py). Every call runs
in a fresh instance: a monitor keeps no state between calls. Everything it needs to decide
whether an issue is solved must be in the issue's `data`.

A monitor method that raises returns the exception's text to the host as the call's error;
the host logs it with the monitor's name.
"""

import json as _json
import traceback as _traceback
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, TypeVar

from componentize_py_types import Err
from wit_world.exports import checks as _checks
from wit_world.imports import aws_call as _aws_call
from wit_world.imports import log as _log
from wit_world.imports import queue as _queue
from wit_world.imports import secrets as _secrets
from wit_world.imports import store as _config_store
from wit_world.imports import types as _types

MessageKind = _checks.MessageKind


@dataclass
class Issue:
    """A problem the monitor tracks. `id` must be unique within the monitor and stable across
    calls; `data` must be a JSON object (a dict)."""

    id: str
    data: Dict[str, Any]


class HostError(Exception):
    """A host call failed: `kind` is denied, not-found, invalid, aws, limit or unavailable."""

    def __init__(self, error: "_types.Error"):
        self.error = error
        if isinstance(error, _types.Error_Aws):
            self.kind = "aws"
            self.code = error.value.code
            text = f"{error.value.code} (HTTP {error.value.status}): {error.value.message}"
        else:
            self.kind = {
                _types.Error_Denied: "denied",
                _types.Error_NotFound: "not found",
                _types.Error_Invalid: "invalid",
                _types.Error_Limit: "limit",
                _types.Error_Unavailable: "unavailable",
            }[type(error)]
            self.code = None
            text = f"{self.kind}: {error.value}"
        super().__init__(text)


def _host(call, *args):
    try:
        return call(*args)
    except Err as e:
        raise HostError(e.value) from None


class log:
    """Logging into the host's log, tagged with the monitor's name."""

    @staticmethod
    def trace(message: str) -> None:
        _log.log(_log.Level.TRACE, message)

    @staticmethod
    def debug(message: str) -> None:
        _log.log(_log.Level.DEBUG, message)

    @staticmethod
    def info(message: str) -> None:
        _log.log(_log.Level.INFO, message)

    @staticmethod
    def warn(message: str) -> None:
        _log.log(_log.Level.WARN, message)

    @staticmethod
    def error(message: str) -> None:
        _log.log(_log.Level.ERROR, message)


def verify_sns_message(message: str) -> bool:
    """Whether `message` (the JSON an SNS topic delivers to HTTP or SQS subscribers) is signed
    by SNS; the host checks it with the certificate at its SigningCertURL. Needs no grant."""
    return _host(_aws_call.verify_sns_message, message)


def _pages(
    fetch: Callable[[Dict[str, Any]], Any],
    first: Dict[str, Any],
    input_token: str,
    next_token: Callable[[Any], Optional[str]],
) -> Iterator[Any]:
    """Pages from `fetch`: the first with `first`, each next one with the last page's token
    as `input_token`, until a page has none or repeats one."""
    params, seen = dict(first), set()
    while True:
        page = fetch(params)
        yield page
        token = next_token(page)
        if not token or token in seen:
            return
        seen.add(token)
        params[input_token] = token


def xml_text(xml: str, element: str) -> Optional[str]:
    """The text of the first `element` (by local name) of an XML answer, or None."""
    from xml.etree import ElementTree

    for node in ElementTree.fromstring(xml).iter():
        if node.tag.rsplit("}", 1)[-1] == element:
            return node.text or ""
    return None


class Email:
    """An email with text and HTML parts and attachments, built as MIME with the standard
    `email` package and sent with SES SendRawEmail (grant `ses:SendRawEmail`)."""

    def __init__(self, sender: str, subject: str):
        self.sender, self.subject = sender, subject
        self.recipients: List[str] = []
        self.copies: List[str] = []
        self.text_body: Optional[str] = None
        self.html_body: Optional[str] = None
        self.attachments: List[Tuple[str, str, bytes]] = []

    def to(self, address: str) -> "Email":
        self.recipients.append(address)
        return self

    def cc(self, address: str) -> "Email":
        self.copies.append(address)
        return self

    def text(self, body: str) -> "Email":
        self.text_body = body
        return self

    def html(self, body: str) -> "Email":
        self.html_body = body
        return self

    def attach(self, filename: str, content_type: str, content: bytes) -> "Email":
        self.attachments.append((filename, content_type, content))
        return self

    def to_mime(self) -> bytes:
        """The message as MIME (RFC 5322) bytes."""
        from email import policy
        from email.message import EmailMessage

        if not self.recipients and not self.copies:
            raise ValueError("an email needs a recipient")
        message = EmailMessage()
        message["From"] = self.sender
        if self.recipients:
            message["To"] = ", ".join(self.recipients)
        if self.copies:
            message["Cc"] = ", ".join(self.copies)
        message["Subject"] = self.subject
        message.set_content(self.text_body or "")
        if self.html_body is not None:
            message.add_alternative(self.html_body, subtype="html")
        for filename, content_type, content in self.attachments:
            maintype, _, subtype = content_type.partition("/")
            message.add_attachment(
                content, maintype=maintype, subtype=subtype or "octet-stream", filename=filename
            )
        # SMTP's policy: CRLF line ends, as RFC 5322 and SES want them.
        return message.as_bytes(policy=policy.SMTP)

    def send(self, aws: "Aws") -> str:
        """Sends it with SES SendRawEmail; returns SES's message id."""
        import base64

        data = base64.b64encode(self.to_mime()).decode()
        answer = aws.query("ses", "SendRawEmail", {"RawMessage.Data": data})
        message_id = xml_text(answer, "MessageId")
        if not message_id:
            raise RuntimeError("SES answered without a MessageId")
        return message_id


class Aws:
    """AWS through the host, signed with one credential this monitor must be granted, in the
    credential's region unless `region` is given. The monitor never sees a key."""

    def __init__(self, credential: str, region: Optional[str] = None):
        self.credential = credential
        self.region = region

    def json(self, service: str, operation: str, input: Dict[str, Any]) -> Any:
        """A JSON-protocol operation (sqs, dynamodb, secretsmanager, ssm, logs, ...)."""
        output = _host(
            _aws_call.json, self.credential, service, self.region, operation, _json.dumps(input)
        )
        return _json.loads(output) if output else None

    def query(self, service: str, action: str, params: Dict[str, str]) -> str:
        """A query-protocol action (sts, sns, iam, cloudwatch, ...); returns the XML body."""
        return _host(
            _aws_call.query, self.credential, service, self.region, action, list(params.items())
        )

    def signed(
        self,
        service: str,
        method: str,
        path: str,
        query: Optional[List[Tuple[str, str]]] = None,
        headers: Optional[List[Tuple[str, str]]] = None,
        body: bytes = b"",
    ) -> "_aws_call.Response":
        """A signed request to a REST service (s3, lambda); returns the response (`.status`,
        `.headers`, `.body`). Host, Authorization and X-Amz-Date/-Security-Token are the host's."""
        request = _aws_call.Request(method, path, query or [], headers or [], body)
        return _host(_aws_call.signed, self.credential, service, self.region, request)

    def presign(
        self,
        service: str,
        method: str,
        path: str,
        expires_seconds: int,
        query: Optional[List[Tuple[str, str]]] = None,
        headers: Optional[List[Tuple[str, str]]] = None,
    ) -> str:
        """A presigned URL for a REST request with no body (an S3 GET or PUT of an object),
        valid `expires_seconds`; granted as `service:presign:Operation`."""
        request = _aws_call.Request(method, path, query or [], headers or [], b"")
        return _host(
            _aws_call.presign, self.credential, service, self.region, request, expires_seconds
        )

    def json_pages(
        self,
        service: str,
        operation: str,
        input: Dict[str, Any],
        input_token: str = "NextToken",
        output_token: str = "NextToken",
    ) -> Iterator[Any]:
        """Every page of a JSON-protocol list operation, one call per page: the first with
        `input`, each next one with the last answer's `output_token` set as `input_token`,
        until an answer has none."""
        return _pages(
            lambda input: self.json(service, operation, input),
            input,
            input_token,
            lambda page: (page or {}).get(output_token),
        )

    def query_pages(
        self,
        service: str,
        action: str,
        params: Dict[str, str],
        input_token: str = "NextToken",
        output_token: str = "NextToken",
    ) -> Iterator[str]:
        """Every page (XML text) of a query-protocol list action: each next call sends the
        text of the last answer's `output_token` element (`NextToken`, `Marker`) as parameter
        `input_token`, until an answer has none."""
        return _pages(
            lambda params: self.query(service, action, params),
            params,
            input_token,
            lambda page: xml_text(page, output_token),
        )

    def sqs(self) -> "Sqs":
        """Typed SQS helpers with this credential and region."""
        return Sqs(self)


class Sqs:
    """Typed SQS helpers."""

    def __init__(self, aws: Aws):
        self.aws = aws

    def list_queues(self, prefix: Optional[str] = None) -> List[str]:
        """Queue URLs, optionally only those whose name starts with `prefix`."""
        output = self.aws.json("sqs", "ListQueues", {"QueueNamePrefix": prefix} if prefix else {})
        return list((output or {}).get("QueueUrls", []))

    def get_queue_attributes(self, queue_url: str, names: List[str]) -> Dict[str, str]:
        output = self.aws.json(
            "sqs", "GetQueueAttributes", {"QueueUrl": queue_url, "AttributeNames": names}
        )
        return dict((output or {}).get("Attributes", {}))

    def approximate_number_of_messages(self, queue_url: str) -> int:
        attributes = self.get_queue_attributes(queue_url, ["ApproximateNumberOfMessages"])
        if "ApproximateNumberOfMessages" not in attributes:
            raise ValueError("no ApproximateNumberOfMessages in the answer")
        return int(attributes["ApproximateNumberOfMessages"])


class secrets:
    """Secrets declared for this monitor in its config (`secrets:`), fetched by the host."""

    @staticmethod
    def get(name: str) -> str:
        return _host(_secrets.get, name)


T = TypeVar("T")


class SettingError(ValueError):
    """A setting is missing or does not parse; the message names the key."""


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ValueError("expected true or false")


class settings:
    """The monitor's `settings:` from its config entry, read through the standard
    `wasi:config/store` interface. Values are strings: YAML scalars as written (`10`, `true`),
    lists and maps as JSON (read those with `settings.json`). Errors name the key; the host
    adds the monitor's name when it logs them.

        queue = settings.require("queue")              # must be set
        threshold = settings.parse("threshold", int, 5)  # 5 when not set
        regions = settings.json("regions")             # a YAML list, as JSON
    """

    @staticmethod
    def get(key: str) -> Optional[str]:
        """The setting `key`, or None when the monitor's config does not set it."""
        try:
            return _config_store.get(key)
        except Err as e:
            raise SettingError(f"setting '{key}': the host could not read it: {e.value.value}") from None

    @staticmethod
    def require(key: str) -> str:
        """The setting `key`; SettingError naming it when the config does not set it."""
        value = settings.get(key)
        if value is None:
            raise SettingError(f"setting '{key}' is not set (add it under the monitor's settings:)")
        return value

    @staticmethod
    def parse(key: str, kind: Callable[[str], T], default: Optional[T] = None) -> T:
        """The setting `key` converted by `kind` (`int`, `float`, `bool`, or any function of a
        string); `default` when it is not set and a default is given. `bool` accepts
        true/false, yes/no, on/off, 1/0."""
        value = settings.get(key)
        if value is None:
            if default is not None:
                return default
            raise SettingError(f"setting '{key}' is not set (add it under the monitor's settings:)")
        convert = _parse_bool if kind is bool else kind
        try:
            return convert(value.strip())
        except (ValueError, TypeError) as e:
            name = getattr(kind, "__name__", "value")
            raise SettingError(f"setting '{key}': {value!r} is not a valid {name}: {e}") from None

    @staticmethod
    def json(key: str) -> Any:
        """The setting `key` as JSON: a YAML list or map in the config arrives as JSON text."""
        value = settings.require(key)
        try:
            return _json.loads(value)
        except ValueError as e:
            raise SettingError(f"setting '{key}': {value!r} is not JSON: {e}") from None

    @staticmethod
    def all() -> List[Tuple[str, str]]:
        """Every setting, as (key, value) pairs."""
        try:
            return _config_store.get_all()
        except Err as e:
            raise SettingError(f"settings: the host could not read them: {e.value.value}") from None


class queue:
    """Messages on the SQS queues of the config's `queues:` section granted to this monitor."""

    @staticmethod
    def send(queue_name: str, body: str) -> str:
        return _host(_queue.send, queue_name, body)

    @staticmethod
    def receive(queue_name: str, max: int = 1, wait_seconds: int = 0) -> List["_queue.Message"]:
        return _host(_queue.receive, queue_name, max, wait_seconds)

    @staticmethod
    def delete(queue_name: str, message: "_queue.Message") -> None:
        _host(_queue.delete, queue_name, message.receipt)

    @staticmethod
    def change_visibility(queue_name: str, message: "_queue.Message", seconds: int) -> None:
        _host(_queue.change_visibility, queue_name, message.receipt, seconds)


class Monitor:
    """A monitor: Sentinela's search / update / is-solved cycle. Override `search` and
    `is_solved`; `update` (nothing changes) and `handle` (messages ignored) have defaults."""

    def search(self) -> List[Issue]:
        raise NotImplementedError("search")

    def update(self, issues: List[Issue]) -> List[Issue]:
        return []

    def is_solved(self, issue: Issue) -> bool:
        raise NotImplementedError("is_solved")

    def handle(self, kind: MessageKind, payload: Any) -> None:
        return None


def _to_wit(issues: List[Issue]) -> List["_types.Issue"]:
    return [_types.Issue(issue.id, _json.dumps(issue.data)) for issue in issues]


def _from_wit(issue: "_types.Issue") -> Issue:
    try:
        data = _json.loads(issue.data)
    except ValueError as e:
        raise ValueError(f"issue '{issue.id}' has invalid data: {e}") from None
    return Issue(issue.id, data)


# How many of an exception's innermost frames reach the host, and how long their text may be.
_TRACEBACK_FRAMES = 3
_TRACEBACK_CHARS = 600


def _where(e: BaseException) -> str:
    """The exception's innermost frames as `file:line in function`, innermost last, without
    this SDK's own frames: enough to find the line without a page of traceback."""
    frames = [
        f for f in _traceback.extract_tb(e.__traceback__) if not f.filename.endswith("sentinela_monitor.py")
    ]
    text = " <- ".join(
        f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} in {f.name}" for f in reversed(frames[-_TRACEBACK_FRAMES:])
    )
    return text if len(text) <= _TRACEBACK_CHARS else text[: _TRACEBACK_CHARS - 1] + "…"


def _returning_errors(call):
    """Runs `call`; any exception becomes the export's error text with where it was raised,
    so the host logs it."""
    try:
        return call()
    except Err:
        raise
    except Exception as e:
        where = _where(e)
        raise Err(f"{type(e).__name__}: {e}" + (f" (at {where})" if where else "")) from None


def export(monitor_class):
    """The class componentize-py exports as `checks`: `Checks = export(MyMonitor)`."""

    class Checks:
        def search(self):
            return _returning_errors(lambda: _to_wit(monitor_class().search()))

        def update(self, issues):
            return _returning_errors(
                lambda: _to_wit(monitor_class().update([_from_wit(i) for i in issues]))
            )

        def is_solved(self, issue):
            return _returning_errors(lambda: bool(monitor_class().is_solved(_from_wit(issue))))

        def handle(self, kind, payload):
            return _returning_errors(
                lambda: monitor_class().handle(kind, _json.loads(payload) if payload else None)
            )

    return Checks
