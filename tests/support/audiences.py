"""A small shop whose audiences are counted by hand: six customers (a-d, f, and an erased one)
with known tags, tiers, regions, addresses, registrations, purchases, behaviour, RFM rows and
lifetime value rows.

Everything is as of AS_OF (2026-06-30 12:00 UTC). The RFM and value rows are written as they
are, not computed: the audiences read them, and tests/server/test_rfm.py,
tests/server/test_customer_value.py and tests/server/test_churn.py check how they are made.

    customer  tags         tier      region  default address    registered
    a         vip, 学生    GOLD      华东    浙江省 杭州市        2025-01-10
    b         vip          SILVER    华南    广东省 深圳市 (and a 浙江省 杭州市 one, not default)
                                                                 2026-02-01
    c         -            STANDARD  -       none               2026-06-01 00:00 (exactly)
    d         学生         GOLD      华东    上海市 上海市        2024-05-05
    f         VIP          PLATINUM  华北    北京市 北京市        2026-06-29
    erased    vip          GOLD      华东    -                  (account erased: never a member)

    purchases (paid, not cancelled, CNY)                 not purchases
    a  06-25 ¥300, 06-10 ¥200, 03-01 ¥1000               -
    b  06-29 ¥5000                                        06-20 ¥9999 cancelled
    c  -                                                  -
    d  2025-12-01 ¥800                                    06-28 ¥500 awaiting payment
    f  06-20 ¥100                                         06-21 $200 (another currency)
    erased  06-29 ¥100

    behaviour (earphones are in 耳机, below 数码; the phone in 手机, below 数码; the shirt in 服装)
    a  VIEW earphones 06-27, 06-28, 06-29; FAVORITE earphones 06-29
    b  ADD_TO_CART phone 06-20; SEARCH 06-15, 06-25
    c  VIEW shirt 5 times on 06-28
    d  VIEW earphones 05-20; PURCHASE earphones 2025-12-01

    RFM  recency  frequency  monetary  R F M  segment
    a        5        3       ¥1500    4 5 4  IMPORTANT_VALUE
    b        1        1       ¥5000    5 2 5  IMPORTANT_DEVELOP
    d      211        1        ¥800    1 2 2  GENERAL_WIN_BACK
    f       10        1        ¥100    2 2 1  GENERAL_WIN_BACK
    erased   1        1        ¥100    5 5 5  IMPORTANT_VALUE

    value    CLV        P(alive)  churn  reasons
    a        ¥2400.00   0.95      0.05   DROPOUT_MODEL
    b        ¥8000.50   0.60      0.76   BROWSING_DROPPED, DROPOUT_MODEL
    c        (no row: no purchase)
    d        null       null      null   PURCHASE_OVERDUE (the models could not be fitted:
                                         every figure null, the signal still listed)
    f        -¥12.34    0.30      0.928  PURCHASE_OVERDUE, NO_INTERACTION, DROPOUT_MODEL
                                         (bought below cost: a negative value)
    erased   ¥9999.00   0.99      0.01   DROPOUT_MODEL
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import (
    Address,
    Category,
    Customer,
    CustomerEvent,
    CustomerEventKind,
    CustomerRfm,
    CustomerSegment,
    CustomerValue,
    MembershipTier,
    Order,
    OrderStatus,
    Product,
)

AS_OF = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
NAMES = "abcdf"
_numbers = itertools.count(1)


def on(year: int, month: int, day: int, hour: int = 10) -> datetime:
    return datetime(year, month, day, hour, 0, tzinfo=UTC)


@dataclass
class AudienceShop:
    customers: dict[str, Customer]
    erased: Customer
    digital: Category  # 数码
    earphones_category: Category  # 耳机, below 数码
    clothes: Category  # 服装
    earphones: Product
    phone: Product
    shirt: Product

    def ids(self, names: str) -> set[int]:
        return {self.customers[n].id or 0 for n in names}

    def names(self, ids: set[int] | list[int]) -> str:
        by_id = {c.id: n for n, c in self.customers.items()}
        by_id[self.erased.id] = "erased"
        return "".join(sorted(by_id[i] for i in ids))


async def audience_shop(session: AsyncSession) -> AudienceShop:
    """The shop above, committed."""
    digital = Category(name="数码", slug=f"audience-digital-{next(_numbers)}")
    clothes = Category(name="服装", slug=f"audience-clothes-{next(_numbers)}")
    session.add_all([digital, clothes])
    await session.flush()
    earphones_category = Category(
        name="耳机", slug=f"audience-earphones-{next(_numbers)}", parent_id=digital.id
    )
    phones_category = Category(
        name="手机", slug=f"audience-phones-{next(_numbers)}", parent_id=digital.id
    )
    session.add_all([earphones_category, phones_category])
    await session.flush()

    def product(name: str, category: Category) -> Product:
        return Product(
            sku=f"AUD-{next(_numbers):05d}",
            name=name,
            price_amount=19900,
            currency="CNY",
            category_id=category.id,
        )

    earphones = product("蓝牙耳机", earphones_category)
    phone = product("手机 Pro", phones_category)
    shirt = product("纯棉衬衫", clothes)
    session.add_all([earphones, phone, shirt])

    def customer(name: str, **fields: object) -> Customer:
        return Customer(
            email=f"audience-{name}-{next(_numbers)}@example.cn",
            first_name=f"小{name}",
            last_name="王",
            **fields,
        )

    people = {
        "a": customer(
            "a",
            tags=["vip", "学生"],
            membership_tier=MembershipTier.GOLD,
            region="华东",
            created_at=on(2025, 1, 10),
        ),
        "b": customer(
            "b",
            tags=["vip"],
            membership_tier=MembershipTier.SILVER,
            region="华南",
            created_at=on(2026, 2, 1),
        ),
        "c": customer("c", created_at=datetime(2026, 6, 1, tzinfo=UTC)),
        "d": customer(
            "d",
            tags=["学生"],
            membership_tier=MembershipTier.GOLD,
            region="华东",
            created_at=on(2024, 5, 5),
        ),
        "f": customer(
            "f",
            tags=["VIP"],
            membership_tier=MembershipTier.PLATINUM,
            region="华北",
            created_at=on(2026, 6, 29, 8),
        ),
    }
    erased = customer(
        "erased",
        tags=["vip"],
        membership_tier=MembershipTier.GOLD,
        region="华东",
        is_active=False,
        created_at=on(2025, 1, 1),
    )
    session.add_all([*people.values(), erased])
    await session.flush()
    a, b, c, d, f = (people[n] for n in NAMES)

    def address(who: Customer, province: str, city: str, *, default: bool = True) -> Address:
        assert who.id is not None
        return Address(
            customer_id=who.id,
            recipient_name="王小明",
            phone="13800138000",
            province=province,
            city=city,
            street="人民路 1 号",
            is_default=default,
        )

    session.add_all(
        [
            address(a, "浙江省", "杭州市"),
            address(b, "广东省", "深圳市"),
            address(b, "浙江省", "杭州市", default=False),
            address(d, "上海市", "上海市"),
            address(f, "北京市", "北京市"),
        ]
    )

    def order(
        who: Customer,
        yuan: int,
        at: datetime,
        status: OrderStatus = OrderStatus.COMPLETED,
        currency: str = "CNY",
    ) -> Order:
        return Order(
            number=f"SG-AUD-{next(_numbers):06d}",
            customer_id=who.id,
            email=who.email,
            status=status,
            currency=currency,
            subtotal_amount=yuan * 100,
            total_amount=yuan * 100,
            placed_at=at,
            updated_at=at,
        )

    session.add_all(
        [
            order(a, 300, on(2026, 6, 25)),
            order(a, 200, on(2026, 6, 10), OrderStatus.DELIVERED),
            order(a, 1000, on(2026, 3, 1)),
            order(b, 5000, on(2026, 6, 29), OrderStatus.PAID),
            order(b, 9999, on(2026, 6, 20), OrderStatus.CANCELLED),
            order(d, 800, on(2025, 12, 1)),
            order(d, 500, on(2026, 6, 28), OrderStatus.PENDING_PAYMENT),
            order(f, 100, on(2026, 6, 20), OrderStatus.SHIPPED),
            order(f, 200, on(2026, 6, 21), currency="USD"),
            order(erased, 100, on(2026, 6, 29)),
        ]
    )
    await session.flush()

    def event(
        who: Customer, kind: CustomerEventKind, at: datetime, item: Product | None = None
    ) -> CustomerEvent:
        return CustomerEvent(
            customer_id=who.id,
            kind=kind,
            product_id=item.id if item is not None else None,
            query="耳机" if kind is CustomerEventKind.SEARCH else None,
            occurred_at=at,
        )

    view, search = CustomerEventKind.VIEW, CustomerEventKind.SEARCH
    session.add_all(
        [
            *(event(a, view, on(2026, 6, day), earphones) for day in (27, 28, 29)),
            event(a, CustomerEventKind.FAVORITE, on(2026, 6, 29), earphones),
            event(b, CustomerEventKind.ADD_TO_CART, on(2026, 6, 20), phone),
            event(b, search, on(2026, 6, 15)),
            event(b, search, on(2026, 6, 25)),
            *(event(c, view, on(2026, 6, 28, hour), shirt) for hour in range(1, 6)),
            event(d, view, on(2026, 5, 20), earphones),
            event(d, CustomerEventKind.PURCHASE, on(2025, 12, 1), earphones),
        ]
    )

    def rfm(
        who: Customer,
        recency: int,
        frequency: int,
        yuan: int,
        scores: tuple[int, int, int],
        segment: CustomerSegment,
    ) -> CustomerRfm:
        assert who.id is not None
        return CustomerRfm(
            customer_id=who.id,
            recency_days=recency,
            frequency=frequency,
            monetary=yuan * 100,
            last_purchase_at=AS_OF,
            r_score=scores[0],
            f_score=scores[1],
            m_score=scores[2],
            segment=segment,
            computed_at=AS_OF,
        )

    S = CustomerSegment
    session.add_all(
        [
            rfm(a, 5, 3, 1500, (4, 5, 4), S.IMPORTANT_VALUE),
            rfm(b, 1, 1, 5000, (5, 2, 5), S.IMPORTANT_DEVELOP),
            rfm(d, 211, 1, 800, (1, 2, 2), S.GENERAL_WIN_BACK),
            rfm(f, 10, 1, 100, (2, 2, 1), S.GENERAL_WIN_BACK),
            rfm(erased, 1, 1, 100, (5, 5, 5), S.IMPORTANT_VALUE),
        ]
    )

    def value(
        who: Customer,
        fen: int | None,
        p_alive: float | None,
        churn: float | None,
        reasons: dict[str, float],
    ) -> CustomerValue:
        assert who.id is not None
        return CustomerValue(
            customer_id=who.id,
            p_alive=p_alive,
            horizon_days=365,
            clv_amount=fen,
            churn_probability=churn,
            churn_reasons=[
                {"code": code, "value": figure, "message": code.lower()}
                for code, figure in reasons.items()
            ],
            reason=None if fen is not None else "the purchase model (BG/NBD) cannot be fitted",
            computed_at=AS_OF,
        )

    session.add_all(
        [
            value(a, 240_000, 0.95, 0.05, {"DROPOUT_MODEL": 0.05}),
            value(b, 800_050, 0.60, 0.76, {"BROWSING_DROPPED": 0.25, "DROPOUT_MODEL": 0.4}),
            value(d, None, None, None, {"PURCHASE_OVERDUE": 211}),
            value(
                f,
                -1234,
                0.30,
                0.928,
                {"PURCHASE_OVERDUE": 10, "NO_INTERACTION": 10, "DROPOUT_MODEL": 0.7},
            ),
            value(erased, 999_900, 0.99, 0.01, {"DROPOUT_MODEL": 0.01}),
        ]
    )
    await session.commit()
    return AudienceShop(
        customers=people,
        erased=erased,
        digital=digital,
        earphones_category=earphones_category,
        clothes=clothes,
        earphones=earphones,
        phone=phone,
        shirt=shirt,
    )
