"""The closed catalogue of citizen event types that councils share.

One source of truth: connectors map source rows to these types, agreements name
them and the fields they may disclose, and the broker's rules match on them.
``attributes`` are non-identifying values a rule may read in clear (they travel
unsealed); ``payload_fields`` are what a sealed payload for a recipient may hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

__all__ = ["EVENT_CATALOGUE", "EventType", "EventTypeSpec"]


class EventType(StrEnum):
    ADDRESS_CHANGE = "address-change"
    COUNCIL_TAX_ACCOUNT_OPENED = "council-tax-account-opened"
    COUNCIL_TAX_ACCOUNT_CLOSED = "council-tax-account-closed"
    SINGLE_PERSON_DISCOUNT_AWARDED = "single-person-discount-awarded"
    SINGLE_PERSON_DISCOUNT_ENDED = "single-person-discount-ended"
    COUNCIL_TAX_ARREARS = "council-tax-arrears"
    TENANCY_STARTED = "tenancy-started"
    TENANCY_ENDED = "tenancy-ended"
    RENT_ARREARS = "rent-arrears"
    HOMELESSNESS_PRESENTATION = "homelessness-presentation"
    SCHOOL_ENROLMENT = "school-enrolment"
    PERSISTENT_ABSENCE = "persistent-absence"
    ADULT_SOCIAL_CARE_ASSESSMENT = "adult-social-care-assessment"
    BENEFIT_CLAIM = "benefit-claim"
    DEATH_REGISTERED = "death-registered"


@dataclass(frozen=True, slots=True)
class EventTypeSpec:
    """What one event type may carry, and whether it is special-category data."""

    event_type: EventType
    description: str
    attributes: frozenset[str]
    payload_fields: frozenset[str]
    special_category: bool = False


def _spec(
    event_type: EventType,
    description: str,
    *,
    attributes: tuple[str, ...] = (),
    payload: tuple[str, ...] = (),
    special_category: bool = False,
) -> EventTypeSpec:
    return EventTypeSpec(
        event_type, description, frozenset(attributes), frozenset(payload), special_category
    )


_PERSON = ("given_name", "family_name", "date_of_birth")
_ADDRESS = ("address_line_1", "address_line_2", "town", "postcode", "uprn")

_SPECS = (
    _spec(
        EventType.ADDRESS_CHANGE,
        "A resident's address changed (move in, move out or correction), with UPRN.",
        attributes=("move_direction", "tenure"),
        payload=(*_PERSON, *_ADDRESS, "previous_postcode", "move_date"),
    ),
    _spec(
        EventType.COUNCIL_TAX_ACCOUNT_OPENED,
        "A council-tax account was opened for a liable person at a property.",
        attributes=("band", "liability_role"),
        payload=(*_PERSON, *_ADDRESS, "account_reference", "start_date"),
    ),
    _spec(
        EventType.COUNCIL_TAX_ACCOUNT_CLOSED,
        "A council-tax account was closed (moved away, died, property removed).",
        attributes=("band", "closure_reason"),
        payload=(*_PERSON, *_ADDRESS, "account_reference", "end_date"),
    ),
    _spec(
        EventType.SINGLE_PERSON_DISCOUNT_AWARDED,
        "A 25% single-person discount was awarded on a council-tax account.",
        attributes=("band",),
        payload=(*_PERSON, *_ADDRESS, "account_reference", "award_date"),
    ),
    _spec(
        EventType.SINGLE_PERSON_DISCOUNT_ENDED,
        "A single-person discount ended.",
        attributes=("band", "end_reason"),
        payload=(*_PERSON, "account_reference", "end_date"),
    ),
    _spec(
        EventType.COUNCIL_TAX_ARREARS,
        "A council-tax account fell into arrears beyond the reminder stage.",
        attributes=("arrears_band", "recovery_stage"),
        payload=(*_PERSON, *_ADDRESS, "account_reference", "arrears_amount"),
    ),
    _spec(
        EventType.TENANCY_STARTED,
        "A social-housing tenancy started.",
        attributes=("landlord_type", "tenure"),
        payload=(*_PERSON, *_ADDRESS, "tenancy_reference", "start_date"),
    ),
    _spec(
        EventType.TENANCY_ENDED,
        "A social-housing tenancy ended.",
        attributes=("landlord_type", "end_reason"),
        payload=(*_PERSON, *_ADDRESS, "tenancy_reference", "end_date"),
    ),
    _spec(
        EventType.RENT_ARREARS,
        "A tenancy's rent arrears passed the landlord's threshold.",
        attributes=("arrears_band", "landlord_type"),
        payload=(*_PERSON, *_ADDRESS, "tenancy_reference", "arrears_amount"),
    ),
    _spec(
        EventType.HOMELESSNESS_PRESENTATION,
        "A household presented as homeless or threatened with homelessness.",
        attributes=("duty_type", "household_type"),
        payload=(*_PERSON, *_ADDRESS, "case_reference", "presentation_date"),
    ),
    _spec(
        EventType.SCHOOL_ENROLMENT,
        "A child was enrolled at a school (the subject is the child).",
        attributes=("phase", "year_group"),
        payload=(*_PERSON, *_ADDRESS, "school_urn", "enrolment_date"),
    ),
    _spec(
        EventType.PERSISTENT_ABSENCE,
        "A pupil's attendance fell below the persistent-absence threshold (90%).",
        attributes=("phase", "absence_band"),
        payload=(*_PERSON, "school_urn", "attendance_rate"),
    ),
    _spec(
        EventType.ADULT_SOCIAL_CARE_ASSESSMENT,
        "An adult social-care needs assessment took place (health data: article 9).",
        attributes=("assessment_outcome",),
        payload=(*_PERSON, *_ADDRESS, "case_reference", "assessment_date"),
        special_category=True,
    ),
    _spec(
        EventType.BENEFIT_CLAIM,
        "A housing-benefit or council-tax-reduction claim was made or changed.",
        attributes=("scheme", "claim_status"),
        payload=(*_PERSON, *_ADDRESS, "claim_reference", "claim_date"),
    ),
    _spec(
        EventType.DEATH_REGISTERED,
        "A death was registered (the subject is the deceased).",
        attributes=(),
        payload=(*_PERSON, *_ADDRESS, "date_of_death"),
    ),
)

EVENT_CATALOGUE: Mapping[EventType, EventTypeSpec] = MappingProxyType(
    {spec.event_type: spec for spec in _SPECS}
)
