"""Presa in carico as decisions: who may take, release, assign, handle and reopen a message, and
what the one who loses a race is told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pecflow.domain.access import Role
from pecflow.domain.handling import (
    Act,
    Handling,
    HandlingConflict,
    NotAllowed,
    Status,
    decide,
    require_in_own_charge,
)

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
OPEN = Handling()


def act(current, what, actor="anna", role=Role.OPERATOR, **kw):
    return decide(current, what, actor=actor, role=role, now=NOW, **kw)


def test_taking_in_charge_makes_the_person_the_holder_since_now():
    taken = act(OPEN, Act.TAKE)
    assert (taken.status, taken.holder, taken.since, taken.by, taken.version) == (
        Status.IN_CHARGE,
        "anna",
        NOW,
        "anna",
        1,
    )
    assert act(taken, Act.TAKE) is taken  # taking again what you hold changes nothing


def test_the_second_person_is_told_who_holds_it_and_since_when():
    taken = act(OPEN, Act.TAKE)
    with pytest.raises(HandlingConflict) as lost:
        act(taken, Act.TAKE, actor="bruno")
    assert lost.value.code == "held-by-other"
    assert str(lost.value) == "already in the charge of anna since 26/11/2026 09:30"
    assert lost.value.current == taken


def test_release_by_the_holder_or_a_manager_only():
    taken = act(OPEN, Act.TAKE)
    with pytest.raises(HandlingConflict):
        act(taken, Act.RELEASE, actor="bruno")
    released = act(taken, Act.RELEASE)
    assert (released.status, released.holder, released.since) == (Status.OPEN, None, None)
    assert act(taken, Act.RELEASE, actor="carla", role=Role.MANAGER).status is Status.OPEN
    assert act(released, Act.RELEASE) is released


def test_only_managers_assign_and_an_assignment_may_move_a_hold():
    with pytest.raises(NotAllowed):
        act(OPEN, Act.ASSIGN, to="bruno")
    assigned = act(OPEN, Act.ASSIGN, actor="carla", role=Role.MANAGER, to="bruno")
    assert (assigned.holder, assigned.by) == ("bruno", "carla")
    moved = act(act(OPEN, Act.TAKE), Act.ASSIGN, actor="carla", role=Role.ADMIN, to="bruno")
    assert moved.holder == "bruno"
    with pytest.raises(ValueError, match="to whom"):
        act(OPEN, Act.ASSIGN, actor="carla", role=Role.MANAGER)


def test_handled_with_a_note_and_reopened():
    taken = act(OPEN, Act.TAKE)
    done = act(taken, Act.MARK_HANDLED, note="  risposto al cliente  ")
    assert (done.status, done.holder, done.note, done.version) == (
        Status.HANDLED,
        "anna",
        "risposto al cliente",
        2,
    )
    with pytest.raises(HandlingConflict) as again:
        act(done, Act.MARK_HANDLED, actor="bruno")
    assert again.value.code == "already-handled"
    with pytest.raises(HandlingConflict, match="reopen it first"):
        act(done, Act.TAKE, actor="bruno")
    reopened = act(done, Act.REOPEN, actor="bruno")
    assert (reopened.status, reopened.holder, reopened.version) == (Status.OPEN, None, 3)


def test_an_open_message_marked_handled_is_taken_and_handled_at_once():
    done = act(OPEN, Act.MARK_HANDLED)
    assert (done.status, done.holder) == (Status.HANDLED, "anna")


def test_someone_elses_message_cannot_be_marked_handled_by_an_operator():
    with pytest.raises(HandlingConflict):
        act(act(OPEN, Act.TAKE), Act.MARK_HANDLED, actor="bruno")
    assert act(act(OPEN, Act.TAKE), Act.MARK_HANDLED, actor="carla", role=Role.MANAGER).holder == "anna"


def test_a_note_is_bounded():
    assert len(act(OPEN, Act.MARK_HANDLED, note="x" * 10_000).note or "") == 2000


def test_reply_needs_the_message_in_your_own_charge():
    with pytest.raises(HandlingConflict, match="take the message in charge before you reply"):
        require_in_own_charge(OPEN, "anna", "reply to")
    taken = act(OPEN, Act.TAKE)
    require_in_own_charge(taken, "anna", "reply to")
    with pytest.raises(HandlingConflict) as other:
        require_in_own_charge(taken, "bruno", "forward")
    assert other.value.code == "held-by-other"


PEOPLE = ["anna", "bruno", "carla"]
ROLES = {"anna": Role.OPERATOR, "bruno": Role.OPERATOR, "carla": Role.MANAGER}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(list(Act)), st.sampled_from(PEOPLE), st.sampled_from(PEOPLE)), max_size=25
    )
)
def test_any_sequence_keeps_one_holder_and_counts_each_change(steps):
    """Whatever people do, a message in charge has exactly one holder, an open one none, and the
    version grows by one exactly when the handling changes (the condition of the next write)."""
    current = OPEN
    for i, (what, actor, to) in enumerate(steps):
        try:
            after = decide(
                current, what, actor=actor, role=ROLES[actor], now=NOW + timedelta(minutes=i), to=to
            )
        except (HandlingConflict, NotAllowed):
            continue
        assert after.version in (current.version, current.version + 1)
        assert (after.version == current.version) == (after == current)
        if after.status is Status.OPEN:
            assert after.holder is None and after.since is None
        else:
            assert after.holder in PEOPLE and after.since is not None
        current = after
