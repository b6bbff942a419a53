"""A grant from a council that does not supply the agreement, end to end through real Kafka.

Agreement ``ab-consented`` needs consent and is supplied by councils A and B
only. Council C's consent system records a resident's grant for it; C's
connector publishes it (the scope is one the directory names). The broker must
refuse it at admission (``grant-not-controller`` on ``<prefix>.rejected``,
nothing personal), so the resident's match under the agreement is denied for
want of consent, while a control resident whose grant A recorded is notified.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from connectors import load_linkage_keys
from connectors._tokens import opaque_reference
from consent import AGREEMENTS_DIR, DevFederation, build_dev_federation, example_agreement_paths
from schemas import CitizenEvent, Codec, RejectedRecord
from tests.broker.test_decisions_e2e import _drop, add_consent_source
from tests.broker.workers import settled, start_worker, stop_worker, until
from tests.connectors.conftest import COUNCILS, read_topic, run_connector
from tests.wire import body_of, decision_reasons

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

A, B, C = COUNCILS
AGREEMENT = "ab-consented"
DAY0 = date.today() - timedelta(days=20)
PEOPLE = {"granted-at-c": ("Odile", "Brackenbury", "03/03/1977"),
          "granted-at-a": ("Piers", "Quennell", "14/11/1985")}  # fmt: skip
KINDS = (("RENT_ARR", A), ("CT_ARR", A), ("PA", B))  # three events from two councils


@pytest.fixture(scope="module")
def federation(tmp_path_factory) -> DevFederation:
    """The usual federation plus an agreement needing consent that C does not supply."""
    folder = tmp_path_factory.mktemp("authority-e2e")
    source = AGREEMENTS_DIR / "gm-multiple-disadvantage.yaml"
    authored = yaml.safe_load(source.read_text(encoding="utf-8"))
    authored.update(id=AGREEMENT, purpose=AGREEMENT, controllers=[A, B], consent_model="required")
    path = folder / f"{AGREEMENT}.yaml"
    path.write_text(yaml.safe_dump(authored, sort_keys=False), encoding="utf-8")
    return build_dev_federation(folder / "fed", councils=list(COUNCILS),
                                agreements=[*example_agreement_paths(), path])  # fmt: skip


def _grant(person: str) -> dict[str, str]:
    given, family, dob = PEOPLE[person]
    return {"ref": f"{person}-consent", "forename": given, "surname": family, "dob": dob,
            "scope": AGREEMENT, "state": "granted",
            "recorded": (DAY0 - timedelta(days=1)).isoformat()}  # fmt: skip


def _event(person: str, kind: str, council: str, day: int) -> dict[str, str]:
    given, family, dob = PEOPLE[person]
    return {"ref": f"{person}@{council}@{kind}", "forename": given, "surname": family,
            "dob": dob, "postcode": "M1 1AE", "address_1": "1 Piccadilly", "uprn": "",
            "nhs_no": "", "ni_number": "", "event": kind,
            "event_date": (DAY0 + timedelta(days=day)).isoformat()}  # fmt: skip


def test_a_grant_from_a_council_that_does_not_supply_the_agreement_is_refused_and_denies(
    council_factory, kafka_bootstrap, federation, topic_factory, tmp_path: Path
):
    prefix = topic_factory("fed")
    a, b, c = (council_factory(council, prefix=prefix) for council in COUNCILS)
    (tmp_path / "a").mkdir()
    (tmp_path / "c").mkdir()
    a_consent, c_consent = (
        add_consent_source(a, tmp_path / "a"),
        add_consent_source(c, tmp_path / "c"),
    )
    group = topic_factory("broker")
    log = tmp_path / "worker.log"
    worker = start_worker(kafka_bootstrap, federation, group=group, prefix=prefix,
                          data_dir=tmp_path / "broker", log=log)  # fmt: skip
    codec = Codec()
    try:
        _drop(c_consent, "grants.csv", [_grant("granted-at-c")])
        _drop(a_consent, "grants.csv", [_grant("granted-at-a")])
        run_connector(c, "--once")
        run_connector(a, "--once")
        settled(kafka_bootstrap, group, prefix, log=log)
        for setup in (a, b):
            rows = [_event(person, kind, council, 4 * day)
                    for person in PEOPLE for day, (kind, council) in enumerate(KINDS)
                    if council == setup.council]  # fmt: skip
            _drop(setup.inbox, "events.csv", rows)
            run_connector(setup, "--once")
        settled(kafka_bootstrap, group, prefix, log=log)
        until(lambda: len(read_topic(kafka_bootstrap, f"{prefix}.rejected")) >= 1,
              "the over-reaching grant on the rejected topic", timeout=60)  # fmt: skip
    finally:
        stop_worker(worker)

    rejected = [codec.decode_as(v, RejectedRecord)
                for _, v in read_topic(kafka_bootstrap, f"{prefix}.rejected")]  # fmt: skip
    assert [(r.reason, r.topic) for r in rejected] == [("grant-not-controller", c.consent_topic)]
    raw = b"".join(v for _, v in read_topic(kafka_bootstrap, f"{prefix}.rejected"))
    assert not any(part.encode() in raw for person in PEOPLE.values() for part in person)

    key = load_linkage_keys(a.linkage_keys)[-1]
    person_of_ref = {opaque_reference(key, council, "synthetic", f"{p}@{council}@{kind}"): p
                     for p in PEOPLE for kind, council in KINDS}  # fmt: skip
    person_of_event = {}
    for setup in (a, b):
        for _, value in read_topic(kafka_bootstrap, setup.events_topic):
            event = body_of(codec, value, CitizenEvent)
            person_of_event[event.event_id] = person_of_ref[event.source_ref]
    reasons = decision_reasons(kafka_bootstrap, prefix, AGREEMENT, person_of_event)
    assert reasons == {"granted-at-c": {"consent-not-granted"},
                             "granted-at-a": {"allowed"}}, log.read_text()[-3000:]  # fmt: skip
