"""``table_of``: the one typed way to reach a model's SQLAlchemy table."""

from __future__ import annotations

import pytest
from sqlalchemy import Table
from sqlmodel import SQLModel

from transfer_wallet.models import Account, Transfer, metadata, table_of


def test_a_table_model_gives_its_own_table_from_the_shared_metadata() -> None:
    accounts = table_of(Account)

    assert isinstance(accounts, Table)
    assert accounts is metadata.tables["accounts"]
    assert "balance_minor" in accounts.c
    assert table_of(Transfer) is not accounts


def test_a_model_without_a_table_is_a_programmer_error() -> None:
    class PlainShape(SQLModel):
        name: str

    with pytest.raises(TypeError, match="PlainShape is not a table model"):
        table_of(PlainShape)
