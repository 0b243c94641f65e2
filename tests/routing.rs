//! Smart routing end to end, on the real binary: a knowledge base imported from the CLI and
//! the API, the bot answering in Chinese, a customer asking for a person and being assigned to
//! the least-loaded online agent of the right team, the queue surviving a restart, summaries
//! and the response-time report.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const KB: &str = r#"{"intent":"returns","text":"我要退货","answer":"30天内凭小票可以退货。","team":"after-sales"}
{"intent":"returns","text":"这个东西怎么退","team":"after-sales"}
{"intent":"returns","text":"how do I return an item"}
{"intent":"hours","text":"营业时间是几点","answer":"每天早上9点到晚上9点营业。"}
{"intent":"hours","text":"你们几点开门"}
{"intent":"complaint","text":"我要投诉你们的服务","team":"managers"}
"#;

struct Api {
    c: Client,
    base: String,
    token: String,
}

impl Api {
    async fn login(d: &TestDaemon, name: &str, password: &str) -> Api {
        Api {
            c: Client::new(),
            base: d.http(""),
            token: login(d, name, password).await,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .c
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let (s, v) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }

    async fn me(&self) -> u64 {
        self.get("/api/v1/me").await["id"].as_u64().unwrap()
    }
}

/// A visitor who sends one message and keeps the socket to see the replies; also returns
/// the frames that arrived before the ack (the echo and a bot answer may beat it).
async fn visitor_with_frames(d: &TestDaemon, id: &str, text: &str) -> (Ws, Vec<Value>) {
    let mut ws = connect(&d.ws(&format!("/ws/visitor?visitor_id={id}"))).await;
    next_of_type(&mut ws, "welcome", 5).await;
    send_json(
        &mut ws,
        json!({"type": "message", "client_id": format!("{id}-1"), "text": text}),
    )
    .await;
    let (_, before_ack) = next_of_type(&mut ws, "ack", 5).await;
    (ws, before_ack)
}

async fn visitor(d: &TestDaemon, id: &str, text: &str) -> Ws {
    visitor_with_frames(d, id, text).await.0
}

/// The visitor's conversation, once `done` holds for it (polled, at most 10 s).
async fn conversation_of(api: &Api, visitor: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = api.get("/api/v1/conversations?status=all&limit=500").await;
        let found = list["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["external_id"] == visitor)
            .cloned();
        if let Some(c) = found.filter(|c| done(c)) {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "{visitor}: condition not met; last {list}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assigned(c: &Value) -> bool {
    c["status"] == "in_progress" && c["assignee"].is_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_answers_in_chinese_and_people_get_the_rest_by_team_and_load() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    add_agent(dir.path(), "wang", "password-wang", false);
    add_agent(dir.path(), "zhao", "password-zhao", false);
    std::fs::write(dir.path().join("kb.jsonl"), KB).unwrap();
    let (ok, out) = kefud_cli(
        dir.path(),
        &[
            "kb",
            "import",
            dir.path().join("kb.jsonl").to_str().unwrap(),
        ],
        "",
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("imported 3 entries with 6 example questions"),
        "{out}"
    );

    let d = TestDaemon::start(dir.path(), "");
    let li = Api::login(&d, "li", "password-li").await;
    let wang = Api::login(&d, "wang", "password-wang").await;
    let zhao = Api::login(&d, "zhao", "password-zhao").await;
    let (li_id, wang_id, zhao_id) = (li.me().await, wang.me().await, zhao.me().await);
    for (id, teams) in [
        (li_id, json!(["after-sales"])),
        (wang_id, json!(["after-sales"])),
        (zhao_id, json!(["managers"])),
    ] {
        let (s, v) = li
            .call(
                reqwest::Method::PATCH,
                &format!("/api/v1/agents/{id}"),
                Some(json!({"teams": teams, "capacity": 3})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
    // Only an admin changes agents.
    let (s, _) = wang
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/agents/{wang_id}"),
            Some(json!({"capacity": 99})),
        )
        .await;
    assert_eq!(s, 403);

    // The contract's match endpoint.
    let (s, m) = wang
        .call(
            reqwest::Method::POST,
            "/api/v1/kb/match",
            Some(json!({"text": "请问营业时间"})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(m["intent"], "hours", "{m}");
    assert_eq!(m["confident"], true, "{m}");
    assert!(m["score"].as_f64().unwrap() > 0.6, "{m}");

    // A confident question is answered by the bot, in the thread and to the customer.
    let (mut asks_hours, mut frames) =
        visitor_with_frames(&d, "hours-fan", "你们营业时间是几点？").await;
    let answer = loop {
        let bot = frames
            .iter()
            .find(|f| f["type"] == "message" && f["sender"] == "bot");
        if let Some(bot) = bot {
            break bot.clone();
        }
        frames.push(next_json(&mut asks_hours, 5).await);
    };
    assert_eq!(answer["sender"], "bot", "{answer}");
    assert_eq!(answer["text"], "每天早上9点到晚上9点营业。");
    let c = conversation_of(&li, "hours-fan", |_| true).await;
    assert_eq!(c["status"], "waiting");
    assert!(c["assignee"].is_null(), "the bot handled it: {c}");
    let thread = li
        .get(&format!("/api/v1/conversations/{}/messages", c["id"]))
        .await;
    let asked = &thread["messages"][0];
    assert_eq!(
        asked["intent"], "hours",
        "each customer message gets its intent: {thread}"
    );
    assert!(asked["intent_score"].as_f64().unwrap() >= 0.6, "{thread}");
    assert_eq!(thread["messages"][1]["sender"], "bot", "{thread}");

    // Agents come online (their feeds); li already holds one conversation by hand.
    let _li_feed = connect(&d.ws(&format!("/ws/agent?token={}", li.token))).await;
    let _wang_feed = connect(&d.ws(&format!("/ws/agent?token={}", wang.token))).await;
    let _zhao_feed = connect(&d.ws(&format!("/ws/agent?token={}", zhao.token))).await;
    let (s, _) = li
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/conversations/{}/assign", c["id"]),
            None,
        )
        .await;
    assert_eq!(s, 200);

    // Asking for a person: the after-sales team's least-loaded online agent (wang, 0 open,
    // over li, 1 open).
    let _wants_person = visitor(&d, "returner", "我要退货，转人工").await;
    let c = conversation_of(&li, "returner", assigned).await;
    assert_eq!(c["assignee"], wang_id, "{c}");
    // Now li and wang hold one each: round-robin gives the next to li (assigned longest ago).
    let _second = visitor(&d, "returner-2", "这个东西怎么退，我要人工").await;
    let c = conversation_of(&li, "returner-2", assigned).await;
    assert_eq!(c["assignee"], li_id, "{c}");
    // An intent without an answer goes to its team.
    let _complains = visitor(&d, "angry", "我要投诉你们的服务").await;
    let c = conversation_of(&li, "angry", assigned).await;
    assert_eq!(c["assignee"], zhao_id, "{c}");
    // Presence shows who is online and their load.
    let roster = li.get("/api/v1/agents/presence").await;
    let wang_row = roster["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == wang_id)
        .unwrap()
        .clone();
    assert_eq!(wang_row["presence"], "online", "{roster}");
    assert_eq!(wang_row["open"], 1, "{roster}");

    // The knowledge base follows an API import without a restart.
    let r = li
        .c
        .post(d.http("/api/v1/kb/import"))
        .bearer_auth(&li.token)
        .body("{\"intent\":\"parking\",\"text\":\"哪里可以停车\",\"answer\":\"地下一层停车场。\"}\n{\"intent\":\"parking\",\"text\":\"停车场在哪\"}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"entries": 1, "examples": 2})
    );
    let (_, m) = wang
        .call(
            reqwest::Method::POST,
            "/api/v1/kb/match",
            Some(json!({"text": "停车场在哪里"})),
        )
        .await;
    assert_eq!(m["intent"], "parking", "{m}");
    // A bad file is refused with its line, and changes nothing.
    let r =
        li.c.post(d.http("/api/v1/kb/import"))
            .bearer_auth(&li.token)
            .body("{\"intent\":\"x\"}\n")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("line 1"));
    let export =
        li.c.get(d.http("/api/v1/kb/export?format=csv"))
            .bearer_auth(&li.token)
            .send()
            .await
            .unwrap();
    let csv = export.text().await.unwrap();
    assert!(
        csv.starts_with("intent,text,answer,team\n") && csv.contains("停车场在哪"),
        "{csv}"
    );

    // The CLI cannot import behind a running daemon's back.
    let (ok, out) = kefud_cli(
        dir.path(),
        &[
            "kb",
            "import",
            dir.path().join("kb.jsonl").to_str().unwrap(),
        ],
        "",
    );
    assert!(!ok && out.contains("kefud is running"), "{out}");

    // The report counts today's assignments.
    let report = li.get("/api/v1/reports/response-times?days=1").await;
    let today = &report["days"][0];
    assert!(
        today["time_to_assignment"]["count"].as_u64().unwrap() >= 3,
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_and_the_knowledge_base_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    let d = TestDaemon::start(dir.path(), "");
    let li = Api::login(&d, "li", "password-li").await;
    let r =
        li.c.post(d.http("/api/v1/kb/import"))
            .bearer_auth(&li.token)
            .body(KB)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    // Nobody online: the customer who asks for a person waits in the queue.
    drop(visitor(&d, "patient", "人工客服在吗").await);
    let c = conversation_of(&li, "patient", |c| c["status"] == "waiting").await;
    assert!(c["assignee"].is_null());
    let (status, log) = d.terminate();
    assert!(status.success(), "{log}");

    let d = TestDaemon::start(dir.path(), "");
    let li = Api::login(&d, "li", "password-li").await;
    let (_, m) = li
        .call(
            reqwest::Method::POST,
            "/api/v1/kb/match",
            Some(json!({"text": "我要退货"})),
        )
        .await;
    assert_eq!(m["intent"], "returns", "{m}");
    // li comes online: the conversation queued before the restart is assigned at once.
    let _feed = connect(&d.ws(&format!("/ws/agent?token={}", li.token))).await;
    let c = conversation_of(&li, "patient", assigned).await;
    assert_eq!(c["assignee"], li.me().await);
    // Away means no new conversations.
    let (s, _) = li
        .call(
            reqwest::Method::POST,
            "/api/v1/me/presence",
            Some(json!({"status": "away"})),
        )
        .await;
    assert_eq!(s, 204);
    drop(visitor(&d, "later", "转人工").await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = conversation_of(&li, "later", |_| true).await;
    assert!(c["assignee"].is_null(), "{c}");
    li.call(
        reqwest::Method::POST,
        "/api/v1/me/presence",
        Some(json!({"status": "online"})),
    )
    .await;
    conversation_of(&li, "later", assigned).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_conversation_has_a_summary_with_its_facts() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    let d = TestDaemon::start(dir.path(), "[routing]\nsummary_after_messages = 4\n");
    let li = Api::login(&d, "li", "password-li").await;
    let mut ws = connect(&d.ws("/ws/visitor?visitor_id=long")).await;
    next_of_type(&mut ws, "welcome", 5).await;
    let lines = [
        "你好。",
        "我的订单 A20261127 的咖啡机坏了。",
        "咖啡机完全不出水，付了 599元。",
        "今天天气不错。",
        "我的电话是 13812345678，咖啡机能修吗？",
    ];
    for (i, text) in lines.iter().enumerate() {
        assert!(send_for_ack(&mut ws, &format!("l{i}"), text)
            .await
            .is_some());
    }
    let c = conversation_of(&li, "long", |_| true).await;
    let s = li
        .get(&format!("/api/v1/conversations/{}/summary", c["id"]))
        .await;
    assert_eq!(s["summarised"], true, "{s}");
    let summary = &s["summary"];
    assert_eq!(summary["sentences"].as_array().unwrap().len(), 3, "{s}");
    assert!(summary["sentences"].to_string().contains("咖啡机"), "{s}");
    assert_eq!(summary["order_numbers"], json!(["A20261127"]), "{s}");
    assert_eq!(summary["phone_numbers"], json!(["13812345678"]), "{s}");
    assert_eq!(summary["amounts"], json!(["599 元"]), "{s}");
    let (status, _) = li
        .call(
            reqwest::Method::GET,
            "/api/v1/conversations/999/summary",
            None,
        )
        .await;
    assert_eq!(status, 404);
}

/// A stand-in for an OpenAI-compatible server on the LAN: answers `/v1/chat/completions` as
/// llama.cpp's server does, and hands over each request body it received.
async fn stand_in_llm(status: u16) -> (std::net::SocketAddr, tokio::sync::mpsc::Receiver<Value>) {
    use axum::routing::post;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |axum::Json(body): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body).await;
                let code = axum::http::StatusCode::from_u16(status).unwrap();
                (
                    code,
                    axum::Json(json!({
                        "id": "chatcmpl-1", "object": "chat.completion", "model": "qwen2.5-1.5b",
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": " 顾客的咖啡机不出水，订单 A20261127，想维修。 "}}],
                        "usage": {"prompt_tokens": 80, "completion_tokens": 20, "total_tokens": 100}
                    })),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_language_model_on_the_lan_can_write_the_summary_and_its_failure_falls_back() {
    for (status, expect_llm) in [(200, true), (500, false)] {
        let (llm, mut requests) = stand_in_llm(status).await;
        let dir = tempfile::tempdir().unwrap();
        add_agent(dir.path(), "li", "password-li", true);
        let d = TestDaemon::start(
            dir.path(),
            &format!("[routing]\nsummary_after_messages = 1\nllm_url = \"http://{llm}/v1\"\nllm_model = \"qwen2.5-1.5b\"\n"),
        );
        let li = Api::login(&d, "li", "password-li").await;
        let mut ws = connect(&d.ws("/ws/visitor?visitor_id=coffee")).await;
        next_of_type(&mut ws, "welcome", 5).await;
        for (i, text) in ["咖啡机坏了。", "订单 A20261127，咖啡机不出水。"]
            .iter()
            .enumerate()
        {
            assert!(send_for_ack(&mut ws, &format!("c{i}"), text)
                .await
                .is_some());
        }
        let c = conversation_of(&li, "coffee", |_| true).await;
        let s = li
            .get(&format!("/api/v1/conversations/{}/summary", c["id"]))
            .await;
        let sent = requests.recv().await.expect("kefud called the endpoint");
        assert_eq!(sent["model"], "qwen2.5-1.5b");
        let prompt = sent["messages"][1]["content"].as_str().unwrap();
        assert!(
            prompt.contains("Customer: 订单 A20261127，咖啡机不出水。"),
            "{prompt}"
        );
        if expect_llm {
            assert_eq!(s["source"], "llm", "{s}");
            assert_eq!(
                s["llm_summary"],
                "顾客的咖啡机不出水，订单 A20261127，想维修。"
            );
        } else {
            assert_eq!(s["source"], "extractive", "{s}");
            assert!(s["llm_error"].as_str().unwrap().contains("500"), "{s}");
            assert!(
                !s["summary"]["sentences"].as_array().unwrap().is_empty(),
                "{s}"
            );
        }
        // The facts come from kefud's own scan either way.
        assert_eq!(s["summary"]["order_numbers"], json!(["A20261127"]));
    }
}
