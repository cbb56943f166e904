"""Demo data: a believable Chinese online shop, reproducible from a seed.

Everything is drawn from one ``random.Random(seed)`` and dated relative to one ``as_of``
moment, never "now": the same seed and the same ``as_of`` give identical rows, in a fresh
database on either backend. The whole shop is planned in memory first (so that, say, a
customer's membership tier can follow from the orders they will place) and then written with
ORM bulk INSERTs, a few statements per table.

Customers are not random clicks. Each has hidden preferences — favourite categories and brands,
price sensitivity, an activity level and a life-cycle (loyal, regular, churning, new) — that are
never stored, but that drive their behaviour events and their orders, so that segmentation,
recommendation and churn analysis have something real to find.

Orders are written as history: lines at catalogue price (no plugin adjustments), payments,
status changes, shipments and tracking timelines. No outbox events are emitted for them, since
nothing about the past is news; plugins that learn from history read the tables.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import create_engine, mark_write, session_factory
from server.models import (
    Address,
    Cart,
    CartLine,
    CartStatus,
    Category,
    Customer,
    CustomerEvent,
    CustomerEventKind,
    MembershipTier,
    Order,
    OrderLine,
    OrderStatus,
    OrderStatusChange,
    Payment,
    PaymentStatus,
    Product,
    Shipment,
    ShipmentLine,
    ShipmentStatus,
    StaffRole,
    StaffUser,
    StockLevel,
    TrackingEvent,
    Warehouse,
    WarehouseKind,
)
from server.progress import Progress
from server.services.search import product_search_text

DEMO_PASSWORD = "shopgraph-demo"
DEMO_STAFF_EMAIL = "admin@shopgraph.example"
HISTORY_DAYS = 182
OPEN_STATUSES = (OrderStatus.PENDING_PAYMENT, OrderStatus.PAID, OrderStatus.FULFILLING)
CARRIERS = ("顺丰速运", "京东物流", "中通快递", "圆通速递", "EMS")
FREE_SHIPPING_FROM = 9900  # 满99包邮, in fen
SHIPPING_FEE = 800
CUSTOMER_ACTOR = "customer"  # resolved to "customer:<id>" once the customer has an id

Row = dict[str, Any]


# --------------------------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """A leaf category and how its products look."""

    slug: str
    name: str
    noun: str  # what the product is, when the model name does not say it
    price: tuple[int, int]  # yuan, before the brand's positioning
    brands: tuple[tuple[str, tuple[str, ...]], ...]
    attrs: tuple[tuple[str, tuple[str, ...]], ...]
    tags: tuple[str, ...]
    daily: bool = False  # fast-moving: also stocked by forward warehouses (前置仓)
    consumable: bool = False  # bought again and again


def _leaf(
    slug: str,
    name: str,
    noun: str,
    price: tuple[int, int],
    brands: dict[str, tuple[str, ...]],
    attrs: dict[str, tuple[str, ...]],
    tags: tuple[str, ...],
    *,
    daily: bool = False,
    consumable: bool = False,
) -> Leaf:
    return Leaf(
        slug,
        name,
        noun,
        price,
        tuple(brands.items()),
        tuple(attrs.items()),
        tags,
        daily,
        consumable,
    )


# fmt: off
COLOURS = ("曜石黑", "雪域白", "冰川蓝", "远峰紫", "松林绿")
CATALOGUE: tuple[tuple[str, str, tuple[Leaf, ...]], ...] = (
    ("digital", "数码", (
        _leaf("phones", "手机", "5G手机", (999, 8999), {
            "Apple": ("iPhone 15", "iPhone 15 Pro", "iPhone 15 Pro Max"),
            "华为": ("Mate 60 Pro", "Pura 70", "nova 12"),
            "小米": ("小米14", "小米14 Ultra", "Redmi K70", "Redmi Note 13 Pro"),
            "OPPO": ("Find X7", "Reno11"),
            "vivo": ("X100", "iQOO Neo9"),
            "荣耀": ("Magic6", "荣耀X50"),
        }, {"容量": ("128GB", "256GB", "512GB", "1TB"), "颜色": COLOURS},
            ("5G", "旗舰", "拍照", "快充", "长续航")),
        _leaf("earphones", "耳机", "蓝牙耳机", (99, 2499), {
            "Apple": ("AirPods Pro 2", "AirPods 3"),
            "Sony": ("WH-1000XM5", "WF-1000XM5"),
            "华为": ("FreeBuds Pro 3", "FreeBuds 5i"),
            "小米": ("Redmi Buds 5", "Xiaomi Buds 4 Pro"),
            "Bose": ("QuietComfort Ultra",),
            "漫步者": ("W820NB", "Lolli Pro 3"),
        }, {"颜色": ("黑色", "白色", "银色", "星空蓝"), "佩戴方式": ("入耳式", "头戴式")},
            ("主动降噪", "无线", "运动", "通勤", "高音质")),
        _leaf("smartwatches", "智能手表", "智能手表", (199, 6499), {
            "Apple": ("Watch Series 9", "Watch Ultra 2"),
            "华为": ("WATCH 4 Pro", "WATCH GT 4"),
            "小米": ("Xiaomi Watch S3", "小米手环8"),
            "Garmin佳明": ("Forerunner 265", "fenix 7"),
            "小天才": ("Z9 儿童电话手表",),
        }, {"表盘尺寸": ("41mm", "45mm", "46mm"), "颜色": ("午夜色", "星光色", "钛金属")},
            ("健康监测", "运动", "血氧", "长续航", "NFC")),
        _leaf("tablets", "平板电脑", "平板电脑", (999, 9999), {
            "Apple": ("iPad Air", "iPad Pro 11英寸", "iPad mini"),
            "华为": ("MatePad Pro", "MatePad 11.5"),
            "小米": ("Xiaomi Pad 6", "Redmi Pad SE"),
            "联想": ("小新Pad Pro",),
        }, {"容量": ("64GB", "128GB", "256GB"), "网络": ("WLAN版", "5G版")},
            ("学习", "办公", "影音", "手写笔")),
    )),
    ("computers", "电脑办公", (
        _leaf("laptops", "笔记本电脑", "笔记本电脑", (2999, 18999), {
            "Apple": ("MacBook Air 13英寸 M3", "MacBook Pro 14英寸 M3"),
            "联想": ("ThinkPad X1 Carbon", "小新Pro 14", "拯救者Y9000P"),
            "华为": ("MateBook X Pro", "MateBook 14"),
            "Dell戴尔": ("XPS 13", "灵越14"),
            "华硕": ("天选5", "无畏Pro15"),
        }, {"内存": ("16GB", "32GB"), "硬盘": ("512GB SSD", "1TB SSD")},
            ("轻薄", "办公", "游戏", "高性能")),
        _leaf("peripherals", "键盘鼠标", "", (49, 999), {
            "罗技": ("MX Master 3S 无线鼠标", "MX Keys S 无线键盘", "G502 HERO 游戏鼠标"),
            "雷蛇": ("炼狱蝰蛇V3 鼠标", "黑寡妇蜘蛛 机械键盘"),
            "小米": ("无线鼠标Lite",),
            "达尔优": ("A87 机械键盘",),
        }, {"颜色": ("黑色", "白色", "石墨灰"), "连接方式": ("蓝牙", "2.4G无线", "有线")},
            ("办公", "电竞", "静音", "人体工学")),
        _leaf("monitors", "显示器", "显示器", (699, 5999), {
            "Dell戴尔": ("U2723QE",),
            "LG": ("27UP850",),
            "小米": ("Redmi 27英寸",),
            "AOC": ("Q27G2S",),
            "三星": ("玄龙骑士G5",),
        }, {"尺寸": ("24英寸", "27英寸", "32英寸"), "分辨率": ("2K", "4K")},
            ("护眼", "电竞", "设计", "高刷")),
    )),
    ("appliances", "家电", (
        _leaf("fridges", "冰箱", "冰箱", (1299, 12999), {
            "海尔": ("十字对开门", "博观系列 法式多门"),
            "美的": ("对开门", "法式多门"),
            "西门子": ("KA50 对开门",),
            "容声": ("十字门",),
        }, {"容量": ("400L", "470L", "508L", "529L"), "能效": ("一级能效", "二级能效")},
            ("风冷无霜", "变频", "大容量", "保鲜")),
        _leaf("washers", "洗衣机", "洗衣机", (999, 8999), {
            "海尔": ("EG100 滚筒", "云溪精华洗"),
            "小天鹅": ("水魔方", "TG100V88"),
            "美的": ("MG100V11D 滚筒",),
            "西门子": ("iQ300 滚筒",),
        }, {"容量": ("8公斤", "10公斤", "12公斤"), "类型": ("滚筒", "波轮", "洗烘一体")},
            ("变频", "除菌", "智能投放", "静音")),
        _leaf("air-conditioners", "空调", "空调", (1999, 8999), {
            "格力": ("云佳", "云锦Ⅲ"),
            "美的": ("风酷", "静优风"),
            "海尔": ("静悦",),
            "奥克斯": ("京裕",),
        }, {"匹数": ("1匹", "1.5匹", "2匹", "3匹"), "能效": ("新一级能效", "新三级能效")},
            ("变频", "冷暖", "自清洁", "节能")),
        _leaf("kitchen-appliances", "厨房小电", "", (99, 2499), {
            "美的": ("智能电饭煲", "破壁机"),
            "九阳": ("豆浆机", "破壁料理机"),
            "苏泊尔": ("电压力锅", "空气炸锅"),
            "小熊": ("养生壶", "煮蛋器"),
            "摩飞": ("多功能料理锅",),
        }, {"颜色": ("白色", "奶油白", "薄荷绿"), "容量": ("1.5L", "4L", "5L")},
            ("家用", "智能预约", "小巧", "送礼")),
    )),
    ("beauty", "美妆个护", (
        _leaf("skincare", "护肤", "", (79, 2499), {
            "雅诗兰黛": ("特润修护肌活精华露 小棕瓶", "多效智妍面霜"),
            "兰蔻": ("小黑瓶精华肌底液", "菁纯面霜"),
            "欧莱雅": ("复颜玻尿酸水光精华", "紫熨斗眼霜"),
            "珀莱雅": ("双抗精华", "红宝石面霜"),
            "SK-II": ("护肤精华露 神仙水",),
            "薇诺娜": ("舒敏保湿特护霜",),
        }, {"规格": ("30ml", "50ml", "100ml"), "适用肤质": ("干性", "油性", "混合性", "敏感肌")},
            ("保湿", "抗老", "修护", "美白", "送礼")),
        _leaf("makeup", "彩妆", "", (59, 699), {
            "完美日记": ("小细跟口红", "动物眼影盘"),
            "花西子": ("空气蜜粉", "雕花口红"),
            "雅诗兰黛": ("DW持妆粉底液",),
            "Dior迪奥": ("烈艳蓝金唇膏",),
            "YSL": ("小金条口红",),
            "毛戈平": ("光影塑颜高光",),
        }, {"色号": ("#01", "#999", "#1966", "#N21", "#02")},
            ("国货", "持妆", "显白", "送礼")),
        _leaf("personal-care", "洗护", "", (19, 299), {
            "海飞丝": ("去屑洗发水",),
            "多芬": ("滋养沐浴露",),
            "舒肤佳": ("香皂",),
            "云南白药": ("牙膏",),
            "飞利浦": ("声波电动牙刷",),
            "力士": ("精油香氛洗发水",),
        }, {"规格": ("400ml", "750ml", "1L", "3支装"), "香型": ("清爽", "茉莉", "樱花", "海洋")},
            ("家庭装", "清爽", "囤货"), daily=True, consumable=True),
    )),
    ("food", "食品生鲜", (
        _leaf("snacks", "零食坚果", "", (19, 199), {
            "三只松鼠": ("每日坚果", "夏威夷果", "碧根果"),
            "良品铺子": ("猪肉脯", "手撕面包"),
            "百草味": ("芒果干", "坚果礼盒"),
            "洽洽": ("小黄袋瓜子",),
            "卫龙": ("大面筋辣条",),
        }, {"规格": ("500g", "750g", "1kg", "30包"), "口味": ("原味", "奶油味", "香辣")},
            ("零食", "办公室", "囤货", "年货"), daily=True, consumable=True),
        _leaf("drinks", "茶饮冲调", "", (19, 899), {
            "雀巢": ("1+2原味咖啡", "金牌黑咖啡"),
            "三顿半": ("超即溶咖啡",),
            "农夫山泉": ("天然水 550ml", "东方树叶"),
            "元气森林": ("气泡水 480ml",),
            "八马茶业": ("安溪铁观音",),
            "伊利": ("纯牛奶 250ml",),
            "蒙牛": ("特仑苏纯牛奶",),
        }, {"规格": ("整箱", "礼盒装", "24瓶", "12盒")},
            ("提神", "整箱", "早餐", "送礼"), daily=True, consumable=True),
        _leaf("fresh", "生鲜水果", "", (29, 399), {
            "佳沛": ("新西兰阳光金果 奇异果",),
            "褚橙": ("云南冰糖橙",),
            "百果园": ("智利车厘子 JJ级", "海南贵妃芒"),
            "正大": ("鲜鸡蛋",),
            "恒都": ("澳洲谷饲牛排",),
            "獐子岛": ("大连鲜活扇贝",),
        }, {"规格": ("1kg", "2kg", "2.5kg", "5kg"), "储存": ("冷藏", "常温", "冷冻")},
            ("新鲜", "产地直发", "冷链"), daily=True, consumable=True),
    )),
    ("baby", "母婴", (
        _leaf("formula", "奶粉", "婴幼儿配方奶粉", (199, 599), {
            "飞鹤": ("星飞帆",),
            "美赞臣": ("蓝臻",),
            "爱他美": ("卓萃",),
            "惠氏": ("启赋",),
            "君乐宝": ("至臻",),
        }, {"段数": ("1段", "2段", "3段"), "规格": ("700g", "800g", "900g")},
            ("宝宝", "进口", "国产", "囤货"), daily=True, consumable=True),
        _leaf("diapers", "纸尿裤", "", (69, 299), {
            "帮宝适": ("一级帮 纸尿裤",),
            "花王妙而舒": ("纸尿裤",),
            "好奇": ("心钻装 纸尿裤", "金装 拉拉裤"),
            "大王": ("光羽 纸尿裤",),
            "babycare": ("皇室狮子王国 拉拉裤",),
        }, {"尺码": ("NB", "S", "M", "L", "XL"), "规格": ("62片", "84片", "96片")},
            ("超薄", "透气", "囤货"), daily=True, consumable=True),
        _leaf("toys", "玩具", "", (49, 999), {
            "LEGO乐高": ("城市系列 消防局", "机械组 跑车", "得宝 大颗粒积木"),
            "费雪": ("安抚海马",),
            "奥迪双钻": ("超级飞侠 变形机器人",),
            "泡泡玛特": ("Molly 盲盒",),
        }, {"适用年龄": ("0-3岁", "3-6岁", "6-12岁", "14岁以上")},
            ("益智", "生日礼物", "亲子")),
    )),
    ("apparel", "服饰", (
        _leaf("menswear", "男装", "", (99, 1299), {
            "优衣库": ("纯棉圆领T恤", "摇粒绒外套"),
            "海澜之家": ("商务休闲衬衫", "连帽羽绒服"),
            "波司登": ("轻薄羽绒服",),
            "太平鸟": ("休闲夹克",),
            "李宁": ("运动卫衣",),
        }, {"尺码": ("S", "M", "L", "XL", "XXL"), "颜色": ("黑色", "藏青", "灰色", "卡其")},
            ("百搭", "通勤", "休闲", "新款")),
        _leaf("womenswear", "女装", "", (99, 1599), {
            "优衣库": ("法兰绒衬衫", "高腰牛仔裤"),
            "ZARA": ("针织开衫", "缎面连衣裙"),
            "太平鸟": ("双排扣风衣",),
            "波司登": ("长款羽绒服",),
            "欧时力": ("碎花连衣裙",),
        }, {"尺码": ("XS", "S", "M", "L", "XL"), "颜色": ("米白", "杏色", "黑色", "雾霾蓝")},
            ("显瘦", "通勤", "法式", "新款")),
        _leaf("sneakers", "运动鞋", "", (199, 1499), {
            "Nike": ("Air Force 1 板鞋", "Pegasus 40 跑鞋"),
            "adidas": ("Ultraboost Light 跑鞋", "Samba OG 板鞋"),
            "安踏": ("C202 GT 跑鞋",),
            "李宁": ("赤兔6 Pro 跑鞋", "飞电3 Elite 跑鞋"),
            "特步": ("160X 3.0 跑鞋",),
        }, {"尺码": ("37", "38", "39", "40", "41", "42", "43"), "颜色": ("白色", "黑色")},
            ("跑步", "缓震", "透气", "国潮")),
    )),
    ("home", "家居", (
        _leaf("bedding", "家纺", "", (99, 2999), {
            "罗莱": ("长绒棉四件套", "蚕丝被"),
            "水星家纺": ("全棉四件套", "羽绒被"),
            "富安娜": ("乳胶枕",),
            "梦洁": ("天丝四件套",),
        }, {"尺寸": ("1.5m床", "1.8m床", "2.0m床"), "颜色": ("米白", "灰蓝", "浅粉")},
            ("亲肤", "全棉", "四季", "送礼")),
        _leaf("storage", "收纳", "", (19, 399), {
            "天马": ("抽屉式收纳箱",),
            "茶花": ("塑料收纳盒",),
            "太力": ("真空压缩袋",),
            "宜家IKEA": ("SKUBB 收纳盒",),
        }, {"规格": ("单个", "3个装", "5个装"), "容量": ("30L", "60L", "100L")},
            ("整理", "大容量", "搬家")),
        _leaf("cookware", "厨具", "", (39, 1999), {
            "苏泊尔": ("不粘炒锅", "精铁炒锅"),
            "双立人": ("刀具套装", "珐琅铸铁锅"),
            "爱仕达": ("压力锅",),
            "膳魔师": ("保温杯",),
        }, {"规格": ("28cm", "30cm", "32cm", "500ml", "7件套")},
            ("不粘", "家用", "送礼")),
    )),
)

# Brand positioning moves a product within its category's price range.
PREMIUM_BRANDS = {
    "Apple", "Sony", "Bose", "雅诗兰黛", "兰蔻", "SK-II", "Dior迪奥", "YSL", "西门子", "双立人",
    "Dell戴尔", "Garmin佳明", "罗莱", "LEGO乐高", "爱他美",
}
VALUE_BRANDS = {"小米", "漫步者", "小熊", "洽洽", "卫龙", "茶花", "奥克斯", "AOC", "完美日记"}
# fmt: on


# --------------------------------------------------------------------------------------------
# People and places
# --------------------------------------------------------------------------------------------


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

SURNAMES = (
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"),
    ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"), ("徐", "xu"), ("孙", "sun"),
    ("马", "ma"), ("朱", "zhu"), ("胡", "hu"), ("郭", "guo"), ("何", "he"), ("高", "gao"),
    ("林", "lin"), ("罗", "luo"), ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"),
    ("唐", "tang"), ("许", "xu"), ("韩", "han"), ("冯", "feng"), ("邓", "deng"), ("曹", "cao"),
    ("彭", "peng"), ("曾", "zeng"), ("肖", "xiao"), ("田", "tian"), ("董", "dong"), ("潘", "pan"),
    ("袁", "yuan"), ("蔡", "cai"), ("蒋", "jiang"), ("余", "yu"), ("叶", "ye"), ("杜", "du"),
    ("程", "cheng"), ("苏", "su"), ("魏", "wei"), ("吕", "lv"), ("丁", "ding"), ("沈", "shen"),
)
GIVEN_NAMES = {
    "FEMALE": (
        ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"), ("婷", "ting"),
        ("雪", "xue"), ("欣怡", "xinyi"), ("子涵", "zihan"), ("雨桐", "yutong"), ("佳琪", "jiaqi"),
        ("诗涵", "shihan"), ("梦瑶", "mengyao"), ("晓燕", "xiaoyan"), ("思琪", "siqi"),
        ("婉清", "wanqing"), ("一诺", "yinuo"), ("慧", "hui"), ("倩", "qian"), ("琳", "lin"),
    ),
    "MALE": (
        ("伟", "wei"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"),
        ("杰", "jie"), ("涛", "tao"), ("浩然", "haoran"), ("子轩", "zixuan"), ("宇航", "yuhang"),
        ("俊杰", "junjie"), ("志强", "zhiqiang"), ("建华", "jianhua"), ("明辉", "minghui"),
        ("嘉诚", "jiacheng"), ("鹏", "peng"), ("博文", "bowen"), ("天宇", "tianyu"), ("昊", "hao"),
    ),
}
AGE_BANDS = (("18-24", 18), ("25-29", 24), ("30-34", 22), ("35-39", 15), ("40-49", 14), ("50+", 7))
OCCUPATIONS = (
    ("白领", 24), ("程序员", 10), ("教师", 7), ("医护", 5), ("学生", 12), ("公务员", 5),
    ("个体经营", 8), ("自由职业", 7), ("销售", 8), ("设计师", 5), ("工人", 6), ("退休", 3),
)
INTERESTS = {
    "digital": "数码科技", "computers": "电脑装机", "appliances": "智能家居", "beauty": "美妆护肤",
    "food": "美食", "baby": "育儿", "apparel": "穿搭", "home": "家居生活",
}
OTHER_INTERESTS = ("旅行", "健身", "摄影", "电影", "读书", "露营", "宠物", "游戏", "烘焙", "音乐")
ROADS = ("人民路", "中山路", "解放路", "建设路", "长江路", "科技路", "文化路", "新华路", "滨江大道",
         "世纪大道", "青年路", "学府路")
COMMUNITIES = ("阳光花园", "万科城", "碧桂园", "保利香槟", "绿地公馆", "翠湖苑", "金色家园", "华润城",
               "龙湖春江", "幸福里")
OFFICES = ("国际金融中心", "科技大厦", "创业园", "中心广场", "环球大厦", "软件园")
EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
PHONE_PREFIXES = ("134", "135", "136", "138", "139", "150", "152", "158", "166", "177", "182",
                  "186", "187", "188", "191", "199")
NO_RESULT_QUERIES = ("宠物猫粮", "二手相机", "汽车脚垫", "钓鱼竿", "尤克里里", "露营帐篷")
CHANNELS = ("app", "mini_program", "web")
EVENING_HOURS = (1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 5, 6, 7, 5, 5, 5, 5, 6, 7, 9, 10, 10, 8, 4)
# fmt: on


@dataclass
class Preferences:
    """What drives a customer's behaviour. Never stored: analyses have to find it."""

    categories: list[str]  # category slugs of leaf categories
    brands: list[str]
    price_sensitivity: float  # 0 (buys premium) .. 1 (hunts bargains)
    activity: str  # high | medium | low
    lifecycle: str  # loyal | regular | churning | new
    strength: float  # share of shopping done in the favourite categories
    channel: str


@dataclass
class DemoReport:
    """What was generated: row counts, logins to try, and each customer's hidden preferences."""

    seed: int
    as_of: datetime
    counts: dict[str, int]
    demo_email: str
    demo_password: str
    staff_email: str | None
    preferences: dict[str, Preferences] = field(default_factory=dict)

    def summary(self) -> str:
        shown = ("categories", "products", "warehouses", "stock levels", "customers", "addresses")
        shown += ("orders", "order lines", "payments", "shipments", "tracking events")
        shown += ("behaviour events", "carts")
        parts = [f"{self.counts[k]} {k}" for k in shown if k in self.counts]
        lines = [
            f"demo data (seed {self.seed}, as of {self.as_of:%Y-%m-%d}): " + ", ".join(parts),
            f"customer login: {self.demo_email} / {self.demo_password}",
        ]
        if self.staff_email:
            lines.append(f"staff login:    {self.staff_email} / {self.demo_password}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The plan, in memory. Rows are plain dicts of column values (building thousands of SQLModel
# objects costs more than the whole insert); ``id`` is filled in once a row is written.
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Product:
    row: Row
    leaf: Leaf
    top: str
    index: int


def category_slug(product: _Product) -> str:
    """The slug of the demo category (a leaf under its top category) a product belongs to."""
    return f"{product.top}-{product.leaf.slug}"


@dataclass(eq=False)
class _Customer:
    row: Row
    city: City
    addresses: list[Row]
    prefs: Preferences
    start: datetime  # first moment they shop
    end: datetime  # last moment they shop (churning customers go quiet early)
    bought: list[_Product] = field(default_factory=list)


@dataclass(eq=False)
class _Order:
    row: Row
    customer: _Customer
    warehouse: str
    lines: list[tuple[Row, _Product]]
    changes: list[Row] = field(default_factory=list)
    payment: Row | None = None
    shipment: Row | None = None
    tracking: list[Row] = field(default_factory=list)


@dataclass(eq=False)
class _Event:
    customer: _Customer
    kind: CustomerEventKind
    at: datetime
    session_id: str
    product: _Product | None = None
    order: _Order | None = None
    query: str | None = None
    quantity: int | None = None


def _weighted(rng: random.Random, pairs: tuple[tuple[Any, int], ...]) -> Any:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def _shop_price(yuan: float) -> int:
    """A price as shops write it (5999, 299, 39.90), in fen."""
    if yuan >= 1000:
        return (max(1, round(yuan / 100)) * 100 - 1) * 100
    if yuan >= 100:
        return (max(1, round(yuan / 10)) * 10 - 1) * 100
    return max(990, round(yuan) * 100 - 10)


class _Planner:
    def __init__(self, seed: int, as_of: datetime) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.as_of = as_of
        self.history_start = as_of - timedelta(days=HISTORY_DAYS)
        self.leaves: dict[str, tuple[str, Leaf]] = {
            f"{top}-{leaf.slug}": (top, leaf) for top, _, group in CATALOGUE for leaf in group
        }
        self.products: list[_Product] = []
        self.by_leaf: dict[str, list[_Product]] = defaultdict(list)
        self.customers: list[_Customer] = []
        self.orders: list[_Order] = []
        self.events: list[_Event] = []
        # (warehouse code, product index) → [on_hand, safety_stock]
        self.stock: dict[tuple[str, int], list[int]] = {}
        self.carts: list[tuple[_Customer, datetime, list[_Product]]] = []
        self._sessions = 0

    # -- catalogue ------------------------------------------------------------------------

    def category_rows(self) -> list[tuple[Row, list[Row]]]:
        tree = []
        for position, (slug, name, group) in enumerate(CATALOGUE):
            top = {"name": name, "slug": slug, "description": f"{name}频道", "position": position}
            children = [
                {
                    "name": leaf.name,
                    "slug": f"{slug}-{leaf.slug}",
                    "description": f"{name} > {leaf.name}",
                    "position": i,
                }
                for i, leaf in enumerate(group)
            ]
            tree.append((top, children))
        return tree

    def plan_products(self, count: int) -> None:
        rng = self.rng
        top_names = {slug: name for slug, name, _ in CATALOGUE}
        slugs = list(self.leaves)
        for i in range(count):
            slug = slugs[i % len(slugs)]
            top, leaf = self.leaves[slug]
            brand, models = rng.choice(leaf.brands)
            model = rng.choice(models)
            attributes = {key: rng.choice(values) for key, values in leaf.attrs}
            variant = " ".join(attributes.values())
            name = " ".join(part for part in (brand, model, leaf.noun, variant) if part)
            low, high = leaf.price
            yuan = math.exp(rng.uniform(math.log(low), math.log(high)))
            if brand in PREMIUM_BRANDS:
                yuan = min(high, yuan * 1.4)
            elif brand in VALUE_BRANDS:
                yuan = max(low, yuan * 0.7)
            price = _shop_price(yuan)
            margin = rng.uniform(0.2, 0.6)
            tags = rng.sample(leaf.tags, k=min(len(leaf.tags), rng.randint(2, 3)))
            if rng.random() < 0.15:
                tags.append("包邮")
            if rng.random() < 0.1:
                created = self.as_of - timedelta(days=rng.uniform(3, 60))
                tags.append("新品")
            else:
                created = self.as_of - timedelta(days=rng.uniform(200, 900))
            description = (
                f"{brand} {model}{leaf.noun}，{'、'.join(tags[:2])}。"
                + "，".join(f"{k}：{v}" for k, v in attributes.items())
                + "。正品行货，全国联保，支持7天无理由退货。"
            )
            sku = f"{leaf.slug[:3].upper()}-{i + 1:05d}"
            title, body = product_search_text(
                name=name,
                brand=brand,
                sku=sku,
                description=description,
                tags=tags,
                category_names=[top_names[top], leaf.name],
                attributes=attributes,
            )
            row: Row = {
                "sku": sku,
                "name": name,
                "description": description,
                "brand": brand,
                "category_id": None,
                "tags": tags,
                "attributes": attributes,
                "price_amount": price,
                "cost_amount": round(price * (1 - margin)),
                "currency": "CNY",
                # A few discontinued items: still in old orders, no longer listed.
                "is_active": rng.random() > 0.02,
                "search_title": title,
                "search_body": body,
                "created_at": created,
                "updated_at": created,
            }
            product = _Product(row=row, leaf=leaf, top=top, index=i)
            self.products.append(product)
            self.by_leaf[slug].append(product)

    def plan_stock(self) -> None:
        rng = self.rng
        for product in self.products:
            price_yuan = product.row["price_amount"] / 100
            for code, _, kind, _, _, _ in WAREHOUSES:
                if kind is WarehouseKind.FORWARD and not product.leaf.daily:
                    continue
                if price_yuan < 100:
                    typical = rng.randint(150, 600)
                elif price_yuan < 1000:
                    typical = rng.randint(40, 250)
                else:
                    typical = rng.randint(8, 60)
                if kind is WarehouseKind.FORWARD:
                    typical = max(5, typical // 4)
                safety = max(2, typical // 8)
                roll = rng.random()
                if roll < 0.05:
                    on_hand = 0  # sold out (finish() tops it up to what open orders hold)
                elif roll < 0.13:
                    on_hand = rng.randint(1, max(1, safety - 1))  # below safety stock
                else:
                    on_hand = typical
                self.stock[(code, product.index)] = [on_hand, safety]

    # -- customers ------------------------------------------------------------------------

    def plan_customers(self, count: int, password_hash: str) -> None:
        rng = self.rng
        used_emails: set[str] = set()
        for _ in range(count):
            gender = "FEMALE" if rng.random() < 0.56 else "MALE"
            surname, surname_py = rng.choice(SURNAMES)
            given, given_py = rng.choice(GIVEN_NAMES[gender])
            age_band = _weighted(rng, AGE_BANDS)
            occupation = _weighted(rng, OCCUPATIONS)
            if age_band == "18-24" and rng.random() < 0.5:
                occupation = "学生"
            if occupation == "学生" and age_band not in ("18-24", "25-29"):
                occupation = "白领"
            if age_band == "50+" and rng.random() < 0.5:
                occupation = "退休"
            city = rng.choices(CITIES, weights=[c.weight for c in CITIES])[0]
            prefs = self._preferences(gender, age_band, occupation, city)

            email = ""
            while not email or email in used_emails:
                if rng.random() < 0.3:
                    local = str(rng.randint(10_000_000, 3_999_999_999))  # a QQ number
                else:
                    sep = rng.choice(("", ".", "_"))
                    local = f"{surname_py}{given_py}{sep}{rng.randint(1, 999)}"
                email = f"{local}@{rng.choice(EMAIL_DOMAINS)}"
            used_emails.add(email)
            phone = f"{rng.choice(PHONE_PREFIXES)}{rng.randint(0, 99_999_999):08d}"

            if prefs.lifecycle == "new":
                created = self.as_of - timedelta(days=rng.uniform(2, 45))
            else:
                created = self.history_start + timedelta(days=rng.uniform(-700, 20))
            start = max(created, self.history_start)
            end = self.as_of
            if prefs.lifecycle == "churning":
                # Active in the first half of the history, then quiet: the churn signal.
                end = start + (self.as_of - start) * rng.uniform(0.35, 0.55)

            favourite_tops = {self.leaves[c][0] for c in prefs.categories}
            tags: list[str] = []
            if occupation == "学生":
                tags.append("学生党")
            if "baby" in favourite_tops:
                tags.append("宝妈" if gender == "FEMALE" else "奶爸")
            if city.tier == 1:
                tags.append("一线城市")
            if prefs.lifecycle == "new":
                tags.append("新客")
            if prefs.channel == "mini_program":
                tags.append("小程序用户")
            # Declared interests say something, not everything, about what they buy.
            interests: list[str] = []
            for slug in prefs.categories:
                interest = INTERESTS[self.leaves[slug][0]]
                if rng.random() < 0.6 and interest not in interests:
                    interests.append(interest)
            interests += rng.sample(OTHER_INTERESTS, k=rng.randint(1, 3))

            row: Row = {
                "email": email,
                "password_hash": password_hash,
                "first_name": given,
                "last_name": surname,
                "phone": phone,
                "gender": gender,
                "age_band": age_band,
                "region": city.region,
                "city": city.name,
                "city_tier": city.tier,
                "occupation": occupation,
                "membership_tier": MembershipTier.STANDARD,
                "tags": tags,
                "interests": interests,
                "is_active": True,
                "created_at": created,
                "updated_at": created,
            }
            addresses = [self._address(surname + given, phone, city, created, home=True)]
            if rng.random() < 0.35:
                addresses.append(self._address(surname + given, phone, city, created, home=False))
            self.customers.append(
                _Customer(
                    row=row, city=city, addresses=addresses, prefs=prefs, start=start, end=end
                )
            )

    def _preferences(self, gender: str, age_band: str, occupation: str, city: City) -> Preferences:
        rng = self.rng
        family_age = age_band in ("25-29", "30-34", "35-39")
        affinity = {
            "digital": 2.5 if gender == "MALE" else 1.2,
            "computers": 2.0 if gender == "MALE" else 0.6,
            "appliances": 1.5 if age_band in ("30-34", "35-39", "40-49", "50+") else 0.6,
            "beauty": 3.0 if gender == "FEMALE" else 0.3,
            "food": 1.5,
            "baby": (4.0 if gender == "FEMALE" else 1.5) if family_age else 0.1,
            "apparel": 1.5,
            "home": 1.2 if age_band != "18-24" else 0.5,
        }
        # Only categories that have products (a small catalogue leaves some empty).
        slugs = [s for s in self.leaves if self.by_leaf[s]]
        weights = [affinity[self.leaves[s][0]] for s in slugs]
        favourites: list[str] = []
        for _ in range(rng.choices((1, 2, 3), weights=(35, 45, 20))[0]):
            pick = rng.choices(slugs, weights=weights)[0]
            if pick not in favourites:
                favourites.append(pick)
        brands = [rng.choice(self.leaves[slug][1].brands)[0] for slug in favourites]
        sensitivity = rng.betavariate(2, 2)
        if occupation in ("学生", "退休", "工人"):
            sensitivity += 0.25
        if city.tier >= 3:
            sensitivity += 0.15
        lifecycle = rng.choices(("loyal", "regular", "churning", "new"), weights=(25, 45, 15, 15))
        return Preferences(
            categories=favourites,
            brands=brands,
            price_sensitivity=round(min(1.0, sensitivity), 3),
            activity=rng.choices(("high", "medium", "low"), weights=(20, 50, 30))[0],
            lifecycle=lifecycle[0],
            strength=rng.uniform(0.72, 0.9),
            channel=rng.choices(CHANNELS, weights=(55, 30, 15))[0],
        )

    def _address(self, name: str, phone: str, city: City, at: datetime, *, home: bool) -> Row:
        rng = self.rng
        road = f"{rng.choice(ROADS)}{rng.randint(1, 2000)}号"
        if home:
            flat = f"{rng.randint(1, 32)}{rng.randint(1, 4):02d}室"
            street = f"{road}{rng.choice(COMMUNITIES)}{rng.randint(1, 30)}栋{rng.randint(1, 4)}单元{flat}"
        else:
            street = f"{road}{rng.choice(OFFICES)}{rng.randint(2, 40)}楼"
        return {
            "customer_id": None,
            "recipient_name": name,
            "phone": phone,
            "province": city.province,
            "city": city.name,
            "district": rng.choice(city.districts),
            "street": street,
            "postal_code": city.postal,
            "is_default": home,
            "created_at": at,
        }

    # -- behaviour and orders -------------------------------------------------------------

    def _pick_product(
        self, customer: _Customer, at: datetime, *, leaf: str | None = None
    ) -> _Product:
        """A product this customer would look at: mostly from their favourite categories and
        brands, at the price level they are comfortable with."""
        rng = self.rng
        prefs = customer.prefs
        if leaf is None:
            leaf = (
                rng.choice(prefs.categories)
                if rng.random() < prefs.strength
                else rng.choice([s for s in self.leaves if self.by_leaf[s]])
            )
        candidates = self.by_leaf[leaf]
        pool = [p for p in candidates if p.row["created_at"] <= at and p.row["is_active"]]
        pool = pool or candidates
        if rng.random() < 0.5:
            pool = [p for p in pool if p.row["brand"] in prefs.brands] or pool
        prices = sorted(p.row["price_amount"] for p in pool)
        median = prices[len(prices) // 2]
        exponent = 0.6 - 2.0 * prefs.price_sensitivity
        weights = [(p.row["price_amount"] / median) ** exponent for p in pool]
        return rng.choices(pool, weights=weights)[0]

    def _session_id(self) -> str:
        self._sessions += 1
        return f"s{self.seed:x}-{self._sessions:06d}"

    def _moment(self, customer: _Customer, *, recent: bool = False) -> datetime:
        """A time this customer shops at: evenings more than mornings."""
        rng = self.rng
        start, end = customer.start, customer.end
        if recent and end >= self.as_of - timedelta(days=3):
            start = max(start, self.as_of - timedelta(days=3))
        day = start + (end - start) * rng.random()
        hour = rng.choices(range(24), weights=EVENING_HOURS)[0]
        at = day.replace(hour=hour, minute=rng.randint(0, 59), second=rng.randint(0, 59))
        return min(max(at, customer.start), customer.end)

    def plan_orders(self, count: int) -> None:
        rng = self.rng
        if not self.customers:
            return
        activity = {"high": 4.0, "medium": 2.0, "low": 1.0}
        lifecycle = {"loyal": 2.5, "regular": 1.0, "churning": 0.8, "new": 0.5}
        # About one customer in eight only browses.
        weights = [
            0.0
            if rng.random() < 0.12
            else activity[c.prefs.activity] * lifecycle[c.prefs.lifecycle]
            for c in self.customers
        ]
        if not any(weights):
            weights = [1.0] * len(self.customers)
        owners = rng.choices(self.customers, weights=weights, k=count)
        # A few orders in the last days, so that open states (unpaid, picking, on the way) exist.
        moments = [
            (self._moment(c, recent=rng.random() < 0.06), i, c) for i, c in enumerate(owners)
        ]
        # Numbered in time order, as a shop numbers them.
        for seq, (placed, _, customer) in enumerate(sorted(moments, key=lambda m: m[:2]), start=1):
            self._order(seq, customer, placed)
        for customer in self.customers:
            self._browsing(customer)

    def _order(self, seq: int, customer: _Customer, placed: datetime) -> None:
        rng = self.rng
        chosen: list[_Product] = []
        for _ in range(rng.choices((1, 2, 3, 4), weights=(60, 25, 10, 5))[0]):
            if customer.bought and customer.prefs.lifecycle == "loyal" and rng.random() < 0.45:
                product = rng.choice(customer.bought)  # a loyal customer's repurchase
            elif customer.bought and rng.random() < 0.12:
                product = rng.choice(customer.bought)
            else:
                product = self._pick_product(customer, placed)
            if product not in chosen:
                chosen.append(product)
        customer.bought.extend(p for p in chosen if p.leaf.consumable or rng.random() < 0.2)

        # From the forward warehouse in the customer's city when it stocks everything ordered.
        warehouse = customer.city.rdc
        forward = FORWARD_BY_CITY.get(customer.city.name)
        if forward and all((forward, p.index) in self.stock for p in chosen):
            warehouse = forward

        lines: list[tuple[Row, _Product]] = []
        for product in chosen:
            quantity = (
                rng.choices((1, 2, 3), weights=(6, 3, 1))[0] if product.leaf.consumable else 1
            )
            price = product.row["price_amount"]
            line: Row = {
                "sku": product.row["sku"],
                "product_name": product.row["name"],
                "quantity": quantity,
                "base_unit_price_amount": price,
                "unit_price_amount": price,
                "line_total_amount": price * quantity,
                "adjustments": [],
            }
            lines.append((line, product))
        subtotal = sum(line["line_total_amount"] for line, _ in lines)
        shipping = 0 if subtotal >= FREE_SHIPPING_FROM else SHIPPING_FEE
        address = customer.addresses[0 if rng.random() < 0.8 else -1]
        snapshot = {k: address[k] for k in ("recipient_name", "phone", "province", "city")}
        snapshot |= {k: address[k] for k in ("district", "street", "postal_code")}
        row: Row = {
            "number": f"D{placed:%Y%m%d}{seq:06d}",
            "customer_id": None,
            "cart_id": None,
            "email": customer.row["email"],
            "status": OrderStatus.PENDING_PAYMENT,
            "currency": "CNY",
            "subtotal_amount": subtotal,
            "discount_amount": 0,
            "shipping_amount": shipping,
            "total_amount": subtotal + shipping,
            "adjustments": [],
            "shipping_address": snapshot,
            "placed_at": placed,
            "updated_at": placed,
            "paid_at": None,
            "cancelled_at": None,
        }
        order = _Order(row=row, customer=customer, warehouse=warehouse, lines=lines)
        self._lifecycle(order)
        self.orders.append(order)
        self._order_session(order)

    def _lifecycle(self, order: _Order) -> None:
        """Walk the order through its states up to ``as_of``: whatever lies in the future has
        not happened yet, which leaves recent orders in their open states."""
        rng = self.rng
        row = order.row
        placed: datetime = row["placed_at"]
        forward = order.warehouse.startswith("FDC")
        steps: list[tuple[datetime, OrderStatus, str]] = [
            (placed, OrderStatus.PENDING_PAYMENT, "用户下单")
        ]
        intent = rng.random()
        paid: datetime | None = None
        if intent < 0.05:
            # Never paid: cancelled automatically after 24 hours.
            steps.append(
                (placed + timedelta(hours=24), OrderStatus.CANCELLED, "超时未支付，自动取消")
            )
        else:
            delay = (
                timedelta(hours=rng.uniform(1, 20))
                if rng.random() < 0.15
                else timedelta(minutes=rng.uniform(1, 15))
            )
            paid = placed + delay
            steps.append((paid, OrderStatus.PAID, "支付成功"))
            picking = paid + timedelta(minutes=rng.uniform(5, 40 if forward else 360))
            steps.append((picking, OrderStatus.FULFILLING, "仓库拣货打包"))
            if intent < 0.07:
                cancelled = picking + timedelta(minutes=rng.uniform(10, 120))
                steps.append((cancelled, OrderStatus.CANCELLED, "用户申请取消，已退款"))
            else:
                shipped = picking + timedelta(
                    minutes=rng.uniform(10, 40) if forward else rng.uniform(120, 1440)
                )
                steps.append((shipped, OrderStatus.SHIPPED, "已发货"))
                delivered = shipped + self._transit(order)
                steps.append((delivered, OrderStatus.DELIVERED, "已签收"))
                if rng.random() < 0.9:
                    confirmed = delivered + timedelta(days=rng.uniform(0.2, 7))
                    steps.append((confirmed, OrderStatus.COMPLETED, "用户确认收货"))
                else:
                    confirmed = delivered + timedelta(days=10)
                    steps.append((confirmed, OrderStatus.COMPLETED, "系统自动确认收货"))

        happened = [s for s in steps if s[0] <= self.as_of]
        previous: OrderStatus | None = None
        for at, status, note in happened:
            # The customer places and cancels unpaid orders; the rest is the shop's doing.
            by_customer = status is OrderStatus.PENDING_PAYMENT or note.startswith("用户")
            order.changes.append(
                {"from_status": previous, "to_status": status, "note": note, "at": at}
                | {"actor": CUSTOMER_ACTOR if by_customer else "system"}
            )
            previous = status
        last_at, status, _ = happened[-1]
        row["status"] = status
        row["updated_at"] = last_at
        if status is OrderStatus.CANCELLED:
            row["cancelled_at"] = last_at
        if paid is not None and paid <= self.as_of:
            row["paid_at"] = paid
            refunded = status is OrderStatus.CANCELLED
            order.payment = {
                "gateway": "manual",
                "amount": row["total_amount"],
                "currency": row["currency"],
                "status": PaymentStatus.REFUNDED if refunded else PaymentStatus.CAPTURED,
                "reference": f"MANUAL-{row['number']}",
                "message": "已原路退款" if refunded else "",
                "created_at": paid,
            }
        when = {s: at for at, s, _ in steps}
        if OrderStatus.SHIPPED in when and when[OrderStatus.SHIPPED] <= self.as_of:
            self._shipment(order, when[OrderStatus.SHIPPED], when[OrderStatus.DELIVERED])

    def _transit(self, order: _Order) -> timedelta:
        rng = self.rng
        if order.warehouse.startswith("FDC"):
            return timedelta(minutes=rng.uniform(30, 180))
        if WAREHOUSE_CITY[order.warehouse] == order.customer.city.name:
            return timedelta(hours=rng.uniform(8, 30))
        if WAREHOUSE_REGION[order.warehouse] == order.customer.city.region:
            return timedelta(hours=rng.uniform(20, 50))
        return timedelta(hours=rng.uniform(36, 100))

    def _shipment(self, order: _Order, shipped: datetime, delivered: datetime) -> None:
        rng = self.rng
        forward = order.warehouse.startswith("FDC")
        if forward:
            carrier = rng.choice(("京东物流", "顺丰速运"))
            promise = timedelta(hours=3)  # 前置仓: within hours
        else:
            carrier = rng.choices(CARRIERS, weights=(30, 25, 20, 15, 10))[0]
            near = order.customer.city.region == WAREHOUSE_REGION[order.warehouse]
            promise = timedelta(hours=48 if near else 72)
        tracking_number = {
            "顺丰速运": f"SF{rng.randint(10**12, 10**13 - 1)}",
            "京东物流": f"JDVA{rng.randint(10**10, 10**11 - 1)}",
            "中通快递": f"7{rng.randint(10**12, 10**13 - 1)}",
            "圆通速递": f"YT{rng.randint(10**12, 10**13 - 1)}",
            "EMS": f"1{rng.randint(10**11, 10**12 - 1)}",
        }[carrier]
        origin = WAREHOUSE_CITY[order.warehouse]
        dest = order.customer.city.name
        district = order.row["shipping_address"]["district"]
        span = delivered - shipped
        hub = "前置仓" if forward else "转运中心"
        timeline = [
            (shipped, ShipmentStatus.CREATED, f"{carrier}已揽收", origin),
            (shipped + span * 0.1, ShipmentStatus.IN_TRANSIT, f"快件已从{origin}{hub}发出", origin),
        ]
        if dest != origin:
            timeline.append(
                (shipped + span * 0.7, ShipmentStatus.IN_TRANSIT, f"快件已到达{dest}转运中心", dest)
            )
        courier = f"1{rng.randint(3, 9)}{rng.randint(0, 999_999_999):09d}"
        out = f"【{district}】快递员正在派送，联系电话{courier}"
        timeline.append(
            (shipped + span * 0.85, ShipmentStatus.OUT_FOR_DELIVERY, out, dest + district)
        )
        signer = rng.choice(("本人", "快递柜", "驿站", "前台", "家人"))
        timeline.append(
            (delivered, ShipmentStatus.DELIVERED, f"已签收，签收人：{signer}", dest + district)
        )
        seen = [t for t in timeline if t[0] <= self.as_of]
        status = seen[-1][1]
        if status is ShipmentStatus.IN_TRANSIT and rng.random() < 0.15:
            # A delayed parcel: an exception for the logistics team to follow up.
            at = min(self.as_of, seen[-1][0] + timedelta(hours=6))
            seen.append((at, ShipmentStatus.EXCEPTION, "受天气影响，快件延误", seen[-1][3]))
            status = ShipmentStatus.EXCEPTION
        order.shipment = {
            "order_id": None,
            "warehouse_id": None,
            "carrier": carrier,
            "tracking_number": tracking_number,
            "status": status,
            "promised_at": shipped + promise,
            "shipped_at": shipped,
            "delivered_at": delivered if status is ShipmentStatus.DELIVERED else None,
            "created_at": shipped,
            "updated_at": seen[-1][0],
        }
        order.tracking = [
            {
                "status": st,
                "description": text,
                "location": where,
                "occurred_at": at,
                "created_at": at,
            }
            for at, st, text, where in seen
        ]

    def _search_query(self, product: _Product) -> str:
        row, leaf = product.row, product.leaf
        model = row["name"].removeprefix(f"{row['brand']} ").split(" ")[0]
        return self.rng.choice((leaf.name, f"{row['brand']}{leaf.name}", f"{row['brand']} {model}"))

    def _order_session(self, order: _Order) -> None:
        """The shopping path that ended in this order: search, views, favourite, cart, buy."""
        rng = self.rng
        customer = order.customer
        placed: datetime = order.row["placed_at"]
        sid = self._session_id()
        t = max(customer.row["created_at"], placed - timedelta(minutes=rng.uniform(5, 90)))
        step = (placed - t) / 12
        events = self.events
        if rng.random() < 0.6:
            query = self._search_query(order.lines[0][1])
            events.append(_Event(customer, CustomerEventKind.SEARCH, t, sid, query=query))
        t += step
        for _, product in order.lines:
            # Compared with an alternative or two from the same category before deciding.
            for _ in range(rng.randint(0, 2)):
                alt = self._pick_product(customer, placed, leaf=category_slug(product))
                events.append(_Event(customer, CustomerEventKind.VIEW, t, sid, product=alt))
                t += step / 2
            events.append(_Event(customer, CustomerEventKind.VIEW, t, sid, product=product))
            t += step / 2
            if rng.random() < 0.15:
                events.append(_Event(customer, CustomerEventKind.FAVORITE, t, sid, product=product))
            events.append(_Event(customer, CustomerEventKind.ADD_TO_CART, t, sid, product=product))
            t += step / 2
        for line, product in order.lines:
            events.append(
                _Event(
                    customer,
                    CustomerEventKind.PURCHASE,
                    placed,
                    sid,
                    product=product,
                    order=order,
                    quantity=line["quantity"],
                )
            )

    def _browsing(self, customer: _Customer) -> None:
        """Visits that bought nothing: browsing, searching, favourites, abandoned carts."""
        rng = self.rng
        events = self.events
        base = {"high": 24, "medium": 10, "low": 4}[customer.prefs.activity]
        span_days = max(1.0, (customer.end - customer.start).total_seconds() / 86400)
        sessions = max(1, round(base * min(1.0, span_days / HISTORY_DAYS) * rng.uniform(0.7, 1.3)))
        last_cart: tuple[datetime, list[_Product]] | None = None
        for at in sorted(self._moment(customer) for _ in range(sessions)):
            sid = self._session_id()
            t = at
            if rng.random() < 0.05:
                query = rng.choice(NO_RESULT_QUERIES)  # a search that finds nothing
                events.append(_Event(customer, CustomerEventKind.SEARCH, t, sid, query=query))
                continue
            product = self._pick_product(customer, at)
            if rng.random() < 0.4:
                query = self._search_query(product)
                events.append(_Event(customer, CustomerEventKind.SEARCH, t, sid, query=query))
                t += timedelta(seconds=rng.randint(5, 60))
            carted: list[_Product] = []
            for i in range(rng.randint(1, 5)):
                viewed = (
                    product
                    if i == 0
                    else self._pick_product(customer, at, leaf=category_slug(product))
                )
                events.append(_Event(customer, CustomerEventKind.VIEW, t, sid, product=viewed))
                t += timedelta(seconds=rng.randint(20, 300))
                if rng.random() < 0.08:
                    events.append(
                        _Event(customer, CustomerEventKind.FAVORITE, t, sid, product=viewed)
                    )
                if rng.random() < 0.12 and viewed not in carted:
                    events.append(
                        _Event(customer, CustomerEventKind.ADD_TO_CART, t, sid, product=viewed)
                    )
                    carted.append(viewed)
            if carted:
                last_cart = (t, carted)
        if last_cart is not None and rng.random() < 0.6:
            self.carts.append((customer, last_cart[0], last_cart[1]))

    def finish(self) -> None:
        """Derive what follows from the plan: membership tiers, value tags, stock on hand."""
        spend: Counter[int] = Counter()
        orders_of: Counter[int] = Counter()
        for order in self.orders:
            if order.row["status"] is not OrderStatus.CANCELLED:
                spend[id(order.customer)] += order.row["total_amount"]
                orders_of[id(order.customer)] += 1
        for customer in self.customers:
            total = spend[id(customer)]
            if total >= 2_000_000:
                tier = MembershipTier.PLATINUM
            elif total >= 800_000:
                tier = MembershipTier.GOLD
            elif total >= 200_000:
                tier = MembershipTier.SILVER
            else:
                tier = MembershipTier.STANDARD
            customer.row["membership_tier"] = tier
            if orders_of[id(customer)] >= 4:
                customer.row["tags"].append("复购用户")
            if total >= 2_000_000:
                customer.row["tags"].append("高价值")
            if customer.prefs.price_sensitivity > 0.7:
                customer.row["tags"].append("价格敏感")
        # Open orders hold stock: there is always at least that much on hand.
        for key, quantity in self.reserved().items():
            level = self.stock[key]
            level[0] = max(level[0], quantity)

    def reserved(self) -> dict[tuple[str, int], int]:
        """Stock held by open orders, per (warehouse, product index)."""
        held: Counter[tuple[str, int]] = Counter()
        for order in self.orders:
            if order.row["status"] in OPEN_STATUSES:
                for line, product in order.lines:
                    held[(order.warehouse, product.index)] += line["quantity"]
        return dict(held)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def demo_password_hash(seed: int) -> str:
    """One argon2 hash of the demo password for every demo account (hashing is slow on
    purpose). Its salt comes from the seed, so that the rows stay reproducible."""
    salt = random.Random(f"salt-{seed}").randbytes(16)
    return PasswordHasher().hash(DEMO_PASSWORD, salt=salt)


async def has_products(session: AsyncSession) -> bool:
    return bool(await session.scalar(select(func.count()).select_from(Product)))


async def _insert(session: AsyncSession, model: Any, rows: list[Row], *key: str) -> None:
    """Insert ``rows`` into ``model``'s table in multi-row statements.

    A Core INSERT on the model's table, not an ORM bulk insert: the ORM leaves out columns
    whose value is None, so rows that differ in which columns are None (every behaviour event)
    would be split into tiny batches. With ``key`` (columns that tell the rows apart), the new
    ids are read back by key and written into ``rows``: asking for RETURNING rows in parameter
    order would make SQLite insert one row per statement, and a plain RETURNING promises no
    order.
    """
    if not rows:
        return
    table = model.__table__
    # Columns added to a model later get the model's default rather than failing NOT NULL.
    for name, info in model.model_fields.items():
        if name != "id" and name in table.c and name not in rows[0]:
            default = info.get_default(call_default_factory=True)
            for row in rows:
                row.setdefault(name, default)
    if not key:
        await session.execute(insert(table), rows)
        return
    stmt = insert(table).returning(table.c.id, *(table.c[k] for k in key))
    ids = {tuple(found[1:]): found[0] for found in (await session.execute(stmt, rows)).all()}
    for row in rows:
        row["id"] = ids[tuple(row[k] for k in key)]


async def populate(
    session: AsyncSession,
    *,
    customers: int = 200,
    products: int = 300,
    orders: int = 600,
    seed: int = 2024,
    as_of: datetime,
    progress: Progress | None = None,
) -> DemoReport:
    """Plan a shop from ``seed`` and write it in the session's transaction (not committed).

    ``progress`` (of :data:`POPULATE_STEPS` steps) hears of each planned part and each table
    written.
    """
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    if products < 1 or customers < 0 or orders < 0:
        raise ValueError("need at least one product, and no negative counts")
    if orders and not customers:
        raise ValueError("orders need customers")

    def step(what: str) -> None:
        if progress is not None:
            progress.advance(what)

    plan = _Planner(seed, as_of)
    tree = plan.category_rows()
    plan.plan_products(products)
    plan.plan_stock()
    step("planned the catalogue")
    password_hash = demo_password_hash(seed)
    plan.plan_customers(customers, password_hash)
    step("planned the customers")
    plan.plan_orders(orders)
    plan.finish()
    step("planned the orders and behaviour")

    await mark_write(session)
    tops = [top for top, _ in tree]
    await _insert(session, Category, tops, "slug")
    step(f"wrote {Category.__tablename__}")
    leaves: dict[str, Row] = {}
    for top, kids in tree:
        for kid in kids:
            kid["parent_id"] = top["id"]
            leaves[kid["slug"]] = kid
    await _insert(session, Category, list(leaves.values()), "slug")
    step(f"wrote {Category.__tablename__}")
    for p in plan.products:
        p.row["category_id"] = leaves[category_slug(p)]["id"]
    await _insert(session, Product, [p.row for p in plan.products], "sku")
    step(f"wrote {Product.__tablename__}")

    warehouses = {
        code: {"code": code, "name": name, "kind": kind, "region": region}
        | {"province": province, "city": city, "is_active": True}
        for code, name, kind, region, province, city in WAREHOUSES
    }
    await _insert(session, Warehouse, list(warehouses.values()), "code")
    step(f"wrote {Warehouse.__tablename__}")
    reserved = plan.reserved()
    stock = [
        {
            "warehouse_id": warehouses[code]["id"],
            "product_id": plan.products[index].row["id"],
            "on_hand": on_hand,
            "reserved": reserved.get((code, index), 0),
            "safety_stock": safety,
        }
        for (code, index), (on_hand, safety) in plan.stock.items()
    ]
    await _insert(session, StockLevel, stock)
    step(f"wrote {StockLevel.__tablename__}")

    await _insert(session, Customer, [c.row for c in plan.customers], "email")
    step(f"wrote {Customer.__tablename__}")
    for c in plan.customers:
        for address in c.addresses:
            address["customer_id"] = c.row["id"]
    addresses = [a for c in plan.customers for a in c.addresses]
    await _insert(session, Address, addresses)
    step(f"wrote {Address.__tablename__}")

    for o in plan.orders:
        o.row["customer_id"] = o.customer.row["id"]
    await _insert(session, Order, [o.row for o in plan.orders], "number")
    step(f"wrote {Order.__tablename__}")
    lines = []
    for o in plan.orders:
        for line, product in o.lines:
            line |= {"order_id": o.row["id"], "product_id": product.row["id"]}
            line["warehouse_id"] = warehouses[o.warehouse]["id"]
            lines.append(line)
    # An order holds each product once: (order, product) tells its lines apart.
    await _insert(session, OrderLine, lines, "order_id", "product_id")
    step(f"wrote {OrderLine.__tablename__}")
    changes = [
        ch
        | {"order_id": o.row["id"]}
        | ({"actor": f"customer:{o.row['customer_id']}"} if ch["actor"] == CUSTOMER_ACTOR else {})
        for o in plan.orders
        for ch in o.changes
    ]
    await _insert(session, OrderStatusChange, changes)
    step(f"wrote {OrderStatusChange.__tablename__}")
    payments = [o.payment | {"order_id": o.row["id"]} for o in plan.orders if o.payment]
    await _insert(session, Payment, payments)
    step(f"wrote {Payment.__tablename__}")

    shipped = [o for o in plan.orders if o.shipment is not None]
    shipments: list[Row] = []
    for o in shipped:
        assert o.shipment is not None
        o.shipment["order_id"] = o.row["id"]
        o.shipment["warehouse_id"] = warehouses[o.warehouse]["id"]
        shipments.append(o.shipment)
    await _insert(session, Shipment, shipments, "order_id")
    step(f"wrote {Shipment.__tablename__}")
    shipment_lines = [
        {"shipment_id": s["id"], "order_line_id": line["id"], "quantity": line["quantity"]}
        for o, s in zip(shipped, shipments, strict=True)
        for line, _ in o.lines
    ]
    await _insert(session, ShipmentLine, shipment_lines)
    step(f"wrote {ShipmentLine.__tablename__}")
    tracking = [
        t | {"shipment_id": s["id"]}
        for o, s in zip(shipped, shipments, strict=True)
        for t in o.tracking
    ]
    await _insert(session, TrackingEvent, tracking)
    step(f"wrote {TrackingEvent.__tablename__}")

    events = [
        {
            "customer_id": e.customer.row["id"],
            "session_id": e.session_id,
            "kind": e.kind,
            "product_id": e.product.row["id"] if e.product else None,
            "order_id": e.order.row["id"] if e.order else None,
            "query": e.query,
            "quantity": e.quantity,
            "data": {"channel": e.customer.prefs.channel},
            "occurred_at": e.at,
        }
        for e in sorted(plan.events, key=lambda e: (e.at, e.session_id))
    ]
    await _insert(session, CustomerEvent, events)
    step(f"wrote {CustomerEvent.__tablename__}")

    carts = [
        {
            "token": f"demo-{seed:x}-{i:05d}-{plan.rng.getrandbits(64):016x}",
            "customer_id": customer.row["id"],
            "email": customer.row["email"],
            "currency": "CNY",
            "status": CartStatus.ACTIVE,
            "shipping_address": None,
            "created_at": at,
            "updated_at": at,
        }
        for i, (customer, at, _) in enumerate(plan.carts)
    ]
    await _insert(session, Cart, carts, "token")
    step(f"wrote {Cart.__tablename__}")
    cart_lines = [
        {"cart_id": cart["id"], "product_id": p.row["id"], "quantity": 1}
        for cart, (_, _, items) in zip(carts, plan.carts, strict=True)
        for p in items
    ]
    await _insert(session, CartLine, cart_lines)
    step(f"wrote {CartLine.__tablename__}")

    staff_email: str | None = None
    if not await session.scalar(select(func.count()).select_from(StaffUser)):
        staff_email = DEMO_STAFF_EMAIL
        staff = {"email": DEMO_STAFF_EMAIL, "password_hash": password_hash, "name": "店长（演示）"}
        staff |= {"role": StaffRole.ADMIN, "is_active": True, "created_at": plan.history_start}
        await _insert(session, StaffUser, [staff])
    step("staff user")

    counts = {
        "categories": len(tops) + len(leaves),
        "products": len(plan.products),
        "warehouses": len(warehouses),
        "stock levels": len(stock),
        "customers": len(plan.customers),
        "addresses": len(addresses),
        "orders": len(plan.orders),
        "order lines": len(lines),
        "order status changes": len(changes),
        "payments": len(payments),
        "shipments": len(shipments),
        "tracking events": len(tracking),
        "behaviour events": len(events),
        "carts": len(carts),
    }
    # The demo login: the loyal customer with the longest history.
    orders_of = Counter(id(o.customer) for o in plan.orders)
    demo = max(
        plan.customers,
        key=lambda c: (c.prefs.lifecycle == "loyal", orders_of[id(c)]),
        default=None,
    )
    return DemoReport(
        seed=seed,
        as_of=as_of,
        counts=counts,
        demo_email=demo.row["email"] if demo else "",
        demo_password=DEMO_PASSWORD,
        staff_email=staff_email,
        preferences={c.row["email"]: c.prefs for c in plan.customers},
    )


# Three planning steps, one per table written and one for the staff user (made or kept).
POPULATE_STEPS = 21


def default_as_of() -> datetime:
    """Midnight (UTC) today: a demo shop's history ends when it is made, so that "last 30
    days", recency and churn read naturally. Pass an explicit date for identical rows."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


async def load(
    database_url: str,
    *,
    customers: int = 200,
    products: int = 300,
    orders: int = 600,
    seed: int = 2024,
    as_of: datetime | None = None,
    if_empty: bool = False,
    progress: Progress | None = None,
) -> DemoReport | None:
    """Fill the (migrated) database at ``database_url`` and commit.

    Returns None when ``if_empty`` and the shop already has products; raises ``ValueError``
    for a shop that has products otherwise (demo rows would collide with real ones).
    """
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            await mark_write(session)
            if await has_products(session):
                if if_empty:
                    return None
                raise ValueError(
                    "the database already has products: demo data goes into an empty shop "
                    "(--if-empty leaves a populated shop alone)"
                )
            report = await populate(
                session,
                customers=customers,
                products=products,
                orders=orders,
                seed=seed,
                as_of=as_of or default_as_of(),
                progress=progress,
            )
            await session.commit()
            return report
    finally:
        await engine.dispose()
