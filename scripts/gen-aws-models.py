#!/usr/bin/env python3
"""Generates host/src/aws/models.rs (included by services.rs): every AWS service `aws-call` can reach, from a pinned
release of botocore's published service models (its `data/` directory).

    python3 scripts/gen-aws-models.py            # downloads the pinned botocore wheel
    python3 scripts/gen-aws-models.py WHEEL      # or reads a wheel you downloaded

To refresh: set BOTOCORE_VERSION and BOTOCORE_SHA256 below to a newer release (the sha256 of
its `py3-none-any` wheel on PyPI), run this script, then `cargo test -p sentinela-host aws::`.
The output is checked in; nothing runs this script at build time.
"""

import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile

BOTOCORE_VERSION = "1.44.8"
BOTOCORE_SHA256 = "76342a76c338701db80dcb8afe1c9bd079283d6fffbb9d881442abb02a215043"

OUT = os.path.join(os.path.dirname(__file__), "..", "host", "src", "aws", "models.rs")  # included by services.rs

# Names monitors used before the table was generated, kept as second names of the same model.
ALIASES = {"states": "stepfunctions", "elasticloadbalancing": "elbv2"}

# Wire protocols `aws-call` speaks, in order of preference when a model lists several
# (`query` first: CloudWatch's monitors call it with `aws-call.query`).
PROTOCOLS = ["query", "ec2", "json", "rest-json", "rest-xml"]

# The partitions whose endpoints are generated (the issue asks for aws, aws-cn, aws-us-gov;
# the others come from the same data at no cost).
VARIANTS = {(): "Plain", ("fips",): "Fips", ("dualstack",): "DualStack",
            ("dualstack", "fips"): "FipsDualStack"}


def wheel_path(argv):
    if len(argv) > 1:
        return argv[1]
    folder = tempfile.mkdtemp(prefix="botocore-")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--dest", folder, f"botocore=={BOTOCORE_VERSION}"],
        check=True,
    )
    return os.path.join(folder, f"botocore-{BOTOCORE_VERSION}-py3-none-any.whl")


def rust_str(text):
    return json.dumps(text)  # JSON string escapes are valid Rust string escapes for ASCII


# What an answer can hold, read from the output shapes:
# - an AWS key (the secret key or session token next to an AccessKeyId) anywhere: never
#   grantable;
# - another credential, never grantable, when it is what the operation hands out (a member
#   in the answer's top two structure levels): a member the model marks `sensitive` whose name
#   says token, password, private key, client/shared secret, API key or key material (not in a
#   list of resources: RDS's DescribeDBInstances lists a masked MasterUserPassword), a
#   plaintext next to its ciphertext (KMS's GenerateDataKey; Decrypt's Plaintext is only
#   sensitive), or a member named as a bearer credential even where the model does not mark
#   it (ECR's authorizationToken, SSM's session TokenValue, SageMaker's AuthorizedUrl);
#   or the `value` of a structure named as one (API Gateway's ApiKey);
# - any other member marked `sensitive`: the operation is granted by name only.
AWS_KEY = re.compile(r"(?i)(secret_?access_?key|secret_?key|session_?token)")
CREDENTIAL = re.compile(
    r"(?i).*(token|password|passwd|private_?key|client_?secret|shared_?secret|secret|api_?key"
    r"|key_?material|(embed|authorized|presigned|login|sign_?in|streaming)_?url)"
    r"(_?(data|value|base64|string))?")
BEARER = re.compile(
    r"(?i)((authorization|access|refresh|id|bearer|auth|security|web_?identity)_?token|token_?value"
    r"|authorized_?url|key_?material|private_?key)(_?(data|value|base64|string))?")
NOT_CREDENTIAL = re.compile(
    r"(?i).*((next|continuation|pagination|page|block)_?token|token_?(type|id|arn|expir\w*|status"
    r"|name|count|url|endpoint\w*)|(credentials?|secret|password|key)_?(parameter|arn|id|type"
    r"|provider|name|status|url|endpoint\w*))")
SCALARS = {"string": "$s", "boolean": "$b", "integer": "$i", "long": "$i", "float": "$f",
           "double": "$f", "timestamp": "$t", "blob": "$B", "document": "$d"}


def answer_holds(shapes, output):
    """(kind, member path) of the first credential in an output shape, else of the first
    other sensitive member; kind is "key", "credential" or "sensitive"; None if neither."""
    found = {"key": None, "credential": None, "sensitive": None}
    seen = set()

    def walk(name, path, sensitive, depth, in_list):
        shape = shapes[name]
        sensitive = sensitive or shape.get("sensitive", False)
        if (name, sensitive, in_list, min(depth, 3)) in seen:
            return
        seen.add((name, sensitive, in_list, min(depth, 3)))
        kind = shape["type"]
        if kind == "structure":
            for member, spec in shape.get("members", {}).items():
                target = shapes[spec["shape"]]
                marked = sensitive or spec.get("sensitive", False) or target.get("sensitive", False)
                at = f"{path}.{member}" if path else member
                scalar = target["type"] in SCALARS
                plain = scalar and "enum" not in target
                ciphertext = any(m.endswith("CiphertextBlob") for m in shape["members"])
                if AWS_KEY.fullmatch(member) and scalar:
                    found["key"] = found["key"] or at
                elif member.lower().endswith("plaintext") and marked and scalar:
                    kind_ = "credential" if ciphertext and depth < 2 else "sensitive"
                    found[kind_] = found[kind_] or at
                elif (marked and scalar and depth < 2 and not in_list
                      and CREDENTIAL.fullmatch(member) and not NOT_CREDENTIAL.fullmatch(member)):
                    found["credential"] = found["credential"] or at
                elif plain and depth < 2 and (BEARER.fullmatch(member) or (
                        member.lower() == "value" and CREDENTIAL.fullmatch(name)
                        and not NOT_CREDENTIAL.fullmatch(name))):
                    # ...or the value of a structure named as one (API Gateway's ApiKey.value).
                    found["credential"] = found["credential"] or at
                elif marked and scalar:
                    found["sensitive"] = found["sensitive"] or at
                walk(spec["shape"], at, marked, depth + 1, in_list)
        elif kind == "list":
            walk(shape["member"]["shape"], path + "[]", sensitive, depth, True)
        elif kind == "map":
            walk(shape["value"]["shape"], path + "{}", sensitive, depth, True)

    walk(output, "", False, 0, False)
    for kind in ("key", "credential", "sensitive"):
        if found[kind]:
            return kind, found[kind]
    return None


def capitalize(name):
    return name[:1].upper() + name[1:]


def input_shapes(model, protocol):
    """The input shapes of every operation, one line each (see `aws/shapes.rs` for the
    format), and one `@Operation InputShape` line per operation that has an input."""
    shapes = model["shapes"]
    lines, seen = [], set()

    def ref(name):
        shape = shapes[name]
        if shape["type"] in SCALARS:
            return SCALARS[shape["type"]] + name  # the type, then the name: `$sTableArn`
        walk(name)
        return name

    def wire(member, spec):
        if protocol == "ec2":
            return spec.get("queryName") or capitalize(spec.get("locationName") or member)
        return spec.get("locationName") or member

    def walk(name):
        if name in seen:
            return
        seen.add(name)
        shape = shapes[name]
        kind = shape["type"]
        if kind == "structure":
            payload = shape.get("payload")
            members = []
            for member, spec in shape.get("members", {}).items():
                location = {"header": "h", "headers": "H", "querystring": "q", "uri": "p",
                            "statusCode": "c"}.get(spec.get("location"), "")
                if member == payload:
                    location = "P"
                field = f"{member}:{ref(spec['shape'])}"
                name_on_wire = wire(member, spec)
                if location or name_on_wire != member:
                    field += f":{location}"
                if name_on_wire != member:
                    field += f":{name_on_wire}"
                members.append(field)
            lines.append(" ".join([name, "S"] + members))
        elif kind == "list":
            member = shape["member"]
            lines.append(" ".join([name, "L", ref(member["shape"]),
                                   member.get("locationName") or "-",
                                   "f" if shape.get("flattened") else "-"]))
        elif kind == "map":
            key, value = shape["key"], shape["value"]
            lines.append(" ".join([name, "M", ref(key["shape"]), ref(value["shape"]),
                                   key.get("locationName") or "key",
                                   value.get("locationName") or "value",
                                   "f" if shape.get("flattened") else "-"]))

    for op_name, op in sorted(model["operations"].items()):
        if "input" in op:
            lines.append(f"@{op_name} {ref(op['input']['shape'])}")
    return "\n".join(lines)


def write_answers_doc(rows):
    """docs/aws-answers.md: what the table says each operation's answer holds."""
    never, sensitive = [], []
    for row in sorted(rows):
        alias, answers = row[0], row[7]
        if alias in ALIASES:
            continue  # a second name of a service listed under its own
        for op_name, kind, path in answers:
            entry = f"| `{alias}:{op_name}` | `{path}` |"
            (sensitive if kind == "sensitive" else never).append((kind, entry))
    keys = sum(1 for kind, _ in never if kind == "key")
    doc = [
        "# What AWS answers hold: never grantable, and granted by name only",
        "",
        f"@generated by `scripts/gen-aws-models.py` from botocore {BOTOCORE_VERSION}'s models, "
        "with `host/src/aws/models.rs`; do not edit. To refresh both, set the botocore release in "
        "the script and run it (`python3 scripts/gen-aws-models.py`).",
        "",
        "The generator walks each operation's output shape. An operation whose answer holds "
        "AWS keys (a secret access key or session token, anywhere in the answer) or another "
        "credential it hands out (a member the model marks `sensitive` named as a token, "
        "password, private key, client or shared secret, API key or key material, in the "
        "answer's top two levels and not in a list of resources; a plaintext next to its "
        "ciphertext; a member named as a bearer credential even where the model does not mark "
        "it) is **never grantable**: `check` refuses it naming the member, `service:*` and "
        "method entries never cover it, and a call is `denied`. An operation whose answer "
        "holds any other member the model marks `sensitive` is granted **by name only**.",
        "",
        f"## Never grantable ({len(never)} operations; {keys} of them answer with AWS keys)",
        "",
        "| operation | member |",
        "|---|---|",
        *[entry for _, entry in never],
        "",
        f"## Granted by name only ({len(sensitive)} operations)",
        "",
        "| operation | sensitive member |",
        "|---|---|",
        *[entry for _, entry in sensitive],
        "",
    ]
    path = os.path.join(os.path.dirname(__file__), "..", "docs", "aws-answers.md")
    with open(path, "w") as out:
        out.write("\n".join(doc))


def main(argv):
    path = wheel_path(argv)
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    if digest != BOTOCORE_SHA256:
        sys.exit(f"{path}: sha256 {digest}, expected {BOTOCORE_SHA256} (botocore {BOTOCORE_VERSION})")
    wheel = zipfile.ZipFile(path)
    data = "botocore/data/"

    def load(name):
        raw = wheel.read(data + name)
        return json.loads(gzip.decompress(raw) if name.endswith(".gz") else raw)

    partitions = load("partitions.json")["partitions"]
    endpoints = {p["partition"]: p for p in load("endpoints.json")["partitions"]}

    # Each service's newest model.
    models = {}
    for name in wheel.namelist():
        parts = name[len(data):].split("/")
        if name.startswith(data) and len(parts) == 3 and parts[2] == "service-2.json.gz":
            service, version = parts[0], parts[1]
            if service not in models or version > models[service][0]:
                models[service] = (version, name[len(data):])

    lines = [
        "// Every AWS service `aws-call` can reach, and AWS's partitions: @generated by",
        f"// scripts/gen-aws-models.py from botocore {BOTOCORE_VERSION}'s data/ directory. Do not",
        "// edit: refresh it as the script says. `aws/services.rs` includes it (`include!`).",
        "",
        f"/// The botocore release the table was generated from.",
        f"pub const BOTOCORE_VERSION: &str = {rust_str(BOTOCORE_VERSION)};",
        "",
        "/// AWS's partitions: their regions and default host names.",
        "pub const PARTITIONS: &[Partition] = &[",
    ]
    for partition in partitions:
        pid = partition["id"]
        outputs = partition["outputs"]
        regions = sorted(r for r in partition["regions"] if not r.endswith("-global"))
        defaults = endpoints[pid]["defaults"]
        templates = {"Plain": defaults["hostname"].replace("{dnsSuffix}", outputs["dnsSuffix"])}
        for variant in defaults.get("variants", []):
            tag = VARIANTS[tuple(sorted(variant["tags"]))]
            templates[tag] = variant["hostname"].replace("{dnsSuffix}", variant["dnsSuffix"])
        opt = lambda t: f"Some({rust_str(templates[t])})" if t in templates else "None"
        lines += [
            "    Partition {",
            f"        id: {rust_str(pid)},",
            f"        regions: &[{', '.join(rust_str(r) for r in regions)}],",
            f"        hostname: {rust_str(templates['Plain'])},",
            f"        fips: {opt('Fips')},",
            f"        dual_stack: {opt('DualStack')},",
            f"        fips_dual_stack: {opt('FipsDualStack')},",
            "    },",
        ]
    lines += ["];", ""]

    rows = []
    skipped = []
    for name, (version, model_path) in sorted(models.items()):
        model = load(model_path)
        meta = model["metadata"]
        offered = meta.get("protocols", [meta["protocol"]])
        protocol = next((p for p in PROTOCOLS if p in offered), None)
        if protocol is None:
            skipped.append(f"{name} ({', '.join(offered)})")
            continue
        prefix = meta["endpointPrefix"]
        signing = meta.get("signingName", prefix)
        if protocol == "json":
            rust_protocol = (
                f"Protocol::Json {{ version: {rust_str(meta.get('jsonVersion', '1.0'))}, "
                f"target_prefix: {rust_str(meta['targetPrefix'])} }}"
            )
        else:
            rust_protocol = {
                "query": "Protocol::Query",
                "ec2": "Protocol::Ec2",
                "rest-json": "Protocol::RestJson",
                "rest-xml": "Protocol::RestXml",
            }[protocol]
        operations = []
        routes = {}
        answers = []
        for op_name, op in sorted(model["operations"].items()):
            if "output" in op:
                holds = answer_holds(model["shapes"], op["output"]["shape"])
                if holds:
                    answers.append((op_name, holds[0], holds[1]))
        shapes_text = input_shapes(model, protocol)
        for op_name, op in sorted(model["operations"].items()):
            if not protocol.startswith("rest"):
                operations.append(op_name)
                continue
            http = op["http"]
            uri = http["requestUri"]
            # What tells operations on one route apart: the query keys and headers their
            # input requires (UploadPart's uploadId, CopyObject's x-amz-copy-source).
            shape = model["shapes"].get(op.get("input", {}).get("shape", ""), {})
            query, headers = [], []
            for member in shape.get("required", []):
                spec = shape["members"][member]
                if spec.get("location") == "querystring":
                    query.append(spec.get("locationName", member))
                elif spec.get("location") == "header":
                    headers.append(spec.get("locationName", member).lower())
            if query:
                uri += ("&" if "?" in uri else "?") + "&".join(sorted(query))
            route = (http["method"], uri, tuple(sorted(headers)))
            # On a shared route, the operation a request is taken for: not deprecated
            # (GetBucketLifecycle), not one for S3 Express's control endpoint only
            # (ListDirectoryBuckets), then by name.
            express_only = op_name == "ListDirectoryBuckets"
            rank = (op.get("deprecated", False), express_only)
            routes.setdefault(route, []).append((rank, op_name))
        for (method, uri, headers), twins in sorted(
            routes.items(), key=lambda r: min(n for _, n in r[1])
        ):
            # One operation per route: a deprecated twin (GetBucketLifecycle) gives way, and
            # stays grantable by name without ever being matched.
            first = min(twins)[1]
            operations.append(" ".join([first, method, uri, *headers]))
            operations += [op for _, op in twins if op != first]
        service_endpoints = []
        for pid, partition in endpoints.items():
            entry = partition["services"].get(prefix)
            if not entry:
                continue
            outputs = next(p["outputs"] for p in partitions if p["id"] == pid)
            dual_suffix = outputs["dualStackDnsSuffix"]
            if entry.get("isRegionalized", True) is False and "partitionEndpoint" in entry:
                global_ = entry["endpoints"][entry["partitionEndpoint"]]
                region = global_.get("credentialScope", {}).get("region")
                hostname = global_.get("hostname", f"{prefix}.{region}.{outputs['dnsSuffix']}")
                found = {"Plain": hostname}
                for variant in global_.get("variants", []):
                    found[VARIANTS[tuple(sorted(variant["tags"]))]] = variant["hostname"]
                for tag, host in found.items():
                    service_endpoints.append((pid, tag, host, region))
            for variant in entry.get("defaults", {}).get("variants", []):
                tags = tuple(sorted(variant["tags"]))
                suffix = variant.get("dnsSuffix") or (
                    dual_suffix if "dualstack" in tags else outputs["dnsSuffix"])
                host = (variant["hostname"].replace("{service}", prefix)
                        .replace("{dnsSuffix}", suffix))
                service_endpoints.append((pid, VARIANTS[tags], host, None))
        for alias in [name] + [a for a, target in ALIASES.items() if target == name]:
            rows.append((alias, signing, prefix, version, rust_protocol, service_endpoints,
                         operations, answers, shapes_text))

    lines += [
        f"/// Every service of botocore {BOTOCORE_VERSION} whose protocol `aws-call` speaks, by name.",
        "pub const SERVICES: &[Service] = &[",
    ]
    for (alias, signing, prefix, version, rust_protocol, service_endpoints, operations, answers,
         shapes_text) in sorted(rows):
        lines.append("    Service {")
        lines.append(f"        name: {rust_str(alias)},")
        lines.append(f"        signing_name: {rust_str(signing)},")
        lines.append(f"        endpoint_prefix: {rust_str(prefix)},")
        lines.append(f"        api_version: {rust_str(version)},")
        lines.append(f"        protocol: {rust_protocol},")
        if service_endpoints:
            lines.append("        endpoints: &[")
            for pid, tag, host, region in service_endpoints:
                region = f"Some({rust_str(region)})" if region else "None"
                lines.append(
                    f"            ServiceEndpoint {{ partition: {rust_str(pid)}, variant: "
                    f"Variant::{tag}, hostname: {rust_str(host)}, signing_region: {region} }},")
            lines.append("        ],")
        else:
            lines.append("        endpoints: &[],")
        lines.append(f"        operations: {rust_str(chr(10).join(operations))},")
        kinds = {"key": "Holds::AwsKey", "credential": "Holds::Credential",
                 "sensitive": "Holds::Sensitive"}
        lines.append("        answers: &[")
        for op_name, kind, path in answers:
            lines.append(f"            ({rust_str(op_name)}, {kinds[kind]}, {rust_str(path)}),")
        lines.append("        ],")
        lines.append(f"        inputs: {rust_str(shapes_text)},")
        lines.append("    },")
    lines += ["];", ""]
    lines.insert(4, "// Not generated (no protocol aws-call speaks): " + "; ".join(skipped) + ".")
    with open(OUT, "w") as out:
        out.write("\n".join(lines))
    write_answers_doc(rows)
    print(f"{OUT}: {len(rows)} services, {len(partitions)} partitions; skipped {len(skipped)}")


if __name__ == "__main__":
    main(sys.argv)
