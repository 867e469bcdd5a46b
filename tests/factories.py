"""Test-data factories: one realistic event of every type, and builders with overrides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from contracts import (
    EVENT_TYPES,
    AlertKind,
    AlertRaised,
    AlertRecovered,
    CandidateEvaluated,
    Channel,
    ComparisonVerdict,
    Correction,
    DatasetChanges,
    DatasetRef,
    DeadLetterReason,
    DeliveryOutcome,
    Deployment,
    DriftCheck,
    DriftReported,
    EscalationTrigger,
    FeatureDrift,
    FeatureKind,
    FeatureShift,
    FeatureSpec,
    GoldenCase,
    HeartbeatEchoed,
    IncidentAcknowledged,
    IncidentAlertAttached,
    IncidentClaimed,
    IncidentCommented,
    IncidentEscalated,
    IncidentOpened,
    IncidentReopened,
    IncidentResolved,
    IncidentStatus,
    IncidentStatusChanged,
    LabelRecorded,
    LatencySummary,
    MessageDeadLettered,
    MetricsComputed,
    MetricTarget,
    ModelApproved,
    ModelDeployed,
    ModelPromoted,
    ModelRegistered,
    ModelRejected,
    ModelRolledBack,
    ModelVersionRecord,
    MonitoringSpec,
    NotificationAttempted,
    NotificationReason,
    PredictionMade,
    ProbeCase,
    ProbeCompleted,
    ProbeSpec,
    PromotionExpired,
    PromotionRequested,
    RetrainAnswer,
    RetrainAnswered,
    RetrainFinished,
    RetrainRefusal,
    RetrainRequest,
    RetrainStarted,
    RetrainTrigger,
    RunbookFinished,
    RunbookRequest,
    RunbookStarted,
    RunState,
    ScoringRequest,
    SequentialAlarm,
    ServedVersion,
    Severity,
    Tier,
    ValuePredicted,
    ValueRecorded,
    Variant,
    VariantsCompared,
    Window,
    WindowKind,
    alert_fingerprint,
)
from contracts.envelope import Envelope
from services.runtime.request_signing import SigningKeys, sign

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SHA = "ab" * 32
MODEL = "breast-cancer"


def make_spec(**overrides: Any) -> MonitoringSpec:
    fields: dict[str, Any] = {
        "features": [
            FeatureSpec(name="mean radius", kind=FeatureKind.NUMERIC),
            FeatureSpec(name="mean texture", kind=FeatureKind.NUMERIC, nullable=True),
        ],
        "label": "diagnosis",
        "classes": ["malignant", "benign"],
        "positive_class": "malignant",
        "key_metric": "recall",
        "metrics": [MetricTarget(metric="recall", baseline=0.97, threshold=0.95)],
        "probe": ProbeSpec(
            golden_set=[
                GoldenCase(
                    case_id="g1",
                    features={"mean radius": 20.0, "mean texture": 25.0},
                    expected="malignant",
                )
            ]
        ),
    }
    return MonitoringSpec(**(fields | overrides))


def make_deployment(**overrides: Any) -> Deployment:
    fields: dict[str, Any] = {
        "revision": 2,
        "champion": ServedVersion(version=1, artifact_uri="artifacts/a.skops", artifact_sha256=SHA),
        "challenger": ServedVersion(
            version=2, artifact_uri="artifacts/b.skops", artifact_sha256="cd" * 32
        ),
        "challenger_share": 0.1,
    }
    return Deployment(**(fields | overrides))


def make_version_record(**overrides: Any) -> ModelVersionRecord:
    fields: dict[str, Any] = {
        "model": MODEL,
        "version": 2,
        "artifact_uri": f"sha256/{SHA}.skops",
        "artifact_sha256": SHA,
        "sklearn_version": "1.6.1",
        "dataset": DatasetRef(name=MODEL, version="1", digest="sha256:" + SHA),
        "metrics": {"recall": 0.97},
        "evaluation_dataset": DatasetRef(
            name=MODEL, version="1-test", digest="sha256:" + "cd" * 32
        ),
        "parameters": {"C": 1.0, "penalty": "l2"},
        "code_version": "vigil 0.1.0",
        "spec": make_spec(),
        "registered_by": "ana",
        "reason": "retrain",
        "incident_id": "inc-000001",
        "registered_at": T0,
    }
    return ModelVersionRecord(**(fields | overrides))


def make_window() -> Window:
    return Window(kind=WindowKind.COUNT, start=T0, end=T0 + timedelta(minutes=5), size=200)


def make_metrics(**overrides: Any) -> MetricsComputed:
    """A judged champion window of the model's v3 that breaches nothing."""
    fields: dict[str, Any] = {
        "producer": "monitor",
        "model": MODEL,
        "model_version": 3,
        "variant": Variant.CHAMPION,
        "window": make_window(),
        "metrics": {"recall": 0.97},
        "class_labels": ["malignant", "benign"],
        "confusion_matrix": [[97, 3], [5, 95]],
        "labelled": 200,
        "predictions": 200,
        "expired_unjoined": 0,
        "latency_ms": LatencySummary(p50=1, p95=2, p99=3),
        "throughput_per_s": 10,
        "breaching": [],
    }
    return MetricsComputed(**(fields | overrides))


def make_promotion(**overrides: Any) -> ModelPromoted:
    """The retrainer promoted v4 over v3 after the canary."""
    fields: dict[str, Any] = {
        "producer": "retrainer",
        "model": MODEL,
        "version": 4,
        "previous_version": 3,
        "deployment": make_deployment(challenger=None, challenger_share=0.0),
        "actor": "system:retrainer",
        "reason": "canary non-inferior",
        "occurred_at": T0,
    }
    return ModelPromoted(**(fields | overrides))


def make_rollback(**overrides: Any) -> ModelRolledBack:
    """The rollback runbook put v2 back in place of v3."""
    fields: dict[str, Any] = {
        "producer": "retrainer",
        "model": MODEL,
        "from_version": 3,
        "to_version": 2,
        "deployment": make_deployment(challenger=None, challenger_share=0.0),
        "actor": "runbook-runner",
        "reason": "fresh deployment",
    }
    return ModelRolledBack(**(fields | overrides))


def make_alert(**overrides: Any) -> AlertRaised:
    fields: dict[str, Any] = {
        "producer": "monitor",
        "model": MODEL,
        "model_version": 3,
        "kind": AlertKind.METRIC_DECAY,
        "severity": Severity.CRITICAL,
        "fingerprint": alert_fingerprint(MODEL, 3, AlertKind.METRIC_DECAY, "recall"),
        "summary": "recall 0.81 below 0.95 for 2 windows",
        "evidence": {"recall": 0.81, "threshold": 0.95, "windows": [0.84, 0.81]},
    }
    return AlertRaised(**(fields | overrides))


def make_scoring_request(**overrides: Any) -> ScoringRequest:
    fields: dict[str, Any] = {
        "producer": "client",
        "model": MODEL,
        "request_id": "req-1",
        "entity_id": "patient-1",
        "features": {"mean radius": 14.2, "mean texture": None},
    }
    return ScoringRequest(**(fields | overrides))


def _incident(**fields: Any) -> dict[str, Any]:
    return {
        "producer": "incident-log",
        "incident_id": "inc-000001",
        "model": MODEL,
        "model_version": 3,
        "status": IncidentStatus.OPEN,
        "tier": Tier.L1,
        "actor": "system:incident-log",
        "correlation_id": "inc-000001",
    } | fields


def _feature_drift(name: str) -> FeatureDrift:
    return FeatureDrift(
        feature=name,
        kind=FeatureKind.NUMERIC,
        test="ks",
        statistic=0.3,
        p_value=1e-9,
        adjusted_p_value=3e-8,
        effect_size=0.4,
        effect_measure="wasserstein / reference std",
        psi=0.3,
        missing_rate_reference=0.0,
        missing_rate_current=0.0,
        drifted=True,
        reasons=["distribution"],
        checks=[make_drift_check()],
        statistics={"ks": 0.3, "ks_p_value": 1e-9, "wasserstein": 1.2},
    )


def make_drift_check(**overrides: Any) -> DriftCheck:
    fields: dict[str, Any] = {
        "check": "distribution",
        "test": "cramervonmises",
        "statistic": 2.1,
        "p_value": 1e-9,
        "adjusted_p_value": 3e-8,
        "effect_size": 0.4,
        "effect_measure": "wasserstein / reference std",
        "effect_floor": 0.05,
        "fired": True,
    }
    return DriftCheck(**(fields | overrides))


def sample_events() -> list[Envelope]:
    """One event of every type on every topic, with nested models and optional fields filled."""
    deployment = make_deployment()
    events: list[Envelope] = [
        make_scoring_request(),
        PredictionMade(
            producer="scorer",
            model=MODEL,
            model_version=2,
            variant=Variant.CHALLENGER,
            deployment_revision=2,
            request_id="req-1",
            entity_id="patient-1",
            features={"mean radius": 14.2, "mean texture": None},
            predicted_class="benign",
            probabilities={"malignant": 0.2, "benign": 0.8},
            confidence=0.8,
            latency_ms=2.5,
        ),
        LabelRecorded(producer="client", model=MODEL, request_id="req-1", label=1),
        ValuePredicted(
            producer="scorer",
            model="diabetes-progression",
            model_version=1,
            variant=Variant.CHAMPION,
            deployment_revision=1,
            request_id="req-2",
            features={"bmi": 0.06, "bp": None},
            predicted_value=151.2,
            latency_ms=1.5,
        ),
        ValueRecorded(
            producer="client", model="diabetes-progression", request_id="req-2", value=142.0
        ),
        MetricsComputed(
            producer="monitor",
            model=MODEL,
            model_version=2,
            variant=Variant.CHAMPION,
            window=make_window(),
            metrics={"recall": 0.9, "roc_auc": None},
            class_labels=["malignant", "benign"],
            confusion_matrix=[[9, 1], [2, 8]],
            labelled=20,
            predictions=25,
            expired_unjoined=1,
            latency_ms=LatencySummary(p50=1.0, p95=2.0, p99=3.0),
            throughput_per_s=12.5,
        ),
        ProbeCompleted(
            producer="monitor",
            model=MODEL,
            model_version=2,
            passed=False,
            accuracy=0.5,
            min_accuracy=1.0,
            cases=[
                ProbeCase(case_id="g1", expected="malignant", predicted="benign"),
                ProbeCase(case_id="g2", expected="benign", error="HTTP 503"),
            ],
            latency_ms=12.0,
            failure="accuracy 0.5 below 1.0",
        ),
        VariantsCompared(
            producer="monitor",
            model=MODEL,
            champion_version=1,
            challenger_version=2,
            metric="recall",
            champion_value=0.95,
            challenger_value=0.97,
            champion_samples=400,
            challenger_samples=60,
            min_samples=50,
            test="two-proportion z-test",
            p_value=0.2,
            alpha=0.05,
            verdict=ComparisonVerdict.NO_SIGNIFICANT_DIFFERENCE,
        ),
        DriftReported(
            producer="drift-detector",
            model=MODEL,
            model_version=2,
            window=make_window(),
            drifted=True,
            drivers=["mean radius"],
            features=[_feature_drift("mean radius")],
            score=_feature_drift("__score__"),
            correction=Correction.BONFERRONI,
            alpha=0.01,
            effect_size_floor=0.1,
            joint=make_drift_check(
                check="joint_location", test="hotelling", effect_measure="mahalanobis"
            ),
            sequential=SequentialAlarm(
                statistic=31.2, threshold=27.5, allowance=0.1, features=["mean radius"], rows=740
            ),
            hypotheses=5,
        ),
        make_alert(correlation_id="chain-1"),
        AlertRecovered(
            producer="monitor",
            model=MODEL,
            model_version=3,
            kind=AlertKind.METRIC_DECAY,
            fingerprint=alert_fingerprint(MODEL, 3, AlertKind.METRIC_DECAY, "recall"),
            summary="recall back to 0.96",
            evidence={"recall": 0.96},
        ),
        IncidentOpened(
            **_incident(
                title="recall decay",
                severity=Severity.CRITICAL,
                kind=AlertKind.METRIC_DECAY,
                fingerprint="breast-cancer:v3:metric_decay:recall",
            )
        ),
        IncidentAlertAttached(
            **_incident(
                fingerprint="breast-cancer:v3:data_drift:mean radius",
                kind=AlertKind.DATA_DRIFT,
                occurrences=2,
                correlated=True,
            )
        ),
        IncidentAcknowledged(**_incident(status=IncidentStatus.ACKNOWLEDGED, actor="ana")),
        IncidentClaimed(
            **_incident(owner="ana", lease_expires_at=T0 + timedelta(minutes=30), actor="ana")
        ),
        IncidentEscalated(
            **_incident(
                tier=Tier.L2,
                from_tier=Tier.L1,
                trigger=EscalationTrigger.VERIFICATION_FAILED,
                reason="verification exited 1",
            )
        ),
        IncidentStatusChanged(
            **_incident(
                status=IncidentStatus.MONITORING,
                from_status=IncidentStatus.MITIGATING,
                reason="rollback verified",
            )
        ),
        IncidentResolved(
            **_incident(
                status=IncidentStatus.RESOLVED,
                from_status=IncidentStatus.MONITORING,
                reason="recall held",
            )
        ),
        IncidentReopened(**_incident(reason="recurred")),
        IncidentCommented(**_incident(text="looking", actor="ana")),
        RunbookRequest(
            producer="incident-log",
            run_id="run-1",
            incident_id="inc-000001",
            model=MODEL,
            runbook="rollback-model",
            parameters={"model": MODEL, "to_version": 1, "dry_run": False},
            requested_by="system:incident-log",
            tier=Tier.L1,
            reason="decay after deploy",
            model_version=3,
            approved_by="bo",
        ),
        RunbookStarted(
            producer="runbook-runner",
            run_id="run-1",
            incident_id="inc-000001",
            model=MODEL,
            runbook="rollback-model",
            script_sha256=SHA,
            argv=["runbooks/rollback_model.py", "--model", MODEL],
            verify_argv=["runbooks/verify_model.py", "--model", MODEL],
            verify_script_sha256="cd" * 32,
        ),
        RunbookFinished(
            producer="runbook-runner",
            run_id="run-1",
            incident_id="inc-000001",
            model=MODEL,
            runbook="rollback-model",
            state=RunState.VERIFY_FAILED,
            script_sha256=SHA,
            parameters={"to_version": 1},
            exit_code=0,
            verify_exit_code=1,
            stdout="rolled back",
            stderr="",
            verify_output="recall 0.81 < 0.95",
            truncated=False,
            started_at=T0,
            detail="verification exited 1",
        ),
        RetrainRequest(
            producer="incident-log",
            model=MODEL,
            trigger=RetrainTrigger.INCIDENT,
            cause="incident:inc-000001",
            incident_id="inc-000001",
            requested_by="ana",
            reason="drift",
            parameters={"C": 0.5},
            via="runbook-runner",
        ),
        RetrainAnswered(
            producer="retrainer",
            model=MODEL,
            ask_event_id=UUID("6f1c2a8e-3b7d-4c1e-9a55-0c1d2e3f4a5b"),
            cause="incident:inc-000001",
            answer=RetrainAnswer.REFUSED,
            run_id="rt-1",
            refusal=RetrainRefusal.ALREADY_RETRAINED,
            reason="incident:inc-000001 was already retrained for in run rt-1",
            incident_id="inc-000001",
            requested_by="ana",
            via="runbook-runner",
        ),
        ModelRegistered(producer="retrainer", model=MODEL, record=make_version_record()),
        ModelDeployed(
            producer="retrainer",
            model=MODEL,
            deployment=deployment,
            actor="ana",
            reason="canary",
            incident_id="inc-000001",
        ),
        ModelPromoted(
            producer="retrainer",
            model=MODEL,
            version=2,
            previous_version=1,
            deployment=make_deployment(challenger=None, challenger_share=0.0),
            actor="system:retrainer",
            reason="non-inferior",
        ),
        ModelRolledBack(
            producer="retrainer",
            model=MODEL,
            from_version=2,
            to_version=1,
            deployment=make_deployment(challenger=None, challenger_share=0.0),
            actor="runbook",
            reason="decay",
        ),
        ModelApproved(
            producer="retrainer",
            model=MODEL,
            version=2,
            request_id="pr-1",
            approver="bo",
            comment="ok",
        ),
        ModelRejected(
            producer="retrainer",
            model=MODEL,
            version=2,
            request_id="pr-1",
            approver="bo",
            comment="no",
        ),
        RetrainStarted(
            producer="retrainer",
            model=MODEL,
            run_id="rt-1",
            cause="incident:inc-000001",
            incident_id="inc-000001",
            dataset=DatasetRef(name=MODEL, version="2", digest="sha256:" + SHA),
        ),
        RetrainFinished(
            producer="retrainer",
            model=MODEL,
            run_id="rt-1",
            incident_id="inc-000001",
            candidate_version=3,
            cached_steps=["prepare"],
            dataset_changes=DatasetChanges(
                previous=DatasetRef(name=MODEL, version="1", digest="sha256:" + SHA),
                current=DatasetRef(name=MODEL, version="2", digest="sha256:" + "cd" * 32),
                rows_before=426,
                rows_after=826,
                live_rows=400,
                dropped_rows=1,
                label_balance_before={"malignant": 0.37, "benign": 0.63},
                label_balance_after={"malignant": 0.41, "benign": 0.59},
                features=[
                    FeatureShift(
                        feature="mean radius",
                        kind=FeatureKind.NUMERIC,
                        test="ks",
                        statistic=0.12,
                        p_value=0.003,
                        mean_before=14.1,
                        mean_after=15.3,
                        missing_rate_before=0.0,
                        missing_rate_after=0.01,
                    )
                ],
            ),
        ),
        CandidateEvaluated(
            producer="retrainer",
            model=MODEL,
            evaluation_id="ev-1",
            candidate_version=3,
            champion_version=2,
            dataset_digest="sha256:" + SHA,
            passed=True,
            figures={"recall": {"candidate": 0.97, "champion": 0.91, "floor": 0.95}},
            incident_id="inc-000001",
        ),
        PromotionRequested(
            producer="retrainer",
            model=MODEL,
            request_id="pr-1",
            version=3,
            evaluation_id="ev-1",
            requested_by="ana",
            expires_at=T0 + timedelta(hours=24),
            summary="recall 0.97 vs 0.91",
            incident_id="inc-000001",
        ),
        PromotionExpired(
            producer="retrainer", model=MODEL, request_id="pr-1", version=3, incident_id=None
        ),
        NotificationAttempted(
            producer="incident-log",
            incident_id="inc-000001",
            model=MODEL,
            tier=Tier.L1,
            person="ana",
            channel=Channel.WEBHOOK,
            reason=NotificationReason.PAGE,
            idempotency_key="ntf-0123456789abcdef01234567",
            attempt=2,
            outcome=DeliveryOutcome.RETRYING,
            error="HTTP 503 from the receiver",
        ),
        HeartbeatEchoed(
            producer="incident-log",
            source="supervisor-5f0c2a",
            alert_event_id=uuid4(),
            sent_at=datetime(2026, 12, 4, 20, 0, tzinfo=UTC),
            received_at=datetime(2026, 12, 4, 20, 0, 1, tzinfo=UTC),
        ),
        MessageDeadLettered(
            producer="scorer",
            original_topic="scoring.requests",
            partition=1,
            offset=7,
            consumer_group="scorer",
            reason=DeadLetterReason.INVALID,
            error="features: Field required",
            original_key_b64="YQ==",
            original_value_b64="e30=",
            original_headers={"content-type": "application/json"},
        ),
    ]
    missing = set(EVENT_TYPES) - {event.type for event in events}
    assert not missing, f"sample_events lacks {sorted(missing)}"
    return events


TEST_SIGNING_KEY = "test-runbook-signing-key-0123456789abcdef"
"""The key tests share between the incident log and the runner (VIGIL_RUNBOOK_SIGNING_KEY)."""


def sign_runbook_request(
    request: RunbookRequest,
    key: str = TEST_SIGNING_KEY,
    *,
    valid_for: timedelta = timedelta(hours=1),
) -> RunbookRequest:
    """A request signed as the incident log signs it."""
    return sign(request, SigningKeys.parse(key), valid_for=valid_for)


def make_runbook_request(*, signed: bool = True, **overrides: Any) -> RunbookRequest:
    """A runbook request, signed with the tests' key unless ``signed=False``."""
    fields: dict[str, Any] = {
        "producer": "incident-log",
        "run_id": "run-1",
        "incident_id": "inc-000001",
        "model": MODEL,
        "model_version": 3,
        "runbook": "passes",
        "parameters": {"to_version": 2},
        "requested_by": "system:incident-log",
        "tier": Tier.L1,
        "reason": "recall fell right after the deployment",
        "correlation_id": "inc-000001",
    }
    request = RunbookRequest(**(fields | overrides))
    return sign_runbook_request(request) if signed else request
