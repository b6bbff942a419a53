"""A sealed payload nested thousands deep is ``sealing-failed``, not a bug.

Only a sealer the recipient trusts (a council's connector) can make one, but
its ``RecursionError`` escaped ``open_fields``: the subscriber retried it as
``unexpected-error`` and logged it as a bug. This test failed on the code
before its fix.
"""

from __future__ import annotations

import pytest

from consent import SealingFailed, generate_sealing_key, open_fields, sealing_context
from consent._sealing import seal
from schemas import SealedPayload

DEEP = 100_000


def test_a_deeply_nested_payload_is_sealing_failed():
    key = generate_sealing_key()
    ids = {"event_id": "e1", "agreement_id": "a1", "recipient": "svc"}
    body = ('{"given_name":' + "[" * DEEP + "]" * DEEP + "}").encode()
    enc, ciphertext = seal(key.public_key(), body,
                           aad=sealing_context(**ids, fields=("given_name",)))  # fmt: skip
    payload = SealedPayload("svc", "a1", enc, ciphertext, ("given_name",))
    with pytest.raises(SealingFailed) as caught:
        open_fields(key, payload, event_id="e1")
    assert caught.value.reason == "sealing-failed"
