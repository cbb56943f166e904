"""Demo data: who the shop's customers are — names (with their pinyin, for e-mail addresses),
age bands, occupations and interests with their weights, phone prefixes, and when and where
people shop. Literal data only."""

from __future__ import annotations

# fmt: off
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
EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
PHONE_PREFIXES = ("134", "135", "136", "138", "139", "150", "152", "158", "166", "177", "182",
                  "186", "187", "188", "191", "199")
NO_RESULT_QUERIES = ("宠物猫粮", "二手相机", "汽车脚垫", "钓鱼竿", "尤克里里", "露营帐篷")
CHANNELS = ("app", "mini_program", "web")
EVENING_HOURS = (1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 5, 6, 7, 5, 5, 5, 5, 6, 7, 9, 10, 10, 8, 4)
# fmt: on
