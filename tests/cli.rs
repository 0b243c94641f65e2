//! The command line: help, version, config checking, agent administration.

mod common;

use std::process::Command;

use common::*;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(kefud_bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn help_and_version() {
    let (code, out) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("--config") && out.contains("--check-config") && out.contains("agent"),
        "{out}"
    );
    let (code, out) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
}

#[test]
fn check_config_accepts_the_example_and_names_bad_keys() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/kefud.toml");
    assert_eq!(
        run(&["--config", example, "--check-config"]),
        (0, "config OK\n".into())
    );

    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[server]\nlisten = \"127.0.0.1:0\"\nlisen = 1\n", "lisen"),
        ("[srever]\n", "srever"),
        ("[journal]\nsegment_bytes = 12\n", "journal.segment_bytes"),
        (
            "[limits]\nmessages_per_second = 0\n",
            "limits.messages_per_second",
        ),
        ("[server]\nlisten = \"nowhere\"\n", "listen"),
        ("this is not toml", "expected"),
    ];
    for (text, key) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let (code, out) = run(&["--config", path.to_str().unwrap(), "--check-config"]);
        assert_eq!(code, 2, "{text}: {out}");
        assert!(out.contains(key), "{text}: {out}");
    }
    let (code, out) = run(&["--config", "/nonexistent/kefud.toml", "--check-config"]);
    assert_eq!(code, 2);
    assert!(out.contains("/nonexistent/kefud.toml"), "{out}");
}

#[test]
fn daemon_refuses_a_broken_config_without_starting() {
    let dir = tempfile::tempdir().unwrap();
    let log = TestDaemon::try_start(dir.path(), "[limits]\nburst = 0\nmystery = true\n")
        .err()
        .expect("must not start");
    assert!(log.contains("mystery"), "{log}");
}

#[test]
fn agent_add_list_passwd() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = kefud_cli(
        dir.path(),
        &["agent", "add", "li", "--admin", "--password-stdin"],
        "s3cret-pass\n",
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("added agent li") && out.contains("admin"),
        "{out}"
    );
    let (ok, out) = kefud_cli(
        dir.path(),
        &["agent", "add", "wang", "--password-stdin"],
        "short\n",
    );
    assert!(!ok && out.contains("at least 8"), "{out}");
    let (ok, out) = kefud_cli(
        dir.path(),
        &["agent", "add", "li", "--password-stdin"],
        "another-pass\n",
    );
    assert!(!ok && out.contains("taken"), "{out}");
    let (ok, out) = kefud_cli(dir.path(), &["agent", "list"], "");
    assert!(ok && out.contains("li") && out.contains("admin"), "{out}");
    let (ok, out) = kefud_cli(
        dir.path(),
        &["agent", "passwd", "nobody", "--password-stdin"],
        "whatever-pass\n",
    );
    assert!(!ok && out.contains("no agent named"), "{out}");

    // passwd while the daemon runs: the old password stops working, the new one works.
    let d = TestDaemon::start(dir.path(), "");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(login(&d, "li", "s3cret-pass"));
    let (ok, out) = kefud_cli(
        dir.path(),
        &["agent", "passwd", "li", "--password-stdin"],
        "brand-new-pass\n",
    );
    assert!(ok, "{out}");
    rt.block_on(login(&d, "li", "brand-new-pass"));
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(d.http("/api/v1/login"))
            .json(&serde_json::json!({"username": "li", "password": "s3cret-pass"}))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 401);
}
