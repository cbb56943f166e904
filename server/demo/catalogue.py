"""Demo data: the catalogue — categories, their brands and models, attributes and tags, and
how brands position their prices. Literal data only; the planner draws products from it."""

from __future__ import annotations

from dataclasses import dataclass


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

# Every leaf category under its slug (``<top>-<leaf>``), with its top category's slug.
LEAVES: dict[str, tuple[str, Leaf]] = {
    f"{top}-{leaf.slug}": (top, leaf) for top, _, group in CATALOGUE for leaf in group
}


@dataclass(frozen=True)
class Axis:
    """An option axis the products of a leaf are sold in (their variants)."""

    name: str
    values: tuple[str, ...]
    pick: int = 0  # how many of the values one product offers (0: all of them)
    steps: tuple[float, ...] = ()  # price factor of each value (none: one price for all)
    codes: tuple[str, ...] = ()  # each value's part of a variant's SKU (none: the value)

    def code(self, value: str) -> str:
        return self.codes[self.values.index(value)] if self.codes else value

    def step(self, value: str) -> float:
        return self.steps[self.values.index(value)] if self.steps else 1.0


# Leaves whose products come in variants: phones by storage (dearer the more) and colour,
# clothes by size and colour, shoes by EU size (and colour). Other products have one SKU.
VARIANT_AXES: dict[str, tuple[Axis, ...]] = {
    "phones": (
        Axis(
            "容量", ("128GB", "256GB", "512GB"), steps=(1.0, 1.17, 1.4), codes=("128", "256", "512")
        ),
        Axis("颜色", COLOURS, pick=3, codes=("BK", "WH", "BL", "PU", "GN")),
    ),
    "menswear": (
        Axis("尺码", ("S", "M", "L", "XL")),
        Axis("颜色", ("黑色", "藏青", "灰色", "卡其"), pick=2, codes=("BK", "NV", "GY", "KH")),
    ),
    "womenswear": (
        Axis("尺码", ("S", "M", "L", "XL")),
        Axis("颜色", ("米白", "杏色", "黑色", "雾霾蓝"), pick=2, codes=("IV", "AP", "BK", "BL")),
    ),
    "sneakers": (
        Axis("尺码", ("39", "40", "41", "42", "43", "44")),
        Axis("颜色", ("白色", "黑色"), pick=1, codes=("WH", "BK")),
    ),
}
