"""The per-parent connection loader on its own: pages of many parents' children, forwards and
backwards, between two cursors, and their counts, each batch in one statement."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import Select, event
from sqlalchemy.ext.asyncio import AsyncSession

from server import models as m
from server.graphql.connections import ConnectionsByParentLoader
from server.graphql.context import Database
from server.graphql.pagination import Connection, Page, PaginationError, SortKey, encode_cursor
from tests.support.accounts import make_customer


class AddressPagesByCustomerIdLoader(ConnectionsByParentLoader):
    """Addresses by postal code, ascending (the id breaks ties); default ones left out."""

    model = m.Address
    parent = "customer_id"
    sort = (SortKey(m.Address.postal_code, "postal_code"),)

    def statement(self) -> Select[Any]:
        return super().statement().where(m.Address.is_default.is_(False))


async def _customers(session: AsyncSession, postal_codes: list[list[str]]) -> list[int]:
    ids = []
    for codes in postal_codes:
        customer = await make_customer(session)
        session.add_all(
            m.Address(
                customer_id=customer.id,
                recipient_name="张伟",
                phone="13912345678",
                province="浙江省",
                city="杭州市",
                street=f"文三路 {i} 号",
                postal_code=code,
            )
            for i, code in enumerate(codes)
        )
        session.add(
            m.Address(
                customer_id=customer.id,
                recipient_name="默认",
                phone="13912345678",
                province="浙江省",
                city="杭州市",
                street="默认",
                postal_code="000000",
                is_default=True,
            )
        )
        assert customer.id is not None
        ids.append(customer.id)
    await session.commit()
    return ids


def _codes(page: Connection[Any]) -> list[str]:
    return [node.postal_code for node in page.nodes()]


async def test_pages_of_many_parents_in_one_statement_each_way(session: AsyncSession) -> None:
    ids = await _customers(
        session, [["310002", "310001", "310003", "310001"], ["100001"], [], ["200002", "200001"]]
    )
    loader = AddressPagesByCustomerIdLoader(Database(session))
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            statements.append(statement)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    try:
        pages = await asyncio.gather(*(loader.page(i, Page(first=2), lambda row: row) for i in ids))
        assert len(statements) == 1, statements
        counts = await asyncio.gather(*(page.total_count() for page in pages))
        assert len(statements) == 2, statements
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert [_codes(p) for p in pages] == [
        ["310001", "310001"],
        ["100001"],
        [],
        ["200001", "200002"],
    ]
    assert counts == [4, 1, 0, 2]
    assert [p.page_info.has_next_page for p in pages] == [True, False, False, False]
    assert not any(p.page_info.has_previous_page for p in pages)

    first = pages[0]
    after = first.page_info.end_cursor
    rest = await loader.page(ids[0], Page(first=5, after=after), lambda row: row)
    assert _codes(rest) == ["310002", "310003"]
    assert rest.page_info.has_previous_page and not rest.page_info.has_next_page

    tail = await loader.page(ids[0], Page(last=3), lambda row: row)
    assert _codes(tail) == ["310001", "310002", "310003"]
    assert tail.page_info.has_previous_page and not tail.page_info.has_next_page
    before = tail.page_info.start_cursor
    head = await loader.page(ids[0], Page(last=3, before=before), lambda row: row)
    assert _codes(head) == ["310001"]
    assert not head.page_info.has_previous_page and head.page_info.has_next_page

    between = await loader.page(
        ids[0], Page(first=10, after=after, before=tail.page_info.end_cursor), lambda row: row
    )
    assert _codes(between) == ["310002"]
    assert _codes(await loader.page(ids[0], Page(first=0), lambda row: row)) == []


async def test_bad_page_arguments_are_refused_before_any_statement(session: AsyncSession) -> None:
    loader = AddressPagesByCustomerIdLoader(Database(session))
    for kwargs in ({"first": 101}, {"first": 1, "last": 1}, {"after": "bm90LWEtY3Vyc29y"}):
        with pytest.raises(PaginationError):
            await loader.page(1, Page(**kwargs), lambda row: row)
    # A forged cursor of the right length with a value the id column cannot hold.
    with pytest.raises(PaginationError):
        await loader.page(1, Page(after=encode_cursor(["310001", 2**40])), lambda row: row)
