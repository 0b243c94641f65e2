//! The MQTT bridge against a real mosquitto on 127.0.0.1, configured as the SD image ships it
//! (image/overlay/etc/mosquitto/conf.d/kefu.conf, with its own port and persistence
//! directory): round trip in and out; the broker stopped and restarted in the middle of
//! 10,000 messages; kefud killed in the middle of 10,000; replies written while the broker is
//! down; malformed payloads; one person on MQTT and the web widget in one conversation; a
//! burst of 40,000 from four `mosquitto_pub -l` clients at once (all stored once and all
//! acknowledged), and SIGTERM in the middle of it (kefud stops in time, nothing lost).

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use kefud_testkit::{free_port, Mosquitto};
use reqwest::Client;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};

/// mosquitto with the SD image's configuration, its own port and its persistence in `dir`.
fn image_broker(dir: &Path) -> Mosquitto {
    let conf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("image/overlay/etc/mosquitto/conf.d/kefu.conf");
    Mosquitto::start(&conf, Some(dir)).unwrap_or_else(|e| panic!("{e:#}"))
}

fn mqtt_config(port: u16) -> String {
    format!("[mqtt]\nenabled = true\nhost = \"127.0.0.1\"\nport = {port}\nkeep_alive_secs = 5\n\n[limits]\nmessages_per_second = 100000\nburst = 100000\n")
}

/// A test client: connects (retrying while the broker is down) and returns once connected.
async fn mqtt_client(port: u16, id: &str, clean: bool) -> (AsyncClient, rumqttc::EventLoop) {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5))
        .set_clean_session(clean)
        .set_max_packet_size(1 << 20, 1 << 20);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (client, mut events) = AsyncClient::new(opts.clone(), 64);
        loop {
            match tokio::time::timeout(Duration::from_secs(5), events.poll()).await {
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return (client, events),
                Ok(Ok(_)) => {}
                _ => break,
            }
        }
        assert!(Instant::now() < deadline, "cannot connect to the broker");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Publishes every message at QoS 1, one at a time, each until the broker acknowledged it:
/// across broker restarts (a message whose PUBACK was lost goes again, as a real client
/// would). `progress` counts the acknowledged ones.
async fn publish_all(
    port: u16,
    id: String,
    messages: Vec<(String, String)>,
    progress: Arc<AtomicUsize>,
) {
    let mut next = 0;
    while next < messages.len() {
        let (client, mut events) = mqtt_client(port, &id, true).await;
        'connection: while next < messages.len() {
            let (topic, payload) = &messages[next];
            if client
                .publish(
                    topic.clone(),
                    QoS::AtLeastOnce,
                    false,
                    payload.clone().into_bytes(),
                )
                .await
                .is_err()
            {
                break;
            }
            loop {
                match tokio::time::timeout(Duration::from_secs(10), events.poll()).await {
                    Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => {
                        next += 1;
                        progress.store(next, Ordering::Relaxed);
                        break;
                    }
                    Ok(Ok(_)) => {}
                    _ => break 'connection,
                }
            }
        }
    }
}

/// Customer messages: `count` of them over `contacts` contacts of channel `app`.
fn stream(count: usize, contacts: usize, tag: &str) -> Vec<(String, String)> {
    (0..count)
        .map(|i| {
            (
                format!("kefu/in/app/{tag}-{}", i % contacts),
                json!({"client_id": format!("{tag}-{i}"), "text": format!("{tag} message {i}")})
                    .to_string(),
            )
        })
        .collect()
}

async fn api_get(d: &TestDaemon, token: &str, path: &str) -> Value {
    Client::new()
        .get(d.http(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Messages stored per contact external id, from the conversation list.
async fn stored_counts(d: &TestDaemon, token: &str) -> std::collections::HashMap<String, u64> {
    let list = api_get(d, token, "/api/v1/conversations?status=all&limit=200").await;
    let mut counts = std::collections::HashMap::new();
    for c in list["conversations"].as_array().unwrap() {
        *counts
            .entry(c["external_id"].as_str().unwrap_or("").to_string())
            .or_insert(0) += c["message_count"].as_u64().unwrap();
    }
    counts
}

/// The client ids `TAG-0..count` the store does not have (read beside the running daemon).
fn missing(d: &TestDaemon, tag: &str, count: usize) -> Vec<usize> {
    let db = rusqlite::Connection::open(d.dir.join("data/kefud.db")).unwrap();
    let have: std::collections::HashSet<String> = db
        .prepare("SELECT client_id FROM messages WHERE client_id IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    (0..count)
        .filter(|i| !have.contains(&format!("{tag}-{i}")))
        .collect()
}

async fn wait_for_total(d: &TestDaemon, token: &str, total: u64, secs: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let now: u64 = stored_counts(d, token).await.values().sum();
        if now >= total || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn channel_counter(d: &TestDaemon, token: &str, name: &str) -> (String, u64) {
    let v = api_get(d, token, "/api/v1/channels").await;
    let mqtt = &v["channels"][0];
    assert_eq!(mqtt["name"], "mqtt", "{v}");
    (
        mqtt["state"].as_str().unwrap().to_string(),
        mqtt["counters"][name].as_u64().unwrap(),
    )
}

async fn wait_connected(d: &TestDaemon, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while channel_counter(d, token, "received").await.0 != "connected" {
        assert!(
            Instant::now() < deadline,
            "the bridge did not connect:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client whose event loop runs in the background (rumqttc only sends while polled); what
/// it receives arrives on `rx` as (topic, JSON).
struct Polled {
    client: AsyncClient,
    rx: tokio::sync::mpsc::UnboundedReceiver<(String, Value)>,
}

async fn polled_client(port: u16, id: &str) -> Polled {
    let (client, mut events) = mqtt_client(port, id, false).await;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let v = serde_json::from_slice(&p.payload).unwrap();
                    if tx.send((p.topic.clone(), v)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    Polled { client, rx }
}

/// The next publish the client receives, within `secs`.
async fn next_publish(p: &mut Polled, secs: u64) -> Option<(String, Value)> {
    tokio::time::timeout(Duration::from_secs(secs), p.rx.recv())
        .await
        .ok()
        .flatten()
}

async fn reply(d: &TestDaemon, token: &str, conversation: u64, body: Value) -> u64 {
    let r = Client::new()
        .post(d.http(&format!("/api/v1/conversations/{conversation}/messages")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["message_id"]
        .as_u64()
        .unwrap()
}

async fn delivery_state(d: &TestDaemon, token: &str, message: u64) -> String {
    api_get(d, token, &format!("/api/v1/messages/{message}/delivery")).await["state"]
        .as_str()
        .unwrap_or("none")
        .to_string()
}

async fn wait_delivered(d: &TestDaemon, token: &str, message: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while delivery_state(d, token, message).await != "delivered" {
        assert!(
            Instant::now() < deadline,
            "message {message} not delivered:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn conversation_of(d: &TestDaemon, token: &str, external_id: &str) -> Value {
    let list = api_get(d, token, "/api/v1/conversations?status=all").await;
    list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["external_id"] == external_id)
        .cloned()
        .unwrap_or_else(|| panic!("no conversation of {external_id}: {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_replies_survive_a_broker_outage_and_are_not_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = image_broker(&dir.path().join("broker"));
    add_agent(dir.path(), "li", "password-li", true);
    let d = TestDaemon::start(dir.path(), &mqtt_config(broker.port));
    let token = login(&d, "li", "password-li").await;
    wait_connected(&d, &token).await;

    // The shop's app backend: subscribed to replies with a persistent session.
    let mut app = polled_client(broker.port, "shop-app").await;
    app.client
        .subscribe("kefu/out/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    app.client
        .publish(
            "kefu/in/app/u-1",
            QoS::AtLeastOnce,
            false,
            json!({"client_id": "c1", "text": "我的订单到哪了?"}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(wait_for_total(&d, &token, 1, 20).await, 1);
    let conversation = conversation_of(&d, &token, "u-1").await;
    assert_eq!(conversation["channel"], "app");
    let id = conversation["id"].as_u64().unwrap();
    let thread = api_get(&d, &token, &format!("/api/v1/conversations/{id}/messages")).await;
    assert_eq!(thread["messages"][0]["channel"], "app", "{thread}");

    let first = reply(&d, &token, id, json!({"text": "已发货, 明天到"})).await;
    let (topic, payload) = next_publish(&mut app, 20)
        .await
        .expect("the reply is published");
    assert_eq!(topic, "kefu/out/app/u-1");
    assert_eq!(
        (
            payload["message_id"].as_u64(),
            payload["sender"].as_str(),
            payload["text"].as_str()
        ),
        (Some(first), Some("agent"), Some("已发货, 明天到"))
    );
    wait_delivered(&d, &token, first).await;

    // Replies written while the broker is down are published when it is back.
    broker.stop().unwrap();
    let mut during = Vec::new();
    for i in 0..3 {
        during.push(
            reply(
                &d,
                &token,
                id,
                json!({"text": format!("reply {i} while the broker is down")}),
            )
            .await,
        );
    }
    for m in &during {
        assert_eq!(delivery_state(&d, &token, *m).await, "pending");
    }
    broker.restart().unwrap();
    let mut got = Vec::new();
    while got.len() < during.len() {
        let (_, p) = next_publish(&mut app, 40)
            .await
            .unwrap_or_else(|| panic!("replies after the outage: got {got:?}\n{}", d.log()));
        let m = p["message_id"].as_u64().unwrap();
        if !got.contains(&m) {
            got.push(m);
        }
    }
    assert_eq!(got, during, "all of them, in order");
    for m in &during {
        wait_delivered(&d, &token, *m).await;
    }

    // A restart of kefud does not publish delivered replies again.
    let (status, _) = d.terminate();
    assert!(status.success());
    let d = TestDaemon::start(dir.path(), &mqtt_config(broker.port));
    let token = login(&d, "li", "password-li").await;
    wait_connected(&d, &token).await;
    assert!(
        next_publish(&mut app, 3).await.is_none(),
        "nothing is published twice"
    );
    let (_, published) = channel_counter(&d, &token, "published").await;
    assert_eq!(published, 0);
}

/// Starts a publisher of 10,000 messages (client ids TAG-0.., 4 contacts) and returns once
/// the broker has acknowledged 3,000 of them.
async fn publish_10000_wait_for_3000(port: u16, tag: &str) -> tokio::task::JoinHandle<()> {
    let progress = Arc::new(AtomicUsize::new(0));
    let publisher = tokio::spawn(publish_all(
        port,
        "kiosk".into(),
        stream(10_000, 4, tag),
        Arc::clone(&progress),
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress.load(Ordering::Relaxed) < 3_000 {
        assert!(Instant::now() < deadline, "the publisher is stuck");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    publisher
}

/// Every one of the 10,000 is stored exactly once: 2,500 per contact.
async fn assert_10000_stored_once(d: &TestDaemon, token: &str, tag: &str) {
    let total = wait_for_total(d, token, 10_000, 90).await;
    let counts = stored_counts(d, token).await;
    assert_eq!(
        total,
        10_000,
        "every message stored exactly once: {counts:?}, missing {:?}\n{}",
        missing(d, tag, 10_000),
        d.log()
    );
    for i in 0..4 {
        assert_eq!(counts[&format!("{tag}-{i}")], 2_500);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_in_the_middle_of_10000_messages_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = image_broker(&dir.path().join("broker"));
    add_agent(dir.path(), "li", "password-li", true);
    let d = TestDaemon::start(dir.path(), &mqtt_config(broker.port));
    let token = login(&d, "li", "password-li").await;
    wait_connected(&d, &token).await;

    let publisher = publish_10000_wait_for_3000(broker.port, "b").await;
    broker.stop().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    broker.restart().unwrap();
    tokio::time::timeout(Duration::from_secs(120), publisher)
        .await
        .unwrap()
        .unwrap();
    assert_10000_stored_once(&d, &token, "b").await;
    let (_, reconnects) = channel_counter(&d, &token, "reconnects").await;
    assert!(reconnects >= 1, "the bridge saw the broker go");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kefud_killed_in_the_middle_of_10000_messages_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = image_broker(&dir.path().join("broker"));
    add_agent(dir.path(), "li", "password-li", true);
    let d = TestDaemon::start(dir.path(), &mqtt_config(broker.port));
    let token = login(&d, "li", "password-li").await;
    wait_connected(&d, &token).await;

    let publisher = publish_10000_wait_for_3000(broker.port, "k").await;
    d.kill9();
    tokio::time::timeout(Duration::from_secs(120), publisher)
        .await
        .unwrap()
        .unwrap();
    // Everything since the kill waits in the broker, under kefud's persistent session.
    let d = TestDaemon::start(dir.path(), &mqtt_config(broker.port));
    let token = login(&d, "li", "password-li").await;
    assert_10000_stored_once(&d, &token, "k").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_counted_acknowledged_and_never_stop_the_bridge() {
    let dir = tempfile::tempdir().unwrap();
    let broker = image_broker(&dir.path().join("broker"));
    add_agent(dir.path(), "li", "password-li", true);
    let d = TestDaemon::start(dir.path(), &mqtt_config(broker.port));
    let token = login(&d, "li", "password-li").await;
    wait_connected(&d, &token).await;

    let (client, mut events) = mqtt_client(broker.port, "prankster", true).await;
    let huge = json!({"client_id": "h", "text": "长".repeat(100_000)}).to_string();
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("kefu/in/app/m-1", b"not json".to_vec()),
        ("kefu/in/app/m-1", br#"{"text":"no client id"}"#.to_vec()),
        ("kefu/in/app/m-1", huge.into_bytes()),
        (
            "kefu/in/app/m-1",
            b"{\"client_id\":\"u\",\"text\":\"\xff\xfe\"}".to_vec(),
        ),
        (
            "kefu/in/app/bad%id",
            br#"{"client_id":"x","text":"bad contact id"}"#.to_vec(),
        ),
        // Not this adapter's channel: never stored as a widget visitor.
        (
            "kefu/in/web/visitor-1",
            br#"{"client_id":"x","text":"posing as the widget"}"#.to_vec(),
        ),
        (
            "kefu/in/app/m-1",
            br#"{"client_id":"ok","text":"and then a good one"}"#.to_vec(),
        ),
    ];
    for (topic, payload) in bad {
        client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        loop {
            if let Event::Incoming(Packet::PubAck(_)) = events.poll().await.unwrap() {
                break;
            }
        }
    }
    assert_eq!(
        wait_for_total(&d, &token, 1, 20).await,
        1,
        "the good one is stored"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while channel_counter(&d, &token, "acknowledged").await.1 < 7 {
        assert!(
            Instant::now() < deadline,
            "all seven acknowledged:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        channel_counter(&d, &token, "malformed").await,
        ("connected".into(), 6)
    );
    assert!(d.log().contains("malformed message acknowledged"));

    // Acknowledged means the broker does not send them again after a restart.
    let (status, _) = d.terminate();
    assert!(status.success());
    let d = TestDaemon::start(dir.path(), &mqtt_config(broker.port));
    let token = login(&d, "li", "password-li").await;
    wait_connected(&d, &token).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(channel_counter(&d, &token, "received").await.1, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_person_on_mqtt_and_the_widget_is_one_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let broker = image_broker(&dir.path().join("broker"));
    add_agent(dir.path(), "li", "password-li", true);
    let d = TestDaemon::start(dir.path(), &mqtt_config(broker.port));
    let token = login(&d, "li", "password-li").await;
    wait_connected(&d, &token).await;
    let mut app = polled_client(broker.port, "shop-app").await;
    app.client
        .subscribe("kefu/out/#", QoS::AtLeastOnce)
        .await
        .unwrap();

    app.client
        .publish(
            "kefu/in/app/wx-42",
            QoS::AtLeastOnce,
            false,
            json!({"client_id": "1", "text": "from the app"}).to_string(),
        )
        .await
        .unwrap();
    // Stored before the widget writes: the thread's order below depends on it.
    assert_eq!(wait_for_total(&d, &token, 1, 20).await, 1);
    let mut widget = connect(&d.ws("/ws/visitor?visitor_id=v-42")).await;
    assert_eq!(next_json(&mut widget, 10).await["type"], "welcome");
    // The same client id "1" as the app's: per identity, so both are kept.
    assert!(send_for_ack(&mut widget, "1", "from the widget")
        .await
        .is_some());
    assert_eq!(wait_for_total(&d, &token, 2, 20).await, 2);
    let on_app = conversation_of(&d, &token, "wx-42").await;
    let on_web = conversation_of(&d, &token, "v-42").await;
    assert_ne!(on_app["contact_id"], on_web["contact_id"]);

    // An agent links them: the widget contact becomes part of the app contact.
    let keep = on_app["contact_id"].as_u64().unwrap();
    let r = Client::new()
        .post(d.http(&format!("/api/v1/contacts/{keep}/link")))
        .bearer_auth(&token)
        .json(&json!({"contact_id": on_web["contact_id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let linked: Value = r.json().await.unwrap();
    let id = linked["conversation_id"].as_u64().unwrap();
    assert_eq!(id, on_app["id"].as_u64().unwrap());
    let contact = api_get(&d, &token, &format!("/api/v1/contacts/{keep}")).await;
    assert_eq!(
        contact["identities"].as_array().unwrap().len(),
        2,
        "{contact}"
    );

    // New messages from either identity land in the one conversation.
    assert!(send_for_ack(&mut widget, "2", "widget again")
        .await
        .is_some());
    let thread = |d: &TestDaemon, token: &str| {
        let (d, token) = (
            d.http(&format!("/api/v1/conversations/{id}/messages")),
            token.to_string(),
        );
        async move {
            Client::new()
                .get(d)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    (
                        m["text"].as_str().unwrap().to_string(),
                        m["channel"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    // The customer last wrote on the widget: the reply goes there, not to MQTT.
    let to_web = reply(&d, &token, id, json!({"text": "answer on the widget"})).await;
    let (frame, _) = next_of_type(&mut widget, "message", 10).await;
    let frame = if frame["message_id"].as_u64() == Some(to_web) {
        frame
    } else {
        next_of_type(&mut widget, "message", 10).await.0
    };
    assert_eq!(frame["text"], "answer on the widget");
    assert_eq!(
        delivery_state(&d, &token, to_web).await,
        "none",
        "the widget fetches its own"
    );

    app.client
        .publish(
            "kefu/in/app/wx-42",
            QoS::AtLeastOnce,
            false,
            json!({"client_id": "2", "text": "app again"}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(wait_for_total(&d, &token, 5, 20).await, 5);
    let to_app = reply(&d, &token, id, json!({"text": "answer on the app"})).await;
    let (topic, p) = next_publish(&mut app, 20).await.expect("published");
    assert_eq!(
        (topic.as_str(), p["message_id"].as_u64()),
        ("kefu/out/app/wx-42", Some(to_app))
    );
    // The agent picks the widget although the customer last wrote on the app.
    let picked = reply(
        &d,
        &token,
        id,
        json!({"text": "picked the widget", "via": {"channel": "web", "external_id": "v-42"}}),
    )
    .await;
    assert_eq!(delivery_state(&d, &token, picked).await, "none");
    let r = Client::new()
        .post(d.http(&format!("/api/v1/conversations/{id}/messages")))
        .bearer_auth(&token)
        .json(&json!({"text": "x", "via": {"channel": "web", "external_id": "someone-else"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let texts = thread(&d, &token).await;
    let expected = [
        ("from the app", "app"),
        ("from the widget", "web"),
        ("widget again", "web"),
        ("answer on the widget", "web"),
        ("app again", "app"),
        ("answer on the app", "app"),
        ("picked the widget", "web"),
    ];
    assert_eq!(
        texts,
        expected
            .iter()
            .map(|(t, c)| (t.to_string(), c.to_string()))
            .collect::<Vec<_>>()
    );
    let list = api_get(&d, &token, "/api/v1/conversations?status=open").await;
    assert_eq!(list["conversations"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_and_read_events_reach_the_agents_from_mqtt_and_the_widget() {
    let dir = tempfile::tempdir().unwrap();
    let broker = image_broker(&dir.path().join("broker"));
    add_agent(dir.path(), "li", "password-li", true);
    let d = TestDaemon::start(dir.path(), &mqtt_config(broker.port));
    let token = login(&d, "li", "password-li").await;
    wait_connected(&d, &token).await;
    let app = polled_client(broker.port, "shop-app").await;
    app.client
        .publish(
            "kefu/in/app/t-1",
            QoS::AtLeastOnce,
            false,
            json!({"client_id": "1", "text": "hello"}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(wait_for_total(&d, &token, 1, 20).await, 1);
    let conversation = conversation_of(&d, &token, "t-1").await["id"]
        .as_u64()
        .unwrap();
    let answer = reply(
        &d,
        &token,
        conversation,
        json!({"text": "hi, how can I help?"}),
    )
    .await;

    // The agent typing: published to the app at QoS 0.
    let mut app = app;
    app.client
        .subscribe("kefu/typing/#", QoS::AtMostOnce)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = Client::new()
        .post(d.http(&format!("/api/v1/conversations/{conversation}/typing")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (topic, typing) = next_publish(&mut app, 10).await.expect("typing published");
    assert_eq!(
        (topic.as_str(), typing["sender"].as_str()),
        ("kefu/typing/app/t-1", Some("agent"))
    );
    // Replies still map to their PUBACKs after a QoS 0 publish.
    let after = reply(&d, &token, conversation, json!({"text": "still there?"})).await;
    wait_delivered(&d, &token, after).await;

    // Resuming from 0 replays history after the feed joined the live stream: once the last
    // reply is replayed, live frames (typing and read are not stored) cannot be missed.
    let mut feed = connect(&d.ws(&format!("/ws/agent?token={token}&after=0"))).await;
    loop {
        let (m, _) = next_of_type(&mut feed, "message", 20).await;
        if m["message"]["id"].as_u64() == Some(after) {
            break;
        }
    }
    app.client
        .publish(
            "kefu/in/app/t-1",
            QoS::AtLeastOnce,
            false,
            r#"{"type":"typing"}"#,
        )
        .await
        .unwrap();
    let (typing, _) = next_of_type(&mut feed, "typing", 10).await;
    assert_eq!(typing["conversation_id"], conversation);
    app.client
        .publish(
            "kefu/in/app/t-1",
            QoS::AtLeastOnce,
            false,
            json!({"type": "read", "message_id": answer}).to_string(),
        )
        .await
        .unwrap();
    let (read, _) = next_of_type(&mut feed, "read", 10).await;
    assert_eq!(
        (
            read["conversation_id"].as_u64(),
            read["message_id"].as_u64()
        ),
        (Some(conversation), Some(answer))
    );

    // The widget says the same with a read frame.
    let mut widget = connect(&d.ws("/ws/visitor?visitor_id=w-1")).await;
    assert_eq!(next_json(&mut widget, 10).await["type"], "welcome");
    assert!(send_for_ack(&mut widget, "1", "question").await.is_some());
    let web_conversation = conversation_of(&d, &token, "w-1").await["id"]
        .as_u64()
        .unwrap();
    let web_answer = reply(&d, &token, web_conversation, json!({"text": "answer"})).await;
    send_json(
        &mut widget,
        json!({"type": "read", "message_id": web_answer}),
    )
    .await;
    let (read, _) = next_of_type(&mut feed, "read", 10).await;
    assert_eq!(read["message_id"].as_u64(), Some(web_answer));
    send_json(&mut widget, json!({"type": "read"})).await;
    let (error, _) = next_of_type(&mut widget, "error", 10).await;
    assert_eq!(error["code"], "bad_message_id");
    // None of it is stored: the app's message and two replies, the widget's and one.
    assert_eq!(wait_for_total(&d, &token, 5, 1).await, 5);
}

/// Runs a command, panicking with its output if it fails.
fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_ca_file_and_a_password() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("broker");
    std::fs::create_dir_all(&b).unwrap();
    std::fs::set_permissions(&b, std::fs::Permissions::from_mode(0o777)).unwrap();
    // A CA, and a server certificate it signs for 127.0.0.1.
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new("openssl")
        .current_dir(&b)
        .args(["req", "-x509"])
        .args(ec)
        .args([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=kefud test CA",
        ]));
    run(Command::new("openssl")
        .current_dir(&b)
        .arg("req")
        .args(ec)
        .args([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]));
    std::fs::write(b.join("san.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(Command::new("openssl").current_dir(&b).args([
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
    ]));
    run(Command::new("mosquitto_passwd").current_dir(&b).args([
        "-b",
        "-c",
        "passwd",
        "kefud",
        "s3cret-pass",
    ]));
    for f in std::fs::read_dir(&b).unwrap() {
        std::fs::set_permissions(f.unwrap().path(), std::fs::Permissions::from_mode(0o644))
            .unwrap();
    }
    let (tls_port, plain_port) = (free_port().unwrap(), free_port().unwrap());
    let _broker = Mosquitto::with_config(
        &b,
        &format!(
            "per_listener_settings false\nallow_anonymous false\npassword_file {0}/passwd\n\
             listener {tls_port} 127.0.0.1\ncafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\n\
             listener {plain_port} 127.0.0.1\n",
            b.display()
        ),
        plain_port,
    )
    .unwrap_or_else(|e| panic!("{e:#}"));

    add_agent(dir.path(), "li", "password-li", true);
    let config = |password: &str| {
        format!(
            "[mqtt]\nenabled = true\nport = {tls_port}\nca_file = \"{}/ca.pem\"\nusername = \"kefud\"\npassword = \"{password}\"\nkeep_alive_secs = 5\n",
            b.display()
        )
    };
    // A wrong password: refused, and the console says so.
    let d = TestDaemon::start(dir.path(), &config("wrong"));
    let token = login(&d, "li", "password-li").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = api_get(&d, &token, "/api/v1/channels").await;
        if v["channels"][0]["state"] == "disconnected" {
            assert!(
                v["channels"][0]["detail"]
                    .as_str()
                    .unwrap()
                    .contains("refused"),
                "{v}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!d.log().contains("wrong"), "the password is not logged");
    drop(d);

    let d = TestDaemon::start(dir.path(), &config("s3cret-pass"));
    let token = login(&d, "li", "password-li").await;
    wait_connected(&d, &token).await;
    let mut opts = MqttOptions::new("kiosk", "127.0.0.1", plain_port);
    opts.set_credentials("kefud", "s3cret-pass");
    let (client, mut events) = AsyncClient::new(opts, 8);
    client
        .publish(
            "kefu/in/app/tls-1",
            QoS::AtLeastOnce,
            false,
            json!({"client_id": "1", "text": "over TLS"}).to_string(),
        )
        .await
        .unwrap();
    loop {
        if let Event::Incoming(Packet::PubAck(_)) = events.poll().await.unwrap() {
            break;
        }
    }
    assert_eq!(wait_for_total(&d, &token, 1, 20).await, 1);
}

/// `mosquitto_pub -l` (the standard command-line client, from mosquitto-clients): one QoS 1
/// message per line of its stdin, all written at once; it exits once the broker acknowledged
/// every one. Killed if the test ends first.
struct CommandLinePublisher(Child);

impl CommandLinePublisher {
    fn start(port: u16, topic: &str, lines: Vec<String>) -> CommandLinePublisher {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-l"])
            .args(["-t", topic])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect(
                "mosquitto_pub is not installed: run scripts/setup-host.sh (mosquitto-clients)",
            );
        let stdin = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let mut w = std::io::BufWriter::new(stdin);
            for line in lines {
                if writeln!(w, "{line}").is_err() {
                    return;
                }
            }
            // Dropping the writer closes stdin: the publisher sends the rest and exits.
        });
        CommandLinePublisher(child)
    }

    /// Waits (bounded) until the broker has taken every line.
    fn wait(mut self, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                assert!(status.success(), "mosquitto_pub: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "mosquitto_pub did not finish");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for CommandLinePublisher {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Four command-line publishers, 10,000 QoS 1 messages each at once, to
/// `kefu/in/load/c0..c3`; client ids `c{P}-{I}`.
fn burst_of_40000(port: u16) -> Vec<CommandLinePublisher> {
    (0..4)
        .map(|p| {
            let lines = (0..10_000)
                .map(|i| {
                    json!({"client_id": format!("c{p}-{i}"), "text": format!("burst message {i} from c{p}")})
                        .to_string()
                })
                .collect();
            CommandLinePublisher::start(port, &format!("kefu/in/load/c{p}"), lines)
        })
        .collect()
}

/// Every message of [`burst_of_40000`] is stored exactly once: 10,000 per contact.
async fn assert_burst_stored_once(d: &TestDaemon, token: &str) {
    let total = wait_for_total(d, token, 40_000, 90).await;
    let counts = stored_counts(d, token).await;
    let missing: Vec<_> = (0..4)
        .map(|p| missing(d, &format!("c{p}"), 10_000).len())
        .collect();
    assert_eq!(
        total, 40_000,
        "every message stored exactly once: {counts:?}, missing per publisher {missing:?}"
    );
    for p in 0..4 {
        assert_eq!(counts[&format!("c{p}")], 10_000);
    }
}

/// The tail of a daemon's log (a burst's log is long).
fn log_tail(d: &TestDaemon) -> String {
    let log = d.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Issue finding 10: under a burst the bridge's event loop waited for the acknowledger while
/// the acknowledger waited for the event loop; thousands of messages were journaled and
/// never acknowledged, and the bridge took nothing more, for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_40000_from_command_line_clients_is_stored_once_and_all_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let broker = image_broker(&dir.path().join("broker"));
    add_agent(dir.path(), "li", "password-li", true);
    let d = TestDaemon::start(dir.path(), &mqtt_config(broker.port));
    let token = login(&d, "li", "password-li").await;
    wait_connected(&d, &token).await;

    for publisher in burst_of_40000(broker.port) {
        publisher.wait(120);
    }
    // Every message received is acknowledged to the broker (PUBACK written), within a bound
    // far above the time it takes.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = api_get(&d, &token, "/api/v1/channels").await;
        let counters = &v["channels"][0]["counters"];
        let (received, acknowledged) = (
            counters["received"].as_u64().unwrap(),
            counters["acknowledged"].as_u64().unwrap(),
        );
        if received >= 40_000 && acknowledged == received {
            assert_eq!(v["channels"][0]["state"], "connected", "{v}");
            assert_eq!(counters["awaiting_puback"], 0, "{v}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kefud acknowledged {acknowledged} of {received} received: {v}\n{}",
            log_tail(&d)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_burst_stored_once(&d, &token).await;
    let metrics = Client::new()
        .get(d.http("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("kefud_channel_stalled{adapter=\"mqtt\"} 0"),
        "{metrics}"
    );

    // The bridge still takes messages.
    CommandLinePublisher::start(
        broker.port,
        "kefu/in/load/after",
        vec![json!({"client_id": "after-0", "text": "after the burst"}).to_string()],
    )
    .wait(20);
    assert_eq!(
        wait_for_total(&d, &token, 40_001, 20).await,
        40_001,
        "{}",
        log_tail(&d)
    );
}

/// SIGTERM in the middle of a burst: kefud stops within the bound (`TestDaemon::terminate`
/// allows 20 s), cleanly; what it had not acknowledged the broker sends again after the
/// restart, so every message is stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_in_the_middle_of_a_burst_stops_in_time_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = image_broker(&dir.path().join("broker"));
    add_agent(dir.path(), "li", "password-li", true);
    let d = TestDaemon::start(dir.path(), &mqtt_config(broker.port));
    let token = login(&d, "li", "password-li").await;
    wait_connected(&d, &token).await;

    let publishers = burst_of_40000(broker.port);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, received) = channel_counter(&d, &token, "received").await;
        if received >= 10_000 {
            break;
        }
        assert!(Instant::now() < deadline, "{received} received");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, log) = d.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("stopped cleanly; journal synced"));
    for publisher in publishers {
        publisher.wait(120);
    }

    let d = TestDaemon::start(dir.path(), &mqtt_config(broker.port));
    let token = login(&d, "li", "password-li").await;
    assert_burst_stored_once(&d, &token).await;
}
