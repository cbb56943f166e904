"""The warehouse choice's search on cases with a known best answer, and the city table's
distances (plain functions: no database)."""

from __future__ import annotations

import pytest

from plugins.logistics.models import Site
from plugins.logistics.service import geo
from plugins.logistics.service.allocation import Candidate, choose, tracking_number
from server.models import OrderLine

A, B, C = 101, 102, 103  # variants


def _line(line_id: int, variant_id: int, quantity: int = 1) -> OrderLine:
    return OrderLine(id=line_id, variant_id=variant_id, quantity=quantity, warehouse_id=1)


def _candidates(
    destination: tuple[str, str] | None, sites: dict[int, tuple[str, str]]
) -> dict[int, Candidate]:
    dest = geo.locate(*destination) if destination else None
    found = {}
    for warehouse_id, (province, city) in sites.items():
        place = geo.locate(province, city)
        assert place is not None
        site = Site(
            warehouse_id=warehouse_id,
            city=place.city,
            province=place.province,
            latitude=place.latitude,
            longitude=place.longitude,
        )
        distance = (
            0.0
            if dest is None
            else geo.distance_km(place.latitude, place.longitude, dest.latitude, dest.longitude)
        )
        found[warehouse_id] = Candidate(warehouse_id, site, distance)
    return found


def test_known_distances() -> None:
    def km(a: tuple[str, str], b: tuple[str, str]) -> float:
        pa, pb = geo.locate(*a), geo.locate(*b)
        assert pa is not None and pb is not None
        return geo.distance_km(pa.latitude, pa.longitude, pb.latitude, pb.longitude)

    assert km(("北京", "北京"), ("上海", "上海")) == pytest.approx(1068, abs=15)
    assert km(("广东", "广州"), ("广东省", "深圳市")) == pytest.approx(105, abs=10)
    assert km(("新疆", "乌鲁木齐"), ("黑龙江", "哈尔滨")) == pytest.approx(3060, abs=60)


def test_every_prefecture_is_in_the_table() -> None:
    # A few far-apart prefecture-level places, with and without their suffixes.
    for province, city in [
        ("新疆维吾尔自治区", "喀什"),
        ("内蒙古", "锡林郭勒盟"),
        ("西藏", "日喀则市"),
        ("广东", "东莞"),
        ("海南省", "三沙市"),
        ("甘肃", "嘉峪关"),
        ("吉林", "延边朝鲜族自治州"),
    ]:
        place = geo.locate(province, city)
        assert place is not None and geo.same_region(place.province, province), city
    # An unknown city falls back to its province's capital, listed first.
    capital = geo.locate("四川省", "不存在市")
    assert capital is not None and capital.city == "成都市"
    assert geo.locate_address({"province": "江苏", "city": "苏州"}) == geo.locate("江苏", "苏州市")
    assert geo.locate_address(None) is None


def test_one_warehouse_has_everything_the_nearest_of_those_ships() -> None:
    # To 上海: 苏州 is nearest but lacks B; 杭州 and 北京 hold both: 杭州 is nearer.
    candidates = _candidates(
        ("上海", "上海"), {1: ("北京", "北京"), 2: ("浙江", "杭州"), 3: ("江苏", "苏州")}
    )
    available = {(1, A): 5, (1, B): 5, (2, A): 1, (2, B): 2, (3, A): 9}
    lines = [_line(10, A), _line(11, B, 2)]
    found = choose(candidates, lines, available)
    assert found is not None
    assert found[0] == {10: 2, 11: 2}
    # 杭州 (30.2469, 120.2098) to 上海 (31.2304, 121.4737): about 163 km.
    assert found[1] == "nearest with everything: 163 km"


def test_a_split_is_required_fewest_parcels_then_shortest_distance() -> None:
    # To 上海. Nobody holds A, B and C. Three parcels from 上海, 苏州 and 杭州 would be
    # nearest, but two are fewer: {北京 (A, B), 杭州 (C)} = 1067 + 163 km beats
    # {北京 (A, B), 广州 (C)} = 1067 + 1213 km.
    candidates = _candidates(
        ("上海", "上海"),
        {
            1: ("上海", "上海"),
            2: ("江苏", "苏州"),
            3: ("浙江", "杭州"),
            4: ("北京", "北京"),
            5: ("广东", "广州"),
        },
    )
    available = {(1, A): 1, (2, B): 1, (3, C): 1, (4, A): 1, (4, B): 1, (5, C): 3}
    lines = [_line(10, A), _line(11, B), _line(12, C)]
    found = choose(candidates, lines, available)
    assert found is not None
    assert found[0] == {10: 4, 11: 4, 12: 3}
    assert found[1] == "split: 2 parcels, 1230 km"


def test_a_split_among_equals_takes_the_lowest_ids() -> None:
    # No known destination: every set of two is as far; {1, 3} comes before {2, 3}.
    candidates = _candidates(None, {1: ("浙江", "杭州"), 2: ("浙江", "杭州"), 3: ("江苏", "南京")})
    available = {(1, A): 1, (2, A): 1, (3, B): 1}
    found = choose(candidates, [_line(10, A), _line(11, B)], available)
    assert found is not None
    assert found[0] == {10: 1, 11: 3}


def test_lines_of_one_variant_share_a_warehouse_stock() -> None:
    # Two lines of A (3 + 2 units): 杭州 has 4, 北京 has 2. Both cannot come from 杭州.
    candidates = _candidates(("上海", "上海"), {1: ("浙江", "杭州"), 2: ("北京", "北京")})
    found = choose(candidates, [_line(10, A, 3), _line(11, A, 2)], {(1, A): 4, (2, A): 2})
    assert found is not None
    assert found[0] == {10: 1, 11: 2}


def test_no_set_ships_everything() -> None:
    candidates = _candidates(("上海", "上海"), {1: ("浙江", "杭州")})
    assert choose(candidates, [_line(10, A, 2)], {(1, A): 1}) is None


def test_tracking_numbers_are_fixed_by_order_and_parcel() -> None:
    assert tracking_number("SF", 123, 2) == "SF000000012302"
    assert tracking_number("", 7, 1) == "000000000701"
