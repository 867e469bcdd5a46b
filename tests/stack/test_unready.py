"""``vigil up`` watching Vigil: a service whose database is cut is unready, the supervisor raises
``service_unready`` after the threshold and recovers it when the database is back, and the incident
log turns it into an incident on the ``platform`` route, resolved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from contracts import AlertKind, Topic
from services.runtime import KafkaSettings
from services.stack.supervisor import ChildState
from tests.kafka_tools import read_until
from tests.polling import eventually
from tests.stack.test_watch import (
    IL,
    documents,
    raised_then_recovered,
    stack_of,
    stack_settings,
)
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.e2e]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_service_whose_database_is_cut_raises_service_unready_until_it_is_back(
    kafka_settings: KafkaSettings, tmp_path: Path, database_url: str
) -> None:
    real = make_url(database_url)
    async with TcpProxy(real.host or "127.0.0.1", real.port or 5432) as proxy:
        proxied = real.set(port=proxy.port).render_as_string(hide_password=False)
        settings = stack_settings(
            kafka_settings,
            tmp_path / "state",
            service_env={"VIGIL_INCIDENT_LOG_DATABASE_URL": proxied},
            heartbeat_interval_s=5.0,
            heartbeat_timeout_s=600.0,
        )
        async with stack_of(settings) as stack:
            proxy.cut()

            def unready() -> bool:
                (status,) = stack.supervisor.status()
                return status.state is ChildState.UNREADY

            async def is_unready() -> bool:
                return unready()

            await eventually(is_unready, timeout_s=30, every_s=0.2)
            await read_until(
                kafka_settings,
                Topic.ALERTS,
                lambda rs: bool(documents(rs, AlertKind.SERVICE_UNREADY)),
                timeout_s=30,
            )
            proxy.restore()
            records = await read_until(
                kafka_settings,
                Topic.ALERTS,
                raised_then_recovered(AlertKind.SERVICE_UNREADY, "supervisor/incident-log"),
                timeout_s=60,
            )
            alerts = documents(records, AlertKind.SERVICE_UNREADY)
            assert [a["type"] for a in alerts] == ["alert.raised", "alert.recovered"]
            assert alerts[0]["evidence"]["state"] == "unready"
            assert alerts[0]["severity"] == "critical"

            async with httpx.AsyncClient(
                base_url=stack.url(IL),
                headers={"Authorization": f"Bearer {stack.credentials.admin_token}"},
            ) as http:

                async def resolved() -> list[dict[str, Any]]:
                    found = (await http.get("/incidents", params={"model": "vigil"})).json()
                    return [i for i in found if i["status"] == "resolved"]

                (incident,) = await eventually(resolved, timeout_s=60, every_s=0.2)
                assert (incident["kind"], incident["route"]) == ("service_unready", "platform")
