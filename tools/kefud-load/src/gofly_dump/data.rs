//! The fixed texts the generator draws from: go-fly's settings, agents' names, cities and IP
//! ranges, go-fly's emoji names, message texts by sender and language, attachments, months
//! and canned replies.
//!
//! Invariants: constants only. Texts for go-fly's `utf8` (3-byte) tables hold no 4-byte
//! characters (only messages, `utf8mb4`, carry emoji); `{n}` in a message text stands for a
//! number.

/// (conf_name, conf_key, English value, Chinese value), as go-fly's import.sql seeds them.
pub(super) const CONFIG_KEYS: &[(&str, &str, &str, &str)] = &[
    (
        "Announcement",
        "AllNotice",
        "Open source customer support system at your service",
        "开源客服系统为您服务",
    ),
    (
        "Offline Message",
        "OfflineMessage",
        "I am currently offline and will reply to you later!",
        "我暂时离线，留言后稍后回复您！",
    ),
    (
        "Welcome Message",
        "WelcomeMessage",
        "How may I help you?",
        "您好，请问有什么可以帮您？",
    ),
    (
        "Email Address (SMTP)",
        "NoticeEmailSmtp",
        "",
        "smtp.qq.com:465",
    ),
    ("Email Account", "NoticeEmailAddress", "", "kefu@example.cn"),
    (
        "Email Password (SMTP)",
        "NoticeEmailPassword",
        "",
        "p@ss'word\\1",
    ),
];

pub(super) const AGENT_NAMES: &[&str] = &[
    "kefu", "lina", "xiaowang", "emma", "zhangwei", "support", "liuyang", "tom", "chenjing",
];

/// Agents' nicknames; `user` is utf8 (3-byte), so no emoji here.
pub(super) const AGENT_NICKNAMES: &[&str] = &[
    "小王",
    "客服-李娜",
    "Emma (Support)",
    "售后 张伟",
    "Tom \"the fixer\"",
    "陈静 | 前台",
    "O'Neil",
    "在线客服",
];

pub(super) struct City {
    pub(super) chinese: &'static str,
    pub(super) english: &'static str,
}

pub(super) const CITIES: &[City] = &[
    City {
        chinese: "北京",
        english: "China Beijing",
    },
    City {
        chinese: "上海",
        english: "China Shanghai",
    },
    City {
        chinese: "广州",
        english: "China Guangzhou",
    },
    City {
        chinese: "深圳",
        english: "China Shenzhen",
    },
    City {
        chinese: "杭州",
        english: "China Hangzhou",
    },
    City {
        chinese: "成都",
        english: "China Chengdu",
    },
    City {
        chinese: "武汉",
        english: "China Wuhan",
    },
    City {
        chinese: "西安",
        english: "China Xi'an",
    },
    City {
        chinese: "香港",
        english: "Hong Kong",
    },
    City {
        chinese: "台北",
        english: "Taiwan Taipei",
    },
    City {
        chinese: "新加坡",
        english: "Singapore",
    },
    City {
        chinese: "洛杉矶",
        english: "United States Los Angeles",
    },
    City {
        chinese: "伦敦",
        english: "United Kingdom London",
    },
    City {
        chinese: "",
        english: "",
    },
];

pub(super) const IP_FIRST_OCTETS: &[u8] = &[
    36, 39, 42, 58, 59, 60, 61, 101, 106, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120,
    121, 122, 123, 124, 125, 171, 175, 180, 182, 183, 202, 210, 211, 218, 219, 220, 221, 222, 223,
];

/// go-fly's emoji names (static/js/functions.js `faceTitles`, without brackets).
pub(super) const FACES: &[&str] = &[
    "微笑",
    "嘻嘻",
    "哈哈",
    "可爱",
    "可怜",
    "挖鼻",
    "吃惊",
    "害羞",
    "挤眼",
    "闭嘴",
    "鄙视",
    "爱你",
    "泪",
    "偷笑",
    "亲亲",
    "生病",
    "太开心",
    "白眼",
    "右哼哼",
    "左哼哼",
    "嘘",
    "衰",
    "委屈",
    "吐",
    "哈欠",
    "抱抱",
    "怒",
    "疑问",
    "馋嘴",
    "拜拜",
    "思考",
    "汗",
    "困",
    "睡",
    "钱",
    "失望",
    "酷",
    "色",
    "哼",
    "鼓掌",
    "晕",
    "悲伤",
    "抓狂",
    "黑线",
    "阴险",
    "怒骂",
    "互粉",
    "心",
    "伤心",
    "猪头",
    "熊猫",
    "兔子",
    "ok",
    "耶",
    "good",
    "NO",
    "赞",
    "来",
    "弱",
    "草泥马",
    "神马",
    "囧",
    "浮云",
    "给力",
    "围观",
    "威武",
    "奥特曼",
    "礼物",
    "钟",
    "话筒",
    "蜡烛",
    "蛋糕",
];

pub(super) const EMOJI: &[&str] = &["😀", "😂", "👍", "🙏", "❤️", "😊", "🎉", "🤔", "😭", "👌"];

// Message texts; `{n}` stands for a number.

pub(super) const VISITOR_ENGLISH: &[&str] = &[
    "Hello",
    "Hi, is anyone there?",
    "How much is the shipping to Canada?",
    "I placed order #{n} yesterday but haven't received a confirmation email.",
    "Can I change the delivery address?",
    "The app keeps crashing when I open the cart",
    "Do you have this in size M?",
    "Where is my refund? It's been {n} days.",
    "Is the price on the website correct?",
    "Can I pay with PayPal?",
];

pub(super) const VISITOR_CHINESE: &[&str] = &[
    "你好",
    "在吗？",
    "这个产品有现货吗",
    "我的订单号是{n}，什么时候发货？",
    "可以开发票吗",
    "运费怎么算",
    "怎么退款啊",
    "客服你好，我想咨询一下价格",
    "收到了，质量很好",
    "能便宜点吗？买{n}件",
];

pub(super) const KEFU_ENGLISH: &[&str] = &[
    "Hello! How may I help you?",
    "Let me check that for you.",
    "Your order #{n} was shipped today, tracking number SF{n}.",
    "Sorry for the wait.",
    "Is there anything else I can help with?",
    "We offer free shipping on orders over ${n}.",
];

pub(super) const KEFU_CHINESE: &[&str] = &[
    "您好，请问有什么可以帮您？",
    "亲，稍等一下，我帮您查询",
    "已经为您登记了，请耐心等待",
    "您的订单已发货，单号：SF{n}",
    "不客气，祝您生活愉快！",
    "满{n}元包邮哦",
];

pub(super) const SHORT: &[&str] = &[
    "ok",
    "好的",
    "谢谢",
    "?",
    "嗯嗯",
    "thanks",
    "👍",
    "收到",
    "Thank you!",
];

/// Texts that need escaping: quotes, backslashes, tabs, newlines.
pub(super) const AWKWARD: &[&str] = &[
    "He said \"it's broken\" and left",
    "path: C:\\Users\\kefu\\Desktop\\订单.xlsx",
    "line one\nline two\n\tindented line three",
    "Order details:\n- item A x2\n- item B x1\nTotal: ¥{n}",
    "It's the 'blue' one, not the \"red\" one",
    "regex? ^\\d{3}-\\d{4}$ \\\\ done",
    "tab\tseparated\tvalues\t{n}",
    "SELECT * FROM orders WHERE id = '{n}'; -- is this safe?",
    "50% off_today only\\",
    "Windows line\r\nending",
];

pub(super) const LONG_PARTS: &[&str] = &[
    "I bought this for my mother last month.",
    "我上个月给我妈妈买的。",
    "The color is a bit different from the photos, but the quality is fine.",
    "颜色和图片有点不一样，但是质量还可以。",
    "Could you tell me how to return it if she does not like it?",
    "如果她不喜欢，可以退货吗？",
    "Also, the second package has not arrived yet.",
    "另外，第二个包裹还没有到。",
];

pub(super) const ATTACHMENTS: &[(&str, &str)] = &[
    ("报价单", ".xlsx"),
    ("invoice", ".pdf"),
    ("screenshot 2020", ".zip"),
    ("合同-final", ".docx"),
    ("log", ".txt"),
];

pub(super) const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// (group name, [(item name, content)]) for canned replies; `reply_item` is utf8 (3-byte).
pub(super) type ReplyGroup = (&'static str, &'static [(&'static str, &'static str)]);

pub(super) const REPLY_GROUPS: &[ReplyGroup] = &[
    (
        "Frequently Asked Questions",
        &[
            ("Shipping", "Shipping takes 3-5 business days.\tThank you!"),
            (
                "Returns",
                "You can return any item within 30 days.\nPlease keep the receipt.",
            ),
            ("Hours", "We're online 9:00-18:00, Monday to Friday."),
        ],
    ),
    (
        "常见问题",
        &[
            (
                "营业时间",
                "您好，我们的营业时间是周一至周五 9:00-18:00\n周末休息",
            ),
            (
                "退货地址",
                "退货请寄到：上海市浦东新区XX路88号 \"售后部\" 收",
            ),
            ("发票", "发票会在发货后 3 个工作日内开具"),
            ("优惠", "满99元包邮，新客首单立减10元"),
        ],
    ),
    (
        "售后",
        &[
            ("换货", "亲，换货请在订单页面点击'申请售后'"),
            (
                "驱动下载",
                "驱动下载：C:\\Program Files\\Driver\\setup.exe 或官网",
            ),
        ],
    ),
];
