"""A scorer-like replica for the partition-lease kill test: joins the consumer group named on the
command line (reading ``scoring.requests`` from the environment's broker) and prints, five times a
second, one JSON line: how many partitions it is assigned and whether it holds the lease."""

from __future__ import annotations

import asyncio
import json
import sys

from contracts import Topic
from contracts.scoring import ScoringRequest
from services.runtime import ServiceName, ServiceRuntime, ServiceSettings


async def _ignore(requests: list[ScoringRequest]) -> None:
    return None


async def main(group: str) -> None:
    runtime = ServiceRuntime(ServiceName.SCORER, ServiceSettings(), group_id=group)
    runtime.consumer.on_batch(ScoringRequest, _ignore)
    lease = runtime.partition_lease("lease", Topic.SCORING_REQUESTS)
    async with runtime.running():
        while True:
            line = {"assigned": len(runtime.assignment()), "held": await lease.held()}
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
            await asyncio.sleep(0.2)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
