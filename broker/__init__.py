"""The Faust matching broker: verify, route by token, match, decide, notify, audit.

It sees tokens, types, times and references only, never clear identifiers or
sealed fields, and must not import ``connectors`` (DESIGN section 9).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from broker._errors import (
    BrokerError,
    DirectoryNotUsable,
    EncodingMismatch,
    KafkaUnavailable,
    StateInvalid,
    ThresholdInvalid,
)
from broker._matching import (
    EXACT,
    FUZZY,
    BatchResult,
    Match,
    Matcher,
    MatchMethod,
    Observation,
    dedupe_matches,
    match_batch,
    pair_id,
    run_batch,
)
from broker._notifications import build_notification, notification_id, seal_notification
from broker._rules import (
    RuleHit,
    disclosures_for,
    evaluate,
    evaluate_rule,
    recipients_for,
    subjects_of,
)
from broker._sightings import Sighting, TokenState
from broker._similarity import (
    DEFAULT_DICE_THRESHOLD,
    DiceAtThreshold,
    check_threshold,
    dice,
    dice_many,
    popcount,
)
from broker._threshold import (
    DEFAULT_GAP_QUANTILE,
    DEFAULT_HISTOGRAM_BINS,
    DEFAULT_MAX_ITERATIONS,
    DEFAULT_MIN_SCORES,
    DEFAULT_NULL_PRIOR,
    NullPrior,
    ScoreHistogram,
    ThresholdFit,
    ThresholdSource,
    choose_threshold,
    fit_threshold,
)
from broker._verify import Rejected, verify_record

if TYPE_CHECKING:
    from broker.app import DEFAULT_METRICS_BIND, DEFAULT_PARTITIONS, BrokerSettings, build_app

# The Faust application is loaded on first use, so the pure matcher (and
# ``fedbroker link``, which has no Kafka) does not pay for importing Faust,
# aiokafka and their event loop machinery.
_LAZY = {
    "DEFAULT_METRICS_BIND": "broker.app",
    "DEFAULT_PARTITIONS": "broker.app",
    "BrokerSettings": "broker.app",
    "build_app": "broker.app",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_DICE_THRESHOLD",
    "DEFAULT_GAP_QUANTILE",
    "DEFAULT_HISTOGRAM_BINS",
    "DEFAULT_MAX_ITERATIONS",
    "DEFAULT_METRICS_BIND",
    "DEFAULT_MIN_SCORES",
    "DEFAULT_NULL_PRIOR",
    "DEFAULT_PARTITIONS",
    "EXACT",
    "FUZZY",
    "BatchResult",
    "BrokerError",
    "BrokerSettings",
    "DiceAtThreshold",
    "DirectoryNotUsable",
    "EncodingMismatch",
    "KafkaUnavailable",
    "Match",
    "MatchMethod",
    "Matcher",
    "NullPrior",
    "Observation",
    "Rejected",
    "RuleHit",
    "ScoreHistogram",
    "Sighting",
    "StateInvalid",
    "ThresholdFit",
    "ThresholdInvalid",
    "ThresholdSource",
    "TokenState",
    "build_app",
    "build_notification",
    "check_threshold",
    "choose_threshold",
    "dedupe_matches",
    "dice",
    "dice_many",
    "disclosures_for",
    "evaluate",
    "evaluate_rule",
    "fit_threshold",
    "match_batch",
    "notification_id",
    "pair_id",
    "popcount",
    "recipients_for",
    "run_batch",
    "seal_notification",
    "subjects_of",
    "verify_record",
]
