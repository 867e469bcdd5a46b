"""A minimal service process for shutdown tests: handles alerts slowly and logs what it did.

Run as ``python -m tests.runtime.slow_service``; configured by the ``VIGIL_KAFKA_*`` variables,
plus ``SLOW_SERVICE_LOG`` (file to append to), ``SLOW_SERVICE_GROUP``, ``SLOW_SERVICE_SECONDS``
and ``SLOW_SERVICE_HTTP_PORT``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pydantic_settings import SettingsConfigDict

from contracts import AlertRaised
from services.runtime import ServiceName, ServiceRuntime, ServiceSettings, serve


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SLOW_SERVICE_")


def main() -> None:
    settings = Settings()
    log = Path(os.environ["SLOW_SERVICE_LOG"])
    seconds = float(os.environ.get("SLOW_SERVICE_SECONDS", "2"))
    runtime = ServiceRuntime(
        ServiceName.MONITOR, settings, group_id=os.environ["SLOW_SERVICE_GROUP"]
    )

    def note(line: str) -> None:
        with log.open("a") as file:
            file.write(line + "\n")

    async def on_alert(alert: AlertRaised) -> None:
        note(f"started {alert.event_id}")
        await asyncio.sleep(seconds)
        note(f"done {alert.event_id}")

    runtime.consumer.on(AlertRaised, on_alert)
    serve(runtime.http_app(title="slow"), settings, service="slow")


if __name__ == "__main__":
    main()
