"""The registry's pure rules: deployments, traffic, promotion, one-step rollback, history."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts import (
    Deployment,
    DeploymentMode,
    ModelDeployed,
    ModelPromoted,
    ModelRolledBack,
    ServedVersion,
)
from services.retrainer.registry.deployments import (
    Action,
    Alias,
    DeploymentChanged,
    DeploymentRevision,
    RegistryRuleError,
    alias_moves,
    champion_at,
    deploy,
    deployment_at,
    event_for,
    previous_champion,
    promote,
    rollback,
    set_traffic,
)
from tests.factories import T0

VERSIONS = {
    n: ServedVersion(version=n, artifact_uri=f"sha256/{n}", artifact_sha256=f"{n:064x}")
    for n in range(1, 6)
}


class Log:
    """A history built step by step, one hour apart."""

    def __init__(self) -> None:
        self.entries: list[DeploymentRevision] = []

    def add(self, deployment: Deployment, action: Action, actor: str = "ana") -> None:
        at = T0 + timedelta(hours=len(self.entries))
        self.entries.append(
            DeploymentRevision("m", deployment, action, actor, f"step {len(self.entries)}", at)
        )

    def deploy(self, champion: int, challenger: int | None = None, share: float = 0.0) -> None:
        self.add(
            deploy(
                self.entries,
                champion=VERSIONS[champion],
                challenger=VERSIONS[challenger] if challenger else None,
                share=share,
            ),
            Action.DEPLOYED,
        )

    def rollback(self) -> None:
        self.add(rollback(self.entries, VERSIONS), Action.ROLLED_BACK, actor="runbook")

    def promote(self) -> None:
        self.add(promote(self.entries), Action.PROMOTED)

    @property
    def current(self) -> Deployment:
        return self.entries[-1].deployment


def test_revisions_rise_by_one_with_every_change() -> None:
    log = Log()
    log.deploy(1)
    log.deploy(1, 2, 0.1)
    log.add(set_traffic(log.entries, share=0.3), Action.TRAFFIC_CHANGED)
    assert [entry.revision for entry in log.entries] == [1, 2, 3]
    assert log.current.challenger_share == 0.3


@pytest.mark.parametrize("share", [-0.1, 0.51, 1.0])
def test_a_challenger_share_outside_zero_to_half_is_refused(share: float) -> None:
    with pytest.raises(RegistryRuleError, match=r"between 0 and 0\.5"):
        deploy([], champion=VERSIONS[1], challenger=VERSIONS[2], share=share)


def test_a_share_or_shadow_mode_without_a_challenger_is_refused() -> None:
    with pytest.raises(RegistryRuleError, match="needs a challenger"):
        deploy([], champion=VERSIONS[1], share=0.1)
    with pytest.raises(RegistryRuleError, match="shadow mode needs a challenger"):
        deploy([], champion=VERSIONS[1], mode=DeploymentMode.SHADOW)


def test_champion_and_challenger_must_differ() -> None:
    with pytest.raises(RegistryRuleError, match="different versions"):
        deploy([], champion=VERSIONS[1], challenger=VERSIONS[1], share=0.1)


def test_traffic_needs_a_deployment() -> None:
    with pytest.raises(RegistryRuleError, match="not deployed"):
        set_traffic([], share=0.1)


def test_rollback_withdraws_a_canary_and_keeps_the_champion() -> None:
    log = Log()
    log.deploy(1)
    log.deploy(1, 2, 0.1)
    log.rollback()
    assert log.current.champion == VERSIONS[1]
    assert log.current.challenger is None
    assert log.current.challenger_share == 0.0


def test_rollback_steps_back_through_champions_and_never_flip_flops() -> None:
    log = Log()
    log.deploy(1)
    log.deploy(2)
    log.deploy(1, 3, 0.2)  # v1 back by hand, v3 on canary
    log.promote()  # champions so far: 1, 2, 1, 3
    assert previous_champion(log.entries) == 1
    log.rollback()
    assert log.current.champion == VERSIONS[1]
    log.rollback()
    assert log.current.champion == VERSIONS[2]
    log.rollback()
    assert log.current.champion == VERSIONS[1]
    with pytest.raises(RegistryRuleError, match="no previous champion"):
        log.rollback()


def test_a_rollback_conditional_on_a_revision_acts_only_while_that_revision_is_in_force() -> None:
    with pytest.raises(DeploymentChanged, match="revision 1 expected, never deployed"):
        rollback([], VERSIONS, expected_revision=1)
    log = Log()
    log.deploy(1)
    log.deploy(2)
    with pytest.raises(DeploymentChanged, match="revision 1 expected, revision 2 is in force"):
        rollback(log.entries, VERSIONS, expected_revision=1)
    assert rollback(log.entries, VERSIONS, expected_revision=2).champion == VERSIONS[1]


def test_promote_needs_a_challenger_and_clears_the_share() -> None:
    log = Log()
    log.deploy(1)
    with pytest.raises(RegistryRuleError, match="no challenger"):
        promote(log.entries)
    log.deploy(1, 2, 0.5)
    log.promote()
    assert log.current == Deployment(revision=3, champion=VERSIONS[2])


def test_champion_at_a_time_answers_from_the_history() -> None:
    log = Log()
    log.deploy(1)  # T0
    log.deploy(2)  # T0 + 1h
    log.rollback()  # T0 + 2h
    assert champion_at(log.entries, T0 - timedelta(seconds=1)) is None
    assert champion_at(log.entries, T0) == 1
    assert champion_at(log.entries, T0 + timedelta(minutes=90)) == 2
    assert champion_at(log.entries, T0 + timedelta(hours=2)) == 1
    entry = deployment_at(log.entries, T0 + timedelta(minutes=150))
    assert entry is not None
    assert (entry.actor, entry.action) == ("runbook", Action.ROLLED_BACK)


def test_alias_moves_say_who_moved_which_alias_and_why() -> None:
    log = Log()
    log.deploy(1)
    log.deploy(1, 2, 0.1)
    log.promote()
    moves = [(m.alias, m.previous_version, m.version, m.action) for m in alias_moves(log.entries)]
    assert moves == [
        (Alias.CHAMPION, None, 1, Action.DEPLOYED),
        (Alias.CHALLENGER, None, 2, Action.DEPLOYED),
        (Alias.CHAMPION, 1, 2, Action.PROMOTED),
        (Alias.CHALLENGER, 2, None, Action.PROMOTED),
    ]
    assert all(move.actor == "ana" for move in alias_moves(log.entries))


def test_each_change_is_announced_with_the_whole_deployment() -> None:
    log = Log()
    log.deploy(1)
    log.deploy(1, 2, 0.1)
    log.promote()
    log.rollback()
    events = [
        event_for(entry, log.entries[n - 1].deployment if n else None, producer="retrainer")
        for n, entry in enumerate(log.entries)
    ]
    assert [type(event) for event in events] == [
        ModelDeployed,
        ModelDeployed,
        ModelPromoted,
        ModelRolledBack,
    ]
    promoted, rolled_back = events[2], events[3]
    assert isinstance(promoted, ModelPromoted)
    assert (promoted.version, promoted.previous_version) == (2, 1)
    assert isinstance(rolled_back, ModelRolledBack)
    assert (rolled_back.from_version, rolled_back.to_version) == (2, 1)
    assert [event.deployment for event in events] == [e.deployment for e in log.entries]  # type: ignore[attr-defined]
