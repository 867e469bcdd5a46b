"""The optional alert policy: with it on, a critical decay alert retrains the model once however
often it repeats; with it off (the default) alerts retrain nothing."""

from __future__ import annotations

from typing import Any

import pytest

from contracts import AlertKind, RetrainFinished, RetrainStarted, RetrainTrigger, Severity
from tests.factories import make_alert
from tests.retrainer.retrainer_harness import MODEL, Retrainer, of_type

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def retrainer_settings() -> dict[str, Any]:
    return {"retrain_on_alerts": True}


async def test_a_repeated_decay_alert_retrains_once_under_the_policy(retrainer: Retrainer) -> None:
    alert = make_alert(model=MODEL, model_version=1, severity=Severity.CRITICAL)
    repeats = [alert.model_copy(update={"event_id": make_alert().event_id}) for _ in range(3)]
    drift_warning = make_alert(model=MODEL, kind=AlertKind.DATA_DRIFT, severity=Severity.WARNING)
    await retrainer.publish(alert, *repeats, drift_warning)
    await retrainer.models(lambda e: len(of_type(e, RetrainFinished)) == 1)
    events = await retrainer.quiet_models()
    assert len(of_type(events, RetrainStarted)) == 1
    [run] = (await retrainer.http.get("/retrains")).json()
    assert run["trigger"] == RetrainTrigger.POLICY.value
    assert run["causes"] == [f"alert:{alert.fingerprint}"]
    assert run["requested_by"] == "system:retrain-policy"
