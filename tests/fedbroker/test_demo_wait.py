"""The demo waits for its broker's group on a Kafka that has only just started."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.errors import CoordinatorLoadInProgressError, TopicAuthorizationFailedError

from fedbroker._demo._run import group_stable


class _Admin:
    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)

    def list_groups(self) -> list[dict[str, str]]:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return list(answer)


def test_a_coordinator_still_loading_means_not_yet_not_a_dead_demo():
    admin = _Admin(CoordinatorLoadInProgressError(), [{"group_id": "b", "group_state": "Stable"}])
    assert group_stable(admin, "b") is False  # type: ignore[arg-type]
    assert group_stable(admin, "b") is True  # type: ignore[arg-type]


def test_a_group_still_rebalancing_is_not_stable_and_other_groups_do_not_count():
    groups = [{"group_id": "b", "group_state": "PreparingRebalance"},
              {"group_id": "c", "group_state": "Stable"}]  # fmt: skip
    assert group_stable(_Admin(groups), "b") is False  # type: ignore[arg-type]


def test_a_refusal_that_will_not_pass_is_raised():
    with pytest.raises(TopicAuthorizationFailedError):
        group_stable(_Admin(TopicAuthorizationFailedError()), "b")  # type: ignore[arg-type]
