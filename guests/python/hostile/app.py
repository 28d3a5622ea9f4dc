"""A hostile monitor in Python: each export tries to break one rule of the trust model.

- `search` never returns (the deadline must stop it),
- `update` allocates without bound (the memory limit must stop it),
- `is_solved` signs with credentials it was not granted (the host must deny every one), or,
  for the issue `mint`, asks a granted credential for key material and secret values through
  `aws-call` (the host must deny or refuse every one, whatever `sts:*`-style grants say),
  including through a REST method grant, a flag spelled as AWS would also read it, and a
  `kms:*` grant (Decrypt is granted by name only).
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
        if issue.id == "mint":
            return self.mint()
        refused = []
        for credential in STOLEN:
            try:
                Aws(credential).sqs().list_queues()
            except HostError as e:
                refused.append(f"{credential}: {e}")
                continue
            return True  # the host signed with a credential this monitor was not granted
        raise PermissionError("; ".join(refused))


    def mint(self):
        aws = Aws("MONITORING")
        attempts = {
            "GetSessionToken": lambda: aws.query("sts", "GetSessionToken", {}),
            "AssumeRole": lambda: aws.query(
                "sts", "AssumeRole", {"RoleArn": "arn:aws:iam::123456789012:role/x", "RoleSessionName": "x"}
            ),
            "CreateAccessKey": lambda: aws.query("iam", "CreateAccessKey", {"UserName": "x"}),
            "GetSecretValue": lambda: aws.json("secretsmanager", "GetSecretValue", {"SecretId": "x"}),
            "GetParameter": lambda: aws.json("ssm", "GetParameter", {"Name": "x", "WithDecryption": True}),
            # The flag as AWS would also read it: a number, a string, another case.
            "WithDecryption 1": lambda: aws.json("ssm", "GetParameter", {"Name": "x", "WithDecryption": 1}),
            "WithDecryption text": lambda: aws.json(
                "ssm", "GetParameter", {"Name": "x", "WithDecryption": "true"}
            ),
            "withDecryption": lambda: aws.json("ssm", "GetParameter", {"Name": "x", "withDecryption": True}),
            # Keys through a REST method grant: `GET /bucket?session` is s3:CreateSession.
            "CreateSession": lambda: aws.signed("s3", "GET", "/bucket", query=[("session", "")]),
            "GetDelegatedAccessToken": lambda: aws.query(
                "sts", "GetDelegatedAccessToken", {"TradeInToken": "x"}
            ),
            # A plaintext data key by composition: the key's ciphertext, then Decrypt.
            "Decrypt": lambda: aws.json("kms", "Decrypt", {"CiphertextBlob": "AAAA"}),
        }
        refused = []
        for name, attempt in attempts.items():
            try:
                got = attempt()
            except HostError as e:
                refused.append(f"{name}: {e}")
                continue
            log.error(f"{name} answered: {got}")
            return True  # the host let key material or a secret value through
        raise PermissionError("; ".join(refused))


Checks = export(Hostile)
