//! Helpers of the day-one API tests (labels, ratings, customers): a JSON client with a
//! daemon's base address, a visitor writing one message, a daemon with an admin and an agent,
//! and URL encoding for signed identities' query strings.

use reqwest::{Client, Method, StatusCode};
use serde_json::Value;

use super::{add_agent, connect, send_for_ack, TestDaemon};

pub struct Api {
    pub c: Client,
    pub base: String,
}

impl Api {
    pub fn new(d: &TestDaemon) -> Api {
        Api {
            c: Client::new(),
            base: d.http(""),
        }
    }

    pub async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.c.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

/// A visitor writes one message; the conversation's id (from the agent API).
pub async fn visitor_writes(d: &TestDaemon, api: &Api, token: &str, visitor: &str) -> u64 {
    let mut ws = connect(&d.ws(&format!("/ws/visitor?visitor_id={visitor}"))).await;
    send_for_ack(&mut ws, "m1", "hello, do you have green tea?")
        .await
        .expect("acked");
    let (_, v) = api
        .call(Some(token), Method::GET, "/api/v1/conversations", None)
        .await;
    v["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["external_id"] == visitor)
        .unwrap_or_else(|| panic!("{visitor}'s conversation listed: {v}"))["id"]
        .as_u64()
        .unwrap()
}

pub fn start() -> (tempfile::TempDir, TestDaemon) {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "boss", "boss-password-1", true);
    add_agent(dir.path(), "ann", "ann-password-12", false);
    let d = TestDaemon::start(dir.path(), "");
    (dir, d)
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn urldecode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
