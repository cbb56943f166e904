"""Demo data: where the shop's customers live and its warehouses stand — cities with their
share of customers and the regional warehouse that serves them, the warehouses, and the
pieces street addresses are made of. Literal data only."""

from __future__ import annotations

from dataclasses import dataclass

from server.models import WarehouseKind


@dataclass(frozen=True)
class City:
    province: str
    name: str
    tier: int
    region: str
    postal: str
    districts: tuple[str, ...]
    rdc: str  # the regional warehouse that serves it
    weight: int  # share of customers


# fmt: off
CITIES: tuple[City, ...] = (
    City("上海", "上海市", 1, "华东", "200000", ("浦东新区", "徐汇区", "静安区", "闵行区"), "RDC-SH", 12),
    City("北京", "北京市", 1, "华北", "100000", ("朝阳区", "海淀区", "东城区", "丰台区"), "RDC-BJ", 11),
    City("广东", "广州市", 1, "华南", "510000", ("天河区", "越秀区", "海珠区", "番禺区"), "RDC-GZ", 8),
    City("广东", "深圳市", 1, "华南", "518000", ("南山区", "福田区", "宝安区", "龙岗区"), "RDC-GZ", 8),
    City("浙江", "杭州市", 2, "华东", "310000", ("西湖区", "滨江区", "余杭区", "拱墅区"), "RDC-SH", 6),
    City("江苏", "南京市", 2, "华东", "210000", ("鼓楼区", "玄武区", "江宁区"), "RDC-SH", 4),
    City("江苏", "苏州市", 2, "华东", "215000", ("姑苏区", "工业园区", "吴中区"), "RDC-SH", 4),
    City("四川", "成都市", 2, "西南", "610000", ("武侯区", "锦江区", "高新区", "金牛区"), "RDC-CD", 6),
    City("重庆", "重庆市", 2, "西南", "400000", ("渝中区", "江北区", "南岸区"), "RDC-CD", 4),
    City("湖北", "武汉市", 2, "华中", "430000", ("武昌区", "洪山区", "江汉区"), "RDC-WH", 5),
    City("湖南", "长沙市", 2, "华中", "410000", ("岳麓区", "天心区", "雨花区"), "RDC-WH", 3),
    City("陕西", "西安市", 2, "西北", "710000", ("雁塔区", "碑林区", "未央区"), "RDC-WH", 3),
    City("天津", "天津市", 2, "华北", "300000", ("和平区", "南开区", "河西区"), "RDC-BJ", 3),
    City("河南", "郑州市", 2, "华中", "450000", ("金水区", "中原区", "二七区"), "RDC-WH", 3),
    City("山东", "青岛市", 2, "华东", "266000", ("市南区", "崂山区", "黄岛区"), "RDC-BJ", 3),
    City("辽宁", "沈阳市", 2, "东北", "110000", ("和平区", "沈河区", "浑南区"), "RDC-BJ", 2),
    City("福建", "厦门市", 2, "华东", "361000", ("思明区", "湖里区"), "RDC-GZ", 2),
    City("安徽", "合肥市", 2, "华东", "230000", ("蜀山区", "包河区"), "RDC-SH", 2),
    City("云南", "昆明市", 3, "西南", "650000", ("五华区", "盘龙区"), "RDC-CD", 2),
    City("广西", "南宁市", 3, "华南", "530000", ("青秀区", "兴宁区"), "RDC-GZ", 2),
    City("江西", "南昌市", 3, "华中", "330000", ("东湖区", "红谷滩区"), "RDC-WH", 2),
    City("河北", "石家庄市", 3, "华北", "050000", ("长安区", "裕华区"), "RDC-BJ", 2),
    City("黑龙江", "哈尔滨市", 3, "东北", "150000", ("南岗区", "道里区"), "RDC-BJ", 1),
    City("江苏", "徐州市", 3, "华东", "221000", ("云龙区", "鼓楼区"), "RDC-SH", 1),
    City("河南", "洛阳市", 3, "华中", "471000", ("西工区", "涧西区"), "RDC-WH", 1),
    City("湖南", "岳阳市", 4, "华中", "414000", ("岳阳楼区", "云溪区"), "RDC-WH", 1),
    City("四川", "绵阳市", 4, "西南", "621000", ("涪城区", "游仙区"), "RDC-CD", 1),
    City("贵州", "遵义市", 4, "西南", "563000", ("红花岗区", "汇川区"), "RDC-CD", 1),
    City("广东", "湛江市", 4, "华南", "524000", ("赤坎区", "霞山区"), "RDC-GZ", 1),
    City("甘肃", "天水市", 5, "西北", "741000", ("秦州区", "麦积区"), "RDC-CD", 1),
)

# (code, name, kind, region, province, city)
WAREHOUSES: tuple[tuple[str, str, WarehouseKind, str, str, str], ...] = (
    ("RDC-SH", "华东区域仓（上海嘉定）", WarehouseKind.REGIONAL, "华东", "上海", "上海市"),
    ("RDC-BJ", "华北区域仓（北京大兴）", WarehouseKind.REGIONAL, "华北", "北京", "北京市"),
    ("RDC-GZ", "华南区域仓（广州黄埔）", WarehouseKind.REGIONAL, "华南", "广东", "广州市"),
    ("RDC-CD", "西南区域仓（成都双流）", WarehouseKind.REGIONAL, "西南", "四川", "成都市"),
    ("RDC-WH", "华中区域仓（武汉东西湖）", WarehouseKind.REGIONAL, "华中", "湖北", "武汉市"),
    ("FDC-SH-PD", "上海浦东前置仓", WarehouseKind.FORWARD, "华东", "上海", "上海市"),
    ("FDC-BJ-CY", "北京朝阳前置仓", WarehouseKind.FORWARD, "华北", "北京", "北京市"),
    ("FDC-GZ-TH", "广州天河前置仓", WarehouseKind.FORWARD, "华南", "广东", "广州市"),
    ("FDC-SZ-NS", "深圳南山前置仓", WarehouseKind.FORWARD, "华南", "广东", "深圳市"),
    ("FDC-HZ-XH", "杭州西湖前置仓", WarehouseKind.FORWARD, "华东", "浙江", "杭州市"),
    ("FDC-CD-WH", "成都武侯前置仓", WarehouseKind.FORWARD, "西南", "四川", "成都市"),
)
WAREHOUSE_CITY = {code: city for code, _, _, _, _, city in WAREHOUSES}
WAREHOUSE_REGION = {code: region for code, _, _, region, _, _ in WAREHOUSES}
FORWARD_BY_CITY = {city: code for code, _, kind, _, _, city in WAREHOUSES if kind is WarehouseKind.FORWARD}

ROADS = ("人民路", "中山路", "解放路", "建设路", "长江路", "科技路", "文化路", "新华路", "滨江大道",
         "世纪大道", "青年路", "学府路")
COMMUNITIES = ("阳光花园", "万科城", "碧桂园", "保利香槟", "绿地公馆", "翠湖苑", "金色家园", "华润城",
               "龙湖春江", "幸福里")
OFFICES = ("国际金融中心", "科技大厦", "创业园", "中心广场", "环球大厦", "软件园")
CARRIERS = ("顺丰速运", "京东物流", "中通快递", "圆通速递", "EMS")
# fmt: on
