"""Opening notifications, as an attacker would try them: no Kafka, the pure checks only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consent import (
    SealingFailed,
    SignatureInvalid,
    generate_signing_key,
    load_directory,
    sign_directory,
)
from schemas import Codec, SchemaError
from subscriber import (
    AgreementMismatch,
    FieldNotGranted,
    FieldsMismatch,
    NotAddressed,
    UnknownAgreement,
    open_notification,
    read_notification,
)
from tests.subscriber.factory import (
    CLOSED,
    MOVED,
    OTHER_SERVICE,
    SECRET_NAME,
    SERVICE,
    TO,
    Sealed,
    notification_bytes,
)


def _open(federation, value, service=SERVICE, directory=None):
    directory = directory or federation.load()
    notification = read_notification(value, directory=directory, codec=Codec())
    return open_notification(
        notification, service=service, key=federation.sealing_key(service), directory=directory
    )


def test_a_good_notification_opens_to_the_granted_fields(federation):
    nid, value = notification_bytes(federation, 1)
    opened = _open(federation, value)
    assert opened.notification_id == nid
    assert opened.fields == {"evt-1-a": CLOSED, "evt-1-b": MOVED}
    assert opened.to_json()["fields"]["evt-1-b"]["postcode"] == "M32 0AA"


def test_a_notification_signed_by_anyone_but_the_directorys_broker_is_refused(federation):
    _, forged = notification_bytes(federation, 1, signer=generate_signing_key())
    with pytest.raises(SignatureInvalid):
        _open(federation, forged)
    _, council_signed = notification_bytes(federation, 1, signer=federation.signing_key(TO))
    with pytest.raises(SignatureInvalid):
        _open(federation, council_signed)
    _, tampered = notification_bytes(federation, 1, tamper=True)
    with pytest.raises(SignatureInvalid):
        _open(federation, tampered)


def test_the_broker_is_found_by_kind_in_the_directory_not_by_a_fixed_member_id(
    federation, tmp_path
):
    """A directory whose broker is called ``gm-broker`` works; its key is the broker's."""
    text = federation.document_path.read_text().replace("id: broker\n", "id: gm-broker\n")
    assert "id: gm-broker" in text
    signed = tmp_path / "directory.signed"
    signed.write_bytes(sign_directory(text, federation.signing_key(federation.authority)))
    directory = load_directory(signed, trust_anchor=federation.trust_anchor, now=datetime.now(UTC))
    assert directory.broker.member_id == "gm-broker"
    _, value = notification_bytes(federation, 1, signer_id="gm-broker")
    assert _open(federation, value, directory=directory).fields
    _, as_old_id = notification_bytes(federation, 1)  # the envelope names "broker"
    with pytest.raises(SignatureInvalid):
        _open(federation, as_old_id, directory=directory)


def test_garbage_is_a_schema_error_with_a_reason(federation):
    with pytest.raises(SchemaError) as caught:
        _open(federation, b"\xc3\x01not a notification")
    assert caught.value.reason


def test_a_payload_labelled_for_this_service_but_sealed_to_another_does_not_open(federation):
    _, value = notification_bytes(federation, 1, sealed=[Sealed(0, CLOSED, key_of=OTHER_SERVICE)])
    with pytest.raises(SealingFailed):
        _open(federation, value)


def test_payloads_for_other_services_are_left_sealed(federation):
    _, value = notification_bytes(
        federation, 1, sealed=[Sealed(0, CLOSED), Sealed(1, MOVED, recipient=OTHER_SERVICE)],
    )  # fmt: skip
    assert _open(federation, value).fields == {"evt-1-a": CLOSED}
    # One notification per service (0.2.0): the other service is not addressed by this one.
    with pytest.raises(NotAddressed):
        _open(federation, value, service=OTHER_SERVICE)


def test_a_field_the_agreement_does_not_grant_is_refused(federation):
    # council-tax-account-closed grants given_name, family_name, end_date: not nhs_number.
    _, value = notification_bytes(
        federation, 1, sealed=[Sealed(0, {**CLOSED, "nhs_number": "9434765919"})]
    )
    with pytest.raises(FieldNotGranted) as caught:
        _open(federation, value)
    assert "9434765919" not in str(caught.value)


def test_a_payload_that_holds_other_fields_than_it_declares_is_refused(federation):
    _, value = notification_bytes(
        federation, 1, sealed=[Sealed(1, {"postcode": "M32 0AA"}, declared=["uprn"])]
    )
    with pytest.raises(FieldsMismatch) as caught:
        _open(federation, value)
    assert "M32" not in str(caught.value)


def test_a_payload_relabelled_to_another_agreement_is_refused(federation):
    _, value = notification_bytes(
        federation, 1, sealed=[Sealed(0, CLOSED, agreement="gm-multiple-disadvantage")]
    )
    with pytest.raises(AgreementMismatch):
        _open(federation, value)


def test_a_notification_not_addressed_to_this_service_is_refused(federation):
    _, value = notification_bytes(federation, 1, recipient=OTHER_SERVICE, sealed=[])
    with pytest.raises(NotAddressed):
        _open(federation, value)


def test_an_agreement_missing_from_the_directory_is_refused(federation):
    _, value = notification_bytes(federation, 1, agreement="gm-made-up", sealed=[])
    with pytest.raises(UnknownAgreement):
        _open(federation, value)


def test_an_opened_notifications_repr_shows_no_opened_value(federation):
    """Attack round 5: ``repr`` of an opened notification printed every opened field,
    so a service's ``log.info("got %r", notification)``, an f-string in its exception
    or a debugger's dump of locals put personal data in its logs. Fields are reached
    through ``.fields`` and ``to_json()`` only."""
    _, value = notification_bytes(federation, 1)
    opened = _open(federation, value)
    for shown in (repr(opened), str(opened)):
        assert SECRET_NAME not in shown and "M32 0AA" not in shown
        assert opened.notification_id in shown
    assert opened.fields["evt-1-a"]["family_name"] == SECRET_NAME
