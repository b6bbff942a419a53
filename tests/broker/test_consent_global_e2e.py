"""Consent reaches every partition that decides: end to end through real Kafka.

A council's consent system knows a resident by name and date of birth only (no
NHS number); its events, at three councils, are spelt three ways and share only
the NHS number, so every pair is decided in the partition of the NHS token,
which no consent record is ever routed by. The resident's objection must still
deny the disclosure (DESIGN section 10); a control resident is notified.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest

from connectors import load_linkage_keys
from connectors._tokens import opaque_reference
from schemas import CitizenEvent, Codec
from tests.broker.test_decisions_e2e import _drop, add_consent_source
from tests.broker.workers import settled, start_worker, stop_worker
from tests.connectors.conftest import COUNCILS, read_topic, run_connector
from tests.wire import body_of, decision_reasons, read_notifications

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

A, B, C = COUNCILS
AGREEMENT = "gm-multiple-disadvantage"  # consent model: objection
DAY0 = date.today() - timedelta(days=30)
DOB = {"objector": "11/07/1988", "control": "21/06/1990"}
NHS = {"objector": "9434765919", "control": "9434765803"}
SPELLINGS = {  # one spelling per council: no name+dob token is shared
    "objector": [("Ezra", "Pennyworth"), ("Ezra", "Penyworth"), ("Ezra", "Pennywerth")],
    "control": [("Jude", "Fairweather"), ("Jude", "Fairweathr"), ("Jude", "Fayrweather")],
}
KINDS = ("RENT_ARR", "CT_ARR", "PA")


def _event_row(person: str, index: int, council: str) -> dict[str, str]:
    given, family = SPELLINGS[person][index]
    return {"ref": f"{person}@{council}", "forename": given, "surname": family,
            "dob": DOB[person], "postcode": "M1 1AE", "address_1": "1 Piccadilly", "uprn": "",
            "nhs_no": NHS[person], "ni_number": "", "event": KINDS[index],
            "event_date": (DAY0 + timedelta(days=4 * index)).isoformat()}  # fmt: skip


def test_an_objection_recorded_without_the_nhs_number_denies_a_match_decided_by_it(
    council_factory, kafka_bootstrap, federation, topic_factory, tmp_path: Path
):
    prefix = topic_factory("fed")
    a = council_factory(A, prefix=prefix)
    consent_inbox = add_consent_source(a, tmp_path)
    b, c = council_factory(B, prefix=prefix), council_factory(C, prefix=prefix)
    group = topic_factory("broker")
    worker = start_worker(kafka_bootstrap, federation, group=group, prefix=prefix,
                          data_dir=tmp_path / "broker", log=tmp_path / "worker.log")  # fmt: skip
    try:
        given, family = SPELLINGS["objector"][0]
        _drop(consent_inbox, "choices.csv", [{
            "ref": "objector-consent", "forename": given, "surname": family,
            "dob": DOB["objector"], "scope": AGREEMENT, "state": "objected",
            "recorded": (DAY0 - timedelta(days=1)).isoformat()}])  # fmt: skip
        run_connector(a, "--once")
        settled(kafka_bootstrap, group, prefix)
        for index, setup in enumerate((a, b, c)):
            _drop(
                setup.inbox,
                "events.csv",
                [_event_row(p, index, setup.council) for p in ("objector", "control")],
            )
            run_connector(setup, "--once")
            settled(kafka_bootstrap, group, prefix)
        # No wait for a last flush: Faust flushes the producer before each commit,
        # so once every input is committed its outputs are on their topics.
    finally:
        stop_worker(worker)
    log = (tmp_path / "worker.log").read_text()[-3000:]

    codec = Codec()
    key = load_linkage_keys(a.linkage_keys)[-1]
    person_of_ref = {opaque_reference(key, council, "synthetic", f"{p}@{council}"): p
                     for p in SPELLINGS for council in COUNCILS}  # fmt: skip
    person_of_event = {}
    shared: dict[str, list[set[str]]] = defaultdict(list)
    for setup in (a, b, c):
        for _, value in read_topic(kafka_bootstrap, setup.events_topic):
            event = body_of(codec, value, CitizenEvent)
            person_of_event[event.event_id] = person = person_of_ref[event.source_ref]
            shared[person].append({t.key() for t in event.tokens})
    for person, token_sets in shared.items():  # the setting: only the NHS token is shared
        common = set.intersection(*token_sets)
        assert len(token_sets) == 3 and {t.split(":")[0] for t in common} == {"nhs"}, person
    reasons = decision_reasons(kafka_bootstrap, prefix, AGREEMENT, person_of_event)
    assert reasons == {"objector": {"objected"}, "control": {"allowed"}}, log
    notified = [n for n in read_notifications(kafka_bootstrap, prefix, federation.load())
                if n.agreement_id == AGREEMENT]  # fmt: skip
    assert notified and {person_of_event[e.event_id] for n in notified for e in n.events} == {
        "control"
    }
