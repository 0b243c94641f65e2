//! `kefud import history|gofly FILE` against the real binary: what comes in is seen through
//! the API as it was (times, senders, conversations cut at gaps, names, agents, canned
//! replies); bad rows are named by line and skipped; a second run imports nothing; an import
//! killed at random points and run again ends with every message exactly once.

mod common;

use std::path::Path;

use common::*;
use serde_json::{json, Value};

const HOUR_MS: i64 = 3_600_000;

/// `kefud --config dir/kefud.toml import ARGS`: (success, stdout, stderr).
fn import(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let config = dir.join("kefud.toml");
    if !config.exists() {
        write_config(dir, "");
    }
    let out = std::process::Command::new(kefud_bin())
        .arg("--config")
        .arg(&config)
        .arg("import")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

async fn get(d: &TestDaemon, token: &str, path: &str) -> Value {
    let resp = reqwest::Client::new()
        .get(d.http(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

/// Every conversation, oldest first, each with its messages.
async fn everything(d: &TestDaemon, token: &str) -> Vec<(Value, Vec<Value>)> {
    let list = get(d, token, "/api/v1/conversations?status=all&limit=500").await;
    let mut conversations: Vec<Value> = list["conversations"].as_array().unwrap().clone();
    conversations.sort_by_key(|c| c["id"].as_u64());
    let mut out = Vec::new();
    for c in conversations {
        let messages = get(
            d,
            token,
            &format!("/api/v1/conversations/{}/messages", c["id"]),
        )
        .await;
        let messages = messages["messages"].as_array().cloned().unwrap_or_default();
        out.push((c, messages));
    }
    out
}

fn jsonl(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[tokio::test]
async fn a_history_file_comes_in_once_cut_into_conversations_with_bad_lines_named() {
    let tmp = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let old = now - 400 * HOUR_MS;
    let file = tmp.path().join("history.jsonl");
    let mut lines = vec![
        json!({"contact":"c1","sender":"customer","text":"where is my order?","time":old,"name":"Li Lei"}),
        json!({"contact":"c1","sender":"agent","agent":"mei","text":"it ships today","time":old + 60_000}),
        // Thirty hours later: another conversation.
        json!({"contact":"c1","sender":"customer","text":"它到了 😀","time":old + 30 * HOUR_MS}),
        json!({"contact":"c2","sender":"customer","text":"are you open?","time":now - HOUR_MS, "channel":"wechat"}),
    ];
    lines.insert(
        2,
        json!({"contact":"c1","sender":"robot","text":"x","time":old + 1}),
    );
    let mut text = jsonl(&lines);
    text.push_str("{not json\n");
    std::fs::write(&file, text).unwrap();

    let (ok, out, err) = import(tmp.path(), &["history", file.to_str().unwrap()]);
    assert!(!ok, "bad rows make the exit non-zero: {out}{err}");
    assert!(err.contains("line 3:") && err.contains("robot"), "{err}");
    assert!(
        err.contains("line 6:") && err.contains("not a JSON object"),
        "{err}"
    );
    assert!(err.contains("2 rows could not be imported"), "{err}");

    // Run again: nothing new.
    let (ok, _, err) = import(tmp.path(), &["history", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("imported 0 messages"), "{err}");
    assert!(
        err.contains("4 messages were imported by an earlier run"),
        "{err}"
    );

    add_agent(tmp.path(), "admin", "admin password", true);
    let d = TestDaemon::start(tmp.path(), "");
    let token = login(&d, "admin", "admin password").await;
    let all = everything(&d, &token).await;
    assert_eq!(all.len(), 3, "{all:?}");
    let (first, first_messages) = &all[0];
    assert_eq!(first["status"], "idle", "old: resolved and closed");
    assert_eq!(first["contact_name"], "Li Lei");
    assert_eq!(first["created_at"].as_i64(), Some(old));
    let texts: Vec<(&str, &str, i64)> = first_messages
        .iter()
        .map(|m| {
            (
                m["sender"].as_str().unwrap(),
                m["text"].as_str().unwrap(),
                m["created_at"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        texts,
        vec![
            ("visitor", "where is my order?", old),
            ("agent", "it ships today", old + 60_000)
        ]
    );
    assert!(first_messages[1]["agent_id"].as_u64().is_some());
    assert_eq!(all[1].1[0]["text"], "它到了 😀");
    assert_eq!(
        all[1].0["contact_id"], first["contact_id"],
        "the same customer"
    );
    let (recent, _) = &all[2];
    assert_eq!(recent["status"], "waiting", "recent: waits for a person");
    assert_eq!(recent["channel"], "wechat");

    // The agent the history names came across disabled, without a password.
    let agents = get(&d, &token, "/api/v1/agents").await;
    let mei = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["username"] == "mei")
        .expect("agent mei");
    assert_eq!(mei["disabled"], true);
    let _ = d.terminate();
}

#[test]
fn an_import_refuses_a_running_daemon_a_missing_file_and_a_csv_without_its_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, _, err) = import(tmp.path(), &["history", "/nonexistent/file.jsonl"]);
    assert!(!ok);
    assert!(err.contains("cannot read /nonexistent/file.jsonl"), "{err}");
    let csv = tmp.path().join("h.csv");
    std::fs::write(&csv, "contact,text\nc1,hello\n").unwrap();
    let (ok, _, err) = import(tmp.path(), &["history", csv.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("lacks sender, time"), "{err}");
    let d = TestDaemon::start(tmp.path(), "");
    std::fs::write(
        &csv,
        "contact,sender,text,time\nc1,visitor,hi,2024-01-01 10:00:00\n",
    )
    .unwrap();
    let (ok, _, err) = import(tmp.path(), &["history", csv.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("stop it first"), "{err}");
    let _ = d.terminate();
    let (ok, out, err) = import(tmp.path(), &["history", csv.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("imported 1 messages"), "{out}");
}

/// A data directory as compared: (message key, contact, conversation ordinal within the
/// contact, sender, text, time), sorted, and the contacts' names.
type Projection = (
    Vec<(String, String, usize, String, String, i64)>,
    Vec<String>,
);

/// `kefud export` of `dir`, as a [`Projection`].
fn projection(dir: &Path) -> Projection {
    let out = std::process::Command::new(kefud_bin())
        .arg("--config")
        .arg(dir.join("kefud.toml"))
        .arg("export")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let external = |contact: &Value| -> String {
        lines
            .iter()
            .find(|l| l["type"] == "contact" && l["id"] == *contact)
            .map(|c| {
                c["identities"][0]["external_id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .unwrap()
    };
    // Conversations numbered per contact in id order, so two data directories compare.
    let mut ordinal = std::collections::HashMap::new();
    let mut per_contact = std::collections::HashMap::<String, usize>::new();
    for c in lines.iter().filter(|l| l["type"] == "conversation") {
        let who = external(&c["contact_id"]);
        let n = per_contact.entry(who).or_default();
        ordinal.insert(c["id"].as_u64().unwrap(), *n);
        *n += 1;
    }
    let mut messages: Vec<_> = lines
        .iter()
        .filter(|l| l["type"] == "message")
        .map(|m| {
            (
                m["client_id"].as_str().unwrap().to_string(),
                external(&m["contact_id"]),
                ordinal[&m["conversation_id"].as_u64().unwrap()],
                m["sender"].as_str().unwrap().to_string(),
                m["text"].as_str().unwrap().to_string(),
                m["created_at"].as_i64().unwrap(),
            )
        })
        .collect();
    messages.sort();
    let mut names: Vec<String> = lines
        .iter()
        .filter(|l| l["type"] == "contact")
        .map(|c| format!("{}={}", external(&c["id"]), c["name"]))
        .collect();
    names.sort();
    (messages, names)
}

#[test]
fn an_import_killed_at_random_points_and_run_again_has_every_message_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("big.jsonl");
    let start = 1_600_000_000_000i64;
    let mut text = String::new();
    let total = 20_000;
    for i in 0..total {
        let contact = (i * 7919) % 250;
        // Every contact's stream has gaps of a day and more now and then.
        let at = start + i as i64 * 600_000;
        let sender = if i % 3 == 0 { "agent" } else { "customer" };
        text.push_str(
            &json!({"contact": format!("c{contact}"), "sender": sender, "agent": "li",
                    "text": format!("message {i}"), "time": at, "name": format!("name {contact}")})
            .to_string(),
        );
        text.push('\n');
    }
    std::fs::write(&file, text).unwrap();

    // The reference: one clean run.
    let clean = tmp.path().join("clean");
    std::fs::create_dir_all(&clean).unwrap();
    let started = std::time::Instant::now();
    let (ok, out, err) = import(&clean, &["history", file.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    // Kills land at fractions of a whole run's time, so they fall inside the import however
    // fast the machine (or slow the emulator) is.
    let whole_run = started.elapsed();
    let reference = projection(&clean);
    assert_eq!(reference.0.len(), total);

    // Killed at pseudo-random points, then run to the end.
    let crashed = tmp.path().join("crashed");
    std::fs::create_dir_all(&crashed).unwrap();
    write_config(&crashed, "");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut kills = 0;
    let mut partial = 0;
    // Up to 12 runs, until 3 kills have landed mid-import. A run that finishes before its kill
    // (a resumed import has less left to do) is wiped, so the next one has the whole file again.
    for _ in 0..12 {
        if partial == 3 {
            break;
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = std::process::Command::new(kefud_bin())
            .arg("--config")
            .arg(crashed.join("kefud.toml"))
            .args(["import", "history", file.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Between a fifth and nine tenths of a whole run.
        let fraction = 0.2 + (seed % 1000) as f64 / 1000.0 * 0.7;
        std::thread::sleep(whole_run.mul_f64(fraction));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        } else {
            child.wait().unwrap();
            std::fs::remove_dir_all(crashed.join("data")).unwrap();
            continue;
        }
        child.wait().unwrap();
        if crashed.join("data/kefud.db").exists() {
            let held = projection(&crashed).0.len();
            if 0 < held && held < total {
                partial += 1;
            }
        }
    }
    assert!(partial > 0, "no kill landed mid-import ({kills} kills)");
    let (ok, out, err) = import(&crashed, &["history", file.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let after = projection(&crashed);
    assert_eq!(after.0.len(), total, "every message once ({kills} kills)");
    assert_same(&after, &reference, &format!("after {kills} kills"));
    assert_eq!(
        search_index_entries(&crashed),
        (total as i64, None),
        "every message in the search index, no backlog left"
    );
    // And once more: nothing new.
    let (ok, out, err) = import(&crashed, &["history", file.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("imported 0 messages"), "{out}");
    assert_same(&projection(&crashed), &reference, "a run after the end");
}

/// The messages in `dir`'s search index (FTS5 keeps a size row per indexed message) and the
/// store's search backlog mark, if any.
fn search_index_entries(dir: &Path) -> (i64, Option<i64>) {
    let conn = rusqlite::Connection::open(dir.join("data/kefud.db")).unwrap();
    let indexed = conn
        .query_row("SELECT COUNT(*) FROM messages_fts_docsize", [], |r| {
            r.get(0)
        })
        .unwrap();
    let backlog = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'search_backlog_from'",
            [],
            |r| r.get(0),
        )
        .ok();
    (indexed, backlog)
}

/// Two projections are equal; else the first differences, briefly.
fn assert_same(got: &Projection, want: &Projection, what: &str) {
    let differ: Vec<_> = got
        .0
        .iter()
        .zip(&want.0)
        .filter(|(g, w)| g != w)
        .take(5)
        .collect();
    assert!(
        differ.is_empty() && got.0.len() == want.0.len(),
        "{what}: {} vs {} messages; first differences (got, want): {differ:?}",
        got.0.len(),
        want.0.len()
    );
    assert_eq!(got.1, want.1, "{what}: contact names");
}

/// A go-fly dump as mysqldump writes it (tables in name order, extended inserts), with every
/// feature the import must handle: escapes, NULLs, 4-byte emoji, image and emoticon markup,
/// MD5 agents, canned replies, a deleted row, a visitor id kefud cannot take as it is, a
/// complete-insert statement, a broken tuple, and the dump's time zone.
fn gofly_dump(recent: &str) -> String {
    format!(
        r#"-- MySQL dump 10.13  Distrib 5.7.40, for Linux (x86_64)
--
-- Host: localhost    Database: goflychat
/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+08:00' */;

DROP TABLE IF EXISTS `message`;
CREATE TABLE `message` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `kefu_id` varchar(100) NOT NULL DEFAULT '',
  `visitor_id` varchar(100) NOT NULL DEFAULT '',
  `content` varchar(2048) NOT NULL DEFAULT '',
  `created_at` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
  `updated_at` timestamp NULL DEFAULT NULL,
  `deleted_at` timestamp NULL DEFAULT NULL,
  `mes_type` enum('kefu','visitor') NOT NULL DEFAULT 'visitor',
  `status` enum('read','unread') NOT NULL DEFAULT 'unread',
  PRIMARY KEY (`id`),
  KEY `kefu_id` (`kefu_id`)
) ENGINE=InnoDB AUTO_INCREMENT=9 DEFAULT CHARSET=utf8mb4;
LOCK TABLES `message` WRITE;
/*!40000 ALTER TABLE `message` DISABLE KEYS */;
INSERT INTO `message` VALUES (1,'agent','v-1','你好，请问\'拿铁\'多少钱？face[微笑]','2020-06-28 10:00:00',NULL,NULL,'visitor','read'),(2,'agent','v-1','28元 \"大杯\"\n谢谢 😀','2020-06-28 10:01:00',NULL,NULL,'kefu','read'),(3,'agent','v-1','img[/static/upload/2020June/a.png]','2020-06-28 10:02:00',NULL,NULL,'visitor','read'),(4,'agent','v-1','back\\slash\ttab','2020-07-05 09:00:00',NULL,NULL,'visitor','unread'),(5,'agent','weird id/2','deleted','2020-07-05 09:00:00',NULL,'2020-07-06 00:00:00','visitor','read'),(6,'agent','weird id/2','hello from a weird id','2020-07-05 09:30:00',NULL,NULL,'visitor','read'),(7,'agent','v-1' 'broken tuple','2020-07-05 09:31:00',NULL,NULL,'visitor','read');
INSERT INTO `message` (`id`, `kefu_id`, `visitor_id`, `content`, `created_at`, `updated_at`, `deleted_at`, `mes_type`, `status`) VALUES (8,'','v-3','are you open today?','{recent}',NULL,NULL,'visitor','unread');
/*!40000 ALTER TABLE `message` ENABLE KEYS */;
UNLOCK TABLES;

DROP TABLE IF EXISTS `reply_group`;
CREATE TABLE `reply_group` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `group_name` varchar(50) NOT NULL DEFAULT '',
  `user_id` varchar(50) NOT NULL DEFAULT '',
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;
INSERT INTO `reply_group` VALUES (1,'Frequently Asked Questions','agent');

DROP TABLE IF EXISTS `reply_item`;
CREATE TABLE `reply_item` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `content` varchar(1024) NOT NULL DEFAULT '',
  `group_id` int(11) NOT NULL DEFAULT '0',
  `user_id` varchar(50) NOT NULL DEFAULT '',
  `item_name` varchar(50) NOT NULL DEFAULT '',
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;
INSERT INTO `reply_item` VALUES (1,'We open at 9 face[good]',1,'agent','hours'),(2,'Free delivery over 50',1,'agent','');

DROP TABLE IF EXISTS `user`;
CREATE TABLE `user` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `name` varchar(50) NOT NULL DEFAULT '',
  `password` varchar(50) NOT NULL DEFAULT '',
  `nickname` varchar(50) NOT NULL DEFAULT '',
  `created_at` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
  `updated_at` timestamp NULL DEFAULT NULL,
  `deleted_at` timestamp NULL DEFAULT NULL,
  `avator` varchar(100) NOT NULL DEFAULT '',
  PRIMARY KEY (`id`),
  UNIQUE KEY `idx_name` (`name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;
INSERT INTO `user` VALUES (1,'agent','b33aed8f3134996703dc39f9a7c95783','小王 Support','2020-06-27 19:32:41','2020-07-04 09:32:20',NULL,'/static/images/4.jpg');

DROP TABLE IF EXISTS `visitor`;
CREATE TABLE `visitor` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `name` varchar(50) NOT NULL DEFAULT '',
  `avator` varchar(500) NOT NULL DEFAULT '',
  `source_ip` varchar(50) NOT NULL DEFAULT '',
  `to_id` varchar(50) NOT NULL DEFAULT '',
  `created_at` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
  `updated_at` timestamp NULL DEFAULT NULL,
  `deleted_at` timestamp NULL DEFAULT NULL,
  `visitor_id` varchar(100) NOT NULL DEFAULT '',
  `status` tinyint(4) NOT NULL DEFAULT '0',
  `refer` varchar(500) NOT NULL DEFAULT '',
  `city` varchar(100) NOT NULL DEFAULT '',
  `client_ip` varchar(100) NOT NULL DEFAULT '',
  `extra` varchar(2048) NOT NULL DEFAULT '',
  PRIMARY KEY (`id`),
  UNIQUE KEY `visitor_id` (`visitor_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;
INSERT INTO `visitor` VALUES (1,'北京网友','/static/images/1.jpg','1.2.3.4','agent','2020-06-28 09:59:00',NULL,NULL,'v-1',0,'https://shop.example/?a=1&b=\'2\'','北京','1.2.3.4','{{\"lang\":\"zh\",\"ua\":\"Mozilla\"}}'),(2,'','','','agent','2020-07-05 08:00:00',NULL,NULL,'weird id/2',0,'','','',''),(3,'Visitor 3','','','agent','2020-07-05 08:00:00',NULL,NULL,'v-3',0,'','Shanghai','',NULL);
UNLOCK TABLES;
"#
    )
}

#[tokio::test]
async fn a_gofly_dump_comes_in_with_agents_visitors_canned_replies_and_readable_markup() {
    let tmp = tempfile::tempdir().unwrap();
    // The dump's zone is +08:00: "recent" is written as local time there.
    let recent_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 2 * HOUR_MS;
    let recent_secs = recent_ms / 1000 + 8 * 3600;
    let recent = chrono_like(recent_secs);
    let dump = tmp.path().join("gofly.sql");
    std::fs::write(&dump, gofly_dump(&recent)).unwrap();

    let (ok, out, err) = import(tmp.path(), &["gofly", dump.to_str().unwrap(), "--check"]);
    assert!(!ok, "the broken tuple is a bad row: {out}{err}");
    assert!(err.contains("would import 6 messages"), "{err}");
    assert!(
        !tmp.path().join("data/kefud.db").exists(),
        "a check writes nothing"
    );

    let (ok, out, err) = import(tmp.path(), &["gofly", dump.to_str().unwrap()]);
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains("line 24: message:"),
        "the broken tuple, by line: {err}"
    );
    assert!(err.contains("imported 6 messages"), "{err}");
    assert!(
        err.contains("1 rows deleted in the source were left out"),
        "{err}"
    );
    assert!(err.contains("2 canned replies"), "{err}");
    assert!(
        err.contains("agents created") && err.contains("agent"),
        "{err}"
    );

    let (_, _, again) = import(tmp.path(), &["gofly", dump.to_str().unwrap()]);
    assert!(again.contains("imported 0 messages"), "{again}");
    assert!(
        again.contains("6 messages were imported by an earlier run"),
        "{again}"
    );

    // go-fly's agent is disabled until it has a password; the first one enables it.
    let (ok, out) = kefud_cli(
        tmp.path(),
        &["agent", "passwd", "agent", "--password-stdin"],
        "new password 1\n",
    );
    assert!(ok, "{out}");
    let d = TestDaemon::start(tmp.path(), "");
    let token = login(&d, "agent", "new password 1").await;
    let all = everything(&d, &token).await;
    let texts: Vec<Vec<&str>> = all
        .iter()
        .map(|(_, ms)| ms.iter().map(|m| m["text"].as_str().unwrap()).collect())
        .collect();
    assert_eq!(
        texts,
        vec![
            vec![
                "你好，请问'拿铁'多少钱？🙂",
                "28元 \"大杯\"\n谢谢 😀",
                "[image: /static/upload/2020June/a.png]"
            ],
            vec!["back\\slash\ttab"],
            vec!["hello from a weird id"],
            vec!["are you open today?"],
        ],
        "cut at the week's gap; markup readable; the deleted one left out"
    );
    let (first, first_messages) = &all[0];
    assert_eq!(first["contact_name"], "北京网友");
    assert_eq!(first["status"], "idle");
    assert_eq!(first["channel"], "web");
    assert_eq!(first["external_id"], "v-1", "the visitor's go-fly id");
    // 10:00 at +08:00.
    assert_eq!(
        first_messages[0]["created_at"].as_i64(),
        Some(1_593_309_600_000)
    );
    assert_eq!(first_messages[1]["sender"], "agent");
    let (weird, _) = &all[2];
    assert!(
        weird["external_id"].as_str().unwrap().starts_with("x-"),
        "{weird}"
    );
    let (recent_conversation, recent_messages) = &all[3];
    assert_eq!(recent_conversation["status"], "waiting");
    assert_eq!(
        recent_messages[0]["created_at"].as_i64(),
        Some(recent_ms / 1000 * 1000)
    );

    // The search index, built in bulk at the end of the import, finds imported messages.
    let found = get(&d, &token, "/api/v1/search?q=%E6%8B%BF%E9%93%81").await;
    let hits = found
        .as_array()
        .or_else(|| found["messages"].as_array())
        .or_else(|| found["results"].as_array())
        .unwrap_or_else(|| panic!("{found}"));
    assert_eq!(hits.len(), 1, "one message says 拿铁: {found}");

    let canned = get(&d, &token, "/api/v1/canned").await;
    let mut replies: Vec<(String, String)> = canned
        .as_array()
        .or_else(|| canned["canned"].as_array())
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["shortcut"].as_str().unwrap().into(),
                c["text"].as_str().unwrap().into(),
            )
        })
        .collect();
    replies.sort();
    assert_eq!(
        replies,
        vec![
            (
                "Frequently-Asked-Questions".into(),
                "Free delivery over 50".into()
            ),
            ("hours".into(), "We open at 9 👍".into()),
        ]
    );
    let _ = d.terminate();

    // The visitor's details came along.
    let out = std::process::Command::new(kefud_bin())
        .arg("--config")
        .arg(tmp.path().join("kefud.toml"))
        .args(["export"])
        .output()
        .unwrap();
    let export = String::from_utf8(out.stdout).unwrap();
    let beijing: Value = export
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["type"] == "contact" && l["name"] == "北京网友")
        .unwrap();
    assert_eq!(beijing["details"]["city"], "北京");
    assert_eq!(
        beijing["details"]["referrer"],
        "https://shop.example/?a=1&b='2'"
    );
    assert_eq!(beijing["details"]["extra"]["lang"], "zh");
}

/// `secs` since the epoch as `YYYY-MM-DD HH:MM:SS` (UTC), as a dump writes it.
fn chrono_like(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
