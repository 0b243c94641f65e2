//! `kefud export [--contact ID]` against the real binary, while the daemon runs: valid JSON
//! Lines with every contact, conversation and message, or one customer's own.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// `kefud export ARGS` on `dir`'s config: (success, stdout's lines parsed, stderr).
fn export(dir: &std::path::Path, args: &[&str]) -> (bool, Vec<Value>, String) {
    let out = std::process::Command::new(kefud_bin())
        .arg("--config")
        .arg(dir.join("kefud.toml"))
        .arg("export")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    (
        out.status.success(),
        lines,
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn of_type<'a>(lines: &'a [Value], ty: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["type"] == ty).collect()
}

#[tokio::test]
async fn export_prints_json_lines_of_everything_or_one_customer() {
    let tmp = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(tmp.path(), "[store]\ncommit_interval_ms = 20\n");
    send_n(&d, "ex1", 3, 10).await;
    send_n(&d, "ex2", 2, 10).await;

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let lines = loop {
        let (ok, lines, err) = export(tmp.path(), &[]);
        assert!(ok, "{err}");
        if of_type(&lines, "message").len() == 5 {
            assert!(err.contains("exported 9 records"), "{err}");
            break lines;
        }
        assert!(std::time::Instant::now() < deadline, "{lines:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(of_type(&lines, "contact").len(), 2);
    assert_eq!(of_type(&lines, "conversation").len(), 2);
    let kinds: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    let mut sorted = kinds.clone();
    sorted.sort_by_key(|k| {
        ["contact", "conversation", "message"]
            .iter()
            .position(|x| x == k)
    });
    assert_eq!(kinds, sorted, "contacts, then conversations, then messages");
    let ex1 = of_type(&lines, "contact")
        .into_iter()
        .find(|c| c["identities"][0]["external_id"] == "ex1")
        .expect("ex1's contact with its identity");
    let id = ex1["id"].as_i64().unwrap();
    let message = of_type(&lines, "message")[0];
    assert_eq!(message["sender"], "visitor");
    assert_eq!(message["text"], "y".repeat(10));

    let (ok, own, err) = export(tmp.path(), &["--contact", &id.to_string()]);
    assert!(ok, "{err}");
    assert_eq!(of_type(&own, "contact").len(), 1);
    assert_eq!(of_type(&own, "conversation").len(), 1);
    assert_eq!(of_type(&own, "message").len(), 3);
    assert!(own
        .iter()
        .filter(|l| l["type"] != "contact")
        .all(|l| l["contact_id"] == id));

    let (ok, none, err) = export(tmp.path(), &["--contact", "999999"]);
    assert!(
        !ok && none.is_empty() && err.contains("no contact 999999"),
        "{err}"
    );
}
