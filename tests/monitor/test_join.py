"""The label join: either side may wait; TTL and cap bound it; nothing leaves it unreported."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.monitor.join import (
    DuplicateEntry,
    ExpiryReason,
    LabelJoin,
    PendingLabel,
    PendingPrediction,
)
from tests.factories import T0


def prediction(
    request_id: str,
    at: datetime = T0,
    *,
    model: str = "m",
    version: int = 1,
    variant: str = "champion",
) -> PendingPrediction:
    return PendingPrediction(
        model, request_id, version, variant, at, "a", {"a": 0.8, "b": 0.2}, 0.8
    )


def label(request_id: str, at: datetime = T0, *, model: str = "m") -> PendingLabel:
    return PendingLabel(model, request_id, at, "b")


def join(ttl_minutes: float = 60, cap: int = 100) -> LabelJoin:
    return LabelJoin(ttl=timedelta(minutes=ttl_minutes), max_pending=cap)


def test_a_label_joins_the_prediction_waiting_for_it() -> None:
    waiting = join()
    assert waiting.add_prediction(prediction("r1")) == ([], [])
    joined, evicted = waiting.add_label(label("r1", T0 + timedelta(minutes=5)))
    assert [(j.prediction.request_id, j.label.label) for j in joined] == [("r1", "b")]
    assert joined[0].at == T0 + timedelta(minutes=5)
    assert evicted == []
    assert len(waiting) == 0


def test_a_label_that_comes_first_waits_for_its_prediction() -> None:
    waiting = join()
    assert waiting.add_label(label("r1")) == ([], [])
    assert waiting.pending_labels() == 1
    joined, _ = waiting.add_prediction(prediction("r1"))
    assert len(joined) == 1
    assert len(waiting) == 0


def test_a_label_joins_the_champion_and_the_shadow_prediction_of_one_request() -> None:
    waiting = join()
    waiting.add_prediction(prediction("r1", version=1, variant="champion"))
    waiting.add_prediction(prediction("r1", version=2, variant="challenger"))
    assert waiting.versions_waiting("m") == {1, 2}
    joined, _ = waiting.add_label(label("r1"))
    assert sorted(j.prediction.version for j in joined) == [1, 2]
    assert waiting.versions_waiting("m") == set()


def test_requests_of_different_models_do_not_join() -> None:
    waiting = join()
    waiting.add_prediction(prediction("r1", model="m"))
    joined, _ = waiting.add_label(label("r1", model="other"))
    assert joined == []
    assert waiting.pending_predictions() == waiting.pending_labels() == 1


def test_entries_older_than_the_ttl_expire_in_event_time() -> None:
    waiting = join(ttl_minutes=60)
    waiting.add_prediction(prediction("old", T0))
    waiting.add_prediction(prediction("young", T0 + timedelta(minutes=30)))
    waiting.add_label(label("orphan", T0 + timedelta(minutes=10)))
    assert waiting.expire("m", T0 + timedelta(minutes=60)) == []
    expired = waiting.expire("m", T0 + timedelta(minutes=71))
    assert [(type(e.entry).__name__, e.entry.request_id, e.reason) for e in expired] == [
        ("PendingPrediction", "old", ExpiryReason.TTL),
        ("PendingLabel", "orphan", ExpiryReason.TTL),
    ]
    assert waiting.pending_predictions() == 1


def test_the_cap_evicts_the_oldest_entry_of_any_model_and_reports_it() -> None:
    waiting = join(cap=2)
    waiting.add_prediction(prediction("r1", T0 + timedelta(seconds=5), model="m"))
    waiting.add_label(label("r2", T0, model="other"))
    _, evicted = waiting.add_prediction(prediction("r3", T0 + timedelta(seconds=9), model="m"))
    assert [(e.entry.model, e.entry.request_id, e.reason) for e in evicted] == [
        ("other", "r2", ExpiryReason.CAPACITY)
    ]
    assert len(waiting) == 2


def test_the_same_prediction_or_label_waiting_twice_is_refused() -> None:
    waiting = join()
    waiting.add_prediction(prediction("r1"))
    with pytest.raises(DuplicateEntry, match="already waiting"):
        waiting.add_prediction(prediction("r1"))
    waiting.add_label(label("r2"))
    with pytest.raises(DuplicateEntry, match="already waiting"):
        waiting.add_label(label("r2"))


def test_changes_name_only_what_storage_must_add_or_delete() -> None:
    waiting = join()
    waiting.restore([prediction("stored")])
    waiting.add_prediction(prediction("fresh"))
    waiting.add_prediction(prediction("joined-at-once"))
    waiting.add_label(label("joined-at-once"))
    waiting.add_label(label("stored"))
    changes = waiting.drain()
    assert [entry.request_id for entry in changes.added] == ["fresh"]
    assert changes.removed == [("m", "stored", 1, "champion")]
    assert waiting.drain().added == []


def test_a_stored_key_removed_and_added_again_is_deleted_then_written() -> None:
    waiting = join()
    waiting.restore([label("r1")])
    waiting.add_prediction(prediction("r1"))  # joins the stored label
    waiting.add_label(label("r1", T0 + timedelta(minutes=1)))  # a new label waits again
    changes = waiting.drain()
    assert changes.removed == [("m", "r1", 0, "")]
    assert [(e.request_id, e.occurred_at) for e in changes.added] == [
        ("r1", T0 + timedelta(minutes=1))
    ]


def test_restored_entries_join_and_expire_like_fresh_ones() -> None:
    waiting = join(ttl_minutes=10)
    waiting.restore([prediction("r1", T0), prediction("r2", T0 + timedelta(minutes=5))])
    joined, _ = waiting.add_label(label("r2"))
    assert len(joined) == 1
    expired = waiting.expire("m", T0 + timedelta(minutes=11))
    assert [e.entry.request_id for e in expired] == ["r1"]


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ttl"):
        LabelJoin(ttl=timedelta(0), max_pending=1)
    with pytest.raises(ValueError, match="max_pending"):
        LabelJoin(ttl=timedelta(seconds=1), max_pending=0)
