"""The closed vocabulary of each event attribute: the only values that travel in clear.

Attributes ride unsealed (the broker, its state and every notification carry
them), so "non-identifying" must be a property of the value, not a hope about
the column: a clerk's free text in a band column (a name, a note about a
resident) would otherwise be published as it was typed. Each attribute takes
one of a short list of codes. A connector drops any other value (counted, the
row kept: ``value-not-allowed``) and the broker refuses an event carrying one
(``attribute-value-not-allowed``).

Codes are matched ignoring case and surrounding blanks and travel in the
vocabulary's own spelling (``c`` -> ``C``). A code a council needs that is not
here is a catalogue change, reviewed like any other change to what is shared.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["ATTRIBUTE_VALUES", "canonical_attribute"]

_REASONS_ENDED = (
    "moved-out", "moved-within", "transfer", "deceased", "eviction", "abandoned",
    "ended-by-tenant", "ended-by-landlord", "ineligible", "exempt", "duplicate", "other",
)  # fmt: skip

ATTRIBUTE_VALUES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        name: frozenset(values)
        for name, values in {
            "move_direction": ("in", "out", "within"),
            "tenure": (
                "council", "housing-association", "private-rented", "owner-occupied",
                "shared-ownership", "temporary", "supported", "other",
            ),
            "band": ("A", "B", "C", "D", "E", "F", "G", "H", "I"),
            "liability_role": ("sole", "joint", "owner", "occupier", "other"),
            "closure_reason": _REASONS_ENDED,
            "end_reason": _REASONS_ENDED,
            "arrears_band": ("under-100", "100-499", "500-999", "1000-2499", "2500-plus"),
            "recovery_stage": (
                "reminder", "final-notice", "summons", "liability-order",
                "enforcement-agent", "attachment", "arrangement", "other",
            ),
            "landlord_type": ("council", "housing-association", "private", "other"),
            "duty_type": ("prevention", "relief", "main", "interim", "none"),
            "household_type": (
                "single", "couple", "single-parent", "couple-with-children",
                "multi-adult", "other",
            ),
            "phase": (
                "nursery", "primary", "middle", "secondary", "all-through", "special",
                "alternative-provision", "post-16",
            ),
            "year_group": ("N1", "N2", "R", *(str(year) for year in range(1, 14))),
            "absence_band": ("10-20", "20-50", "50-plus"),
            "assessment_outcome": (
                "eligible", "not-eligible", "information-and-advice", "review", "other",
            ),
            "scheme": ("CTR", "HB", "DHP", "UC", "other"),
            "claim_status": ("submitted", "awarded", "changed", "refused", "suspended", "ended"),
        }.items()
    }
)  # fmt: skip

_CANONICAL: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        name: MappingProxyType({value.casefold(): value for value in values})
        for name, values in ATTRIBUTE_VALUES.items()
    }
)


def canonical_attribute(name: str, value: str) -> str | None:
    """``value`` in the vocabulary's spelling, or None if ``name`` does not take it."""
    return _CANONICAL.get(name, {}).get(value.strip().casefold())
