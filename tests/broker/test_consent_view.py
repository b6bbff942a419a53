"""An event item reads each token's consent once; the next item reads afresh."""

from __future__ import annotations

from broker._consent_view import ItemConsent
from consent import TokenConsent


class Counting:
    """A consent copy that records every read (each one a RocksDB read in the app)."""

    def __init__(self, held: dict[str, TokenConsent]) -> None:
        self.held = held
        self.reads: list[str] = []

    def get(self, token: str) -> TokenConsent | None:
        self.reads.append(token)
        return self.held.get(token)


def test_an_item_reads_each_token_once_and_the_next_item_reads_afresh():
    held = {"nhs:1:aa": TokenConsent()}
    table = Counting(held)
    item = ItemConsent(table)
    for _ in range(3):  # three (event, token) steps of one item
        assert item.get("nhs:1:aa") is held["nhs:1:aa"]
        assert item.get("nhs:1:bb") is None
    assert table.reads == ["nhs:1:aa", "nhs:1:bb"]
    held["nhs:1:bb"] = TokenConsent()  # a consent item handled between two event items
    assert ItemConsent(table).get("nhs:1:bb") is held["nhs:1:bb"]
