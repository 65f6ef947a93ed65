from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from pecflow.domain.reconcile import (
    CLAIM,
    COUNTERS,
    SMTP_ACCEPTED,
    SMTP_LOST,
    State,
    buckets,
    counter_deltas,
    move_for_receipt,
    next_state,
)
from pecflow.pec import kinds

RECEIPTS = [
    kinds.ACCETTAZIONE,
    kinds.AVVENUTA_CONSEGNA,
    kinds.ERRORE_CONSEGNA,
    kinds.PREAVVISO_ERRORE_CONSEGNA,
    kinds.NON_ACCETTAZIONE,
    kinds.PRESA_IN_CARICO,
    kinds.RILEVAZIONE_VIRUS,
]


def run(events, start=State.SENT):
    state = start
    for event in events:
        state = next_state(state, event)
    return state


def test_happy_path():
    state = State.PENDING
    for move in (
        CLAIM,
        SMTP_ACCEPTED,
        move_for_receipt(kinds.ACCETTAZIONE),
        move_for_receipt(kinds.AVVENUTA_CONSEGNA),
    ):
        state = next_state(state, move)
    assert state == State.DELIVERED


def test_order_does_not_matter_for_the_outcome():
    cases = {
        (kinds.ACCETTAZIONE, kinds.AVVENUTA_CONSEGNA): State.DELIVERED,
        (kinds.ACCETTAZIONE, kinds.ERRORE_CONSEGNA): State.DELIVERY_FAILED,
        (kinds.ACCETTAZIONE, kinds.PREAVVISO_ERRORE_CONSEGNA, kinds.AVVENUTA_CONSEGNA): State.DELIVERED,
        (kinds.ACCETTAZIONE, kinds.PREAVVISO_ERRORE_CONSEGNA, kinds.ERRORE_CONSEGNA): State.DELIVERY_FAILED,
        (kinds.ACCETTAZIONE, kinds.PREAVVISO_ERRORE_CONSEGNA): State.WARNING,
        (kinds.ACCETTAZIONE, kinds.PRESA_IN_CARICO): State.ACCEPTED,
    }
    for receipts, expected in cases.items():
        for order in itertools.permutations(receipts):
            moves = [move_for_receipt(k) for k in order]
            assert run(moves) == expected, order
            assert run(moves + moves) == expected, "duplicates change nothing"


def test_lost_smtp_answer_is_resolved_by_receipts():
    state = next_state(State.SENDING, SMTP_LOST)
    assert state == State.UNCERTAIN
    assert next_state(state, move_for_receipt(kinds.ACCETTAZIONE)) == State.ACCEPTED
    assert next_state(state, move_for_receipt(kinds.NON_ACCETTAZIONE)) == State.NOT_ACCEPTED
    assert next_state(state, CLAIM) == State.UNCERTAIN, "never claimed for a second send"


def test_permanent_preavviso_is_final():
    move = move_for_receipt(kinds.PREAVVISO_ERRORE_CONSEGNA, error_detail="5.4.1 - Aruba - non consegnato")
    assert run([move_for_receipt(kinds.ACCETTAZIONE), move]) == State.DELIVERY_FAILED
    soft = move_for_receipt(kinds.PREAVVISO_ERRORE_CONSEGNA, error_detail="4.4.7 - in attesa")
    assert run([soft]) == State.WARNING


def test_a_receipt_for_another_recipient_does_not_touch_this_job():
    assert move_for_receipt(kinds.AVVENUTA_CONSEGNA, for_recipient=False) is None
    assert move_for_receipt(kinds.ACCETTAZIONE, for_recipient=False).to == State.ACCEPTED


def test_terminal_states_never_move():
    every_move = [move_for_receipt(k) for k in RECEIPTS] + [CLAIM, SMTP_ACCEPTED, SMTP_LOST]
    for terminal in (
        State.DELIVERED,
        State.NOT_ACCEPTED,
        State.DELIVERY_FAILED,
        State.ERROR,
        State.CANCELLED,
    ):
        for move in every_move:
            assert next_state(terminal, move) == terminal


RANK = {
    State.PENDING: 0,
    State.SENDING: 1,
    State.UNCERTAIN: 2,
    State.SENT: 2,
    State.ACCEPTED: 3,
    State.WARNING: 4,
    State.DELIVERED: 5,
    State.NOT_ACCEPTED: 5,
    State.DELIVERY_FAILED: 5,
    State.ERROR: 5,
    State.CANCELLED: 5,
}


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from(RECEIPTS), max_size=8),
    st.sampled_from([State.SENT, State.UNCERTAIN, State.SENDING]),
)
def test_never_a_step_back(receipts, start):
    state = start
    for kind in receipts:
        new = next_state(state, move_for_receipt(kind, error_detail="5.1.1 x"))
        assert RANK[new] >= RANK[state]
        state = new


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.lists(st.sampled_from(RECEIPTS), max_size=6)), max_size=30))
def test_counters_follow_the_states(jobs):
    counters = dict.fromkeys(COUNTERS, 0)
    finals = []
    for certified, receipts in jobs:
        state = State.PENDING
        for name, delta in counter_deltas(None, state, certified=certified).items():
            counters[name] += delta
        for move in [CLAIM, SMTP_ACCEPTED] + [move_for_receipt(k) for k in receipts]:
            new = next_state(state, move)
            if new != state:
                for name, delta in counter_deltas(state, new, certified=certified).items():
                    counters[name] += delta
                state = new
        finals.append((state, certified))
    expected = dict.fromkeys(COUNTERS, 0)
    expected["total"] = len(finals)
    for state, certified in finals:
        for name in buckets(state, certified=certified):
            expected[name] += 1
    assert counters == expected
    assert all(value >= 0 for value in counters.values())
