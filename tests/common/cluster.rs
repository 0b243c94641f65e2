//! Harness of the cluster tests: a central mosquitto without persistence, each shop's own
//! mosquitto bridged to it (as README "Several shops" shows), and kefud boxes in cluster mode
//! with an owner signed in, with the reads every cluster test compares (the projection of
//! conversations and messages, the cluster view) and a poll until the boxes agree.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kefud_testkit::{free_port, Mosquitto};
use serde_json::Value;

use super::{add_agent, login, write_config, TestDaemon};

pub const CLUSTER: &str =
    "[cluster]\nenabled = true\nname = \"tea\"\nsecret = \"tea-shops-secret-1\"\n";
/// Convergence is asked of a loaded, shared CI machine: generous, and polled.
pub const CONVERGE_WITHIN: Duration = Duration::from_secs(90);

/// The central broker and the shops' brokers, bridged.
pub struct Brokers {
    pub central: Mosquitto,
    pub shops: Vec<Mosquitto>,
}

pub fn central_broker(dir: &Path) -> Mosquitto {
    std::fs::create_dir_all(dir).unwrap();
    let port = free_port().unwrap();
    Mosquitto::with_config(
        dir,
        &format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n"
        ),
        port,
    )
    .unwrap_or_else(|e| panic!("{e:#}"))
}

/// A shop's broker, bridged to the central one as README "Several shops" shows (each bridge
/// with a client id of its own: two bridges under one id push each other off the central
/// broker).
pub fn shop_broker(dir: &Path, name: &str, central: u16) -> Mosquitto {
    std::fs::create_dir_all(dir).unwrap();
    let port = free_port().unwrap();
    Mosquitto::with_config(
        dir,
        &format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n\
             connection central\naddress 127.0.0.1:{central}\nremote_clientid {name}\n\
             topic kefu/# both 1\n\
             cleansession false\nrestart_timeout 1 2\nnotifications false\n"
        ),
        port,
    )
    .unwrap_or_else(|e| panic!("{e:#}"))
}

impl Brokers {
    pub fn start(dir: &Path, shops: usize) -> Brokers {
        let central = central_broker(&dir.join("central"));
        let shops = (0..shops)
            .map(|i| {
                let name = format!("shop{i}");
                shop_broker(&dir.join(&name), &name, central.port)
            })
            .collect();
        Brokers { central, shops }
    }
}

/// One box: its directory, its daemon, an agent's token.
pub struct Shop {
    pub dir: PathBuf,
    pub daemon: Option<TestDaemon>,
    pub token: String,
    pub broker_port: u16,
}

pub fn shop_config(broker_port: u16) -> String {
    format!(
        "[mqtt]\nhost = \"127.0.0.1\"\nport = {broker_port}\nkeep_alive_secs = 5\n{CLUSTER}\
         [limits]\nmessages_per_second = 100000\nburst = 100000\n"
    )
}

impl Shop {
    pub async fn start(dir: PathBuf, broker_port: u16) -> Shop {
        Shop::start_with_env(dir, broker_port, &[]).await
    }

    /// As [`Shop::start`], the daemon with extra environment variables (a restart has none).
    pub async fn start_with_env(dir: PathBuf, broker_port: u16, env: &[(&str, &str)]) -> Shop {
        std::fs::create_dir_all(&dir).unwrap();
        write_config(&dir, &shop_config(broker_port));
        add_agent(&dir, "owner", "owner-password", true);
        let daemon = TestDaemon::try_start_with_env(&dir, &shop_config(broker_port), env)
            .unwrap_or_else(|log| panic!("kefud did not start:\n{log}"));
        let token = login(&daemon, "owner", "owner-password").await;
        Shop {
            dir,
            daemon: Some(daemon),
            token,
            broker_port,
        }
    }

    pub fn d(&self) -> &TestDaemon {
        self.daemon.as_ref().expect("running")
    }

    pub async fn restart(&mut self) {
        self.daemon = Some(TestDaemon::start(&self.dir, &shop_config(self.broker_port)));
        self.token = login(self.d(), "owner", "owner-password").await;
    }

    pub async fn get(&self, path: &str) -> Value {
        let resp = reqwest::Client::new()
            .get(self.d().http(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let resp = reqwest::Client::new()
            .post(self.d().http(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "POST {path}: {status} {v}");
        v
    }

    /// Every conversation, named by its contact's identities ([`Shop::who`]), with its
    /// messages (sender, text) in the box's order: what must be the same on every box.
    pub async fn projection(&self) -> Vec<(String, Vec<(String, String)>)> {
        let list = self.get("/api/v1/conversations?limit=500").await;
        let mut out = Vec::new();
        for c in list["conversations"].as_array().unwrap() {
            let id = c["id"].as_u64().unwrap();
            let mut messages = Vec::new();
            let mut after = 0;
            loop {
                let page = self
                    .get(&format!(
                        "/api/v1/conversations/{id}/messages?after={after}&limit=500"
                    ))
                    .await;
                let page = page["messages"].as_array().unwrap().clone();
                if page.is_empty() {
                    break;
                }
                // A page is in cluster order; the next one starts after its highest id.
                after = page
                    .iter()
                    .map(|m| m["id"].as_u64().unwrap())
                    .max()
                    .unwrap();
                messages.extend(page.iter().map(|m| {
                    (
                        m["sender"].as_str().unwrap().to_string(),
                        m["text"].as_str().unwrap().to_string(),
                    )
                }));
            }
            out.push((self.who(c["contact_id"].as_u64().unwrap()).await, messages));
        }
        out.sort();
        out
    }

    /// A contact as every box names it: all its identities, sorted (not the one its
    /// customer last wrote from: after two conversations fold into one, boxes that received
    /// their messages in different orders name a different one last).
    /// A contact linked away between the listing and this read is gone (404): named as such,
    /// so the projection differs and the caller polls again.
    pub async fn who(&self, contact: u64) -> String {
        let resp = reqwest::Client::new()
            .get(self.d().http(&format!("/api/v1/contacts/{contact}")))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        if resp.status() == 404 {
            return format!("contact {contact} linked away meanwhile");
        }
        assert_eq!(resp.status(), 200, "GET /api/v1/contacts/{contact}");
        let contact: Value = resp.json().await.unwrap();
        let mut identities: Vec<String> = contact["identities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                format!(
                    "{}:{}",
                    i["channel"].as_str().unwrap(),
                    i["external_id"].as_str().unwrap()
                )
            })
            .collect();
        identities.sort();
        identities.join(" + ")
    }

    pub async fn cluster(&self) -> Value {
        self.get("/api/v1/cluster").await["view"].clone()
    }

    /// How many messages the box holds, over all conversations.
    pub async fn message_count(&self) -> u64 {
        let list = self.get("/api/v1/conversations?limit=500").await;
        list["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["message_count"].as_u64().unwrap())
            .sum()
    }
}

/// Polls until every box holds the same projection (the same conversations, each with the same
/// messages in the same order: every box lists them in cluster order), and it passes `done`; panics with the
/// projections otherwise.
pub async fn converged(
    shops: &[&Shop],
    done: impl Fn(&[(String, Vec<(String, String)>)]) -> bool,
) -> Vec<(String, Vec<(String, String)>)> {
    let deadline = Instant::now() + CONVERGE_WITHIN;
    loop {
        let mut views = Vec::new();
        for s in shops {
            views.push(s.projection().await);
        }
        if views.windows(2).all(|w| w[0] == w[1]) && done(&views[0]) {
            return views.remove(0);
        }
        if Instant::now() > deadline {
            let mut clusters = Vec::new();
            for s in shops {
                clusters.push(s.cluster().await);
            }
            panic!(
                "the boxes did not converge within {CONVERGE_WITHIN:?}:\n{views:#?}\n{clusters:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn three_shops(dir: &Path) -> (Brokers, Vec<Shop>) {
    let brokers = Brokers::start(dir, 3);
    let mut shops = Vec::new();
    for (i, b) in brokers.shops.iter().enumerate() {
        shops.push(Shop::start(dir.join(format!("box{i}")), b.port).await);
    }
    (brokers, shops)
}
