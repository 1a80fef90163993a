"""The uid each account's sandboxed pods run as (issue 9 item 2), the same on every backend: allocated once per
account, distinct between accounts, kept across restarts, and never handed out twice when servers race."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tione_server.store import Store
from tione_server.store.schema import FIRST_ACCOUNT_UID


def test_account_uid_is_allocated_once_and_kept(database_url: str) -> None:
    store = Store(database_url)
    try:
        first = store.account_uid("100000000001")
        second = store.account_uid("100000000002")
        assert first == FIRST_ACCOUNT_UID
        assert second == FIRST_ACCOUNT_UID + 1
        assert store.account_uid("100000000001") == first
    finally:
        store.close()
    reopened = Store(database_url)  # a restarted server (or another one on the database) finds the same uids
    try:
        assert reopened.account_uid("100000000002") == second
        assert reopened.account_uid("100000000003") == FIRST_ACCOUNT_UID + 2
    finally:
        reopened.close()


def test_account_uid_racing_servers_never_share_a_uid(database_url: str) -> None:
    stores = [Store(database_url) for _ in range(4)]  # separate caches and pools, as separate servers have
    uins = [f"2000000000{i:02d}" for i in range(24)]
    try:
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda i: (uins[i % 24], stores[i % 4].account_uid(uins[i % 24])), range(96)))
    finally:
        for s in stores:
            s.close()
    by_uin: dict[str, set[int]] = {}
    for uin, uid in got:
        by_uin.setdefault(uin, set()).add(uid)
    assert all(len(uids) == 1 for uids in by_uin.values())  # one uid per account, whoever asked
    allocated = sorted(next(iter(uids)) for uids in by_uin.values())
    assert allocated == list(range(FIRST_ACCOUNT_UID, FIRST_ACCOUNT_UID + 24))  # distinct, none skipped
