"""The Python peer of the queue benchmark: an aiobotocore consumer written the way Python
Sentinela's SQS queue works (ReceiveMessage with MaxNumberOfMessages=1 and a long poll,
json.loads of the body, DeleteMessage one at a time), but with one client for the process:
Sentinela builds a new client per call, which costs ~380 ms of CPU per message and would make
the comparison meaningless.

    python bench/sqs_peer.py ENDPOINT QUEUE_URL COUNT

Prints `ready` once its client works, then consumes COUNT messages and prints one JSON line:
{"messages": N, "cpu_s": ..., "wall_s": ...}, CPU and wall time counted from `ready`.
"""

import asyncio
import json
import sys
import time

from aiobotocore.session import get_session

WAIT_SECONDS = 1
VISIBILITY_SECONDS = 60


async def main(endpoint: str, queue_url: str, count: int) -> None:
    session = get_session()
    async with session.create_client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    ) as sqs:
        await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        cpu0, wall0 = time.process_time(), time.perf_counter()
        print("ready", flush=True)
        done = 0
        while done < count:
            answer = await sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=1,
                WaitTimeSeconds=WAIT_SECONDS,
                VisibilityTimeout=VISIBILITY_SECONDS,
            )
            for message in answer.get("Messages", []):
                json.loads(message["Body"])
                await sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                done += 1
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        print(json.dumps({"messages": done, "cpu_s": cpu, "wall_s": wall}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
