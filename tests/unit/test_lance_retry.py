"""Commit conflicts LanceDB reports are retried; an incompatible transaction only where the table is reopened."""

from __future__ import annotations

import pytest

from emergent.stores.lance import retry_commit

INCOMPATIBLE = ("lance error: Incompatible transaction: This Update transaction is incompatible with concurrent "
                "transaction Overwrite at version 2.")


def test_an_update_racing_another_process_overwrite_is_retried_after_reopening():
    calls, reopened = [], []

    def merge() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError(INCOMPATIBLE)
        return "merged"

    assert retry_commit(merge, base_s=0.001, before_retry=lambda: reopened.append(1), incompatible=True) == "merged"
    assert len(calls) == 2 and reopened == [1]


def test_an_incompatible_transaction_is_not_retried_by_default():
    def merge() -> None:
        raise RuntimeError(INCOMPATIBLE)

    with pytest.raises(RuntimeError, match="Incompatible transaction"):
        retry_commit(merge, base_s=0.001)
