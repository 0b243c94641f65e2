//! Unit tests of `config`.

use super::*;

#[test]
fn empty_file_is_the_defaults() {
    assert_eq!(Config::parse("").unwrap(), Config::default());
    assert!(Config::default().validate().is_empty());
}

#[test]
fn the_documented_example_is_the_defaults() {
    let example = include_str!("../../config/kefud.toml");
    assert_eq!(Config::parse(example).unwrap(), Config::default());
}

#[test]
fn a_reload_keeps_restart_only_keys_and_names_them() {
    let running = Config::default();
    let edited = Config::parse(
        "[server]\nlisten = \"127.0.0.1:9999\"\n[limits]\nmax_text_chars = 10\n\
         [conversations]\nrecent_client_ids = 8\nresolved_idle_after_secs = 60\n",
    )
    .unwrap();
    let (applied, needs_restart) = edited.reloadable_from(&running);
    assert_eq!(
        needs_restart,
        ["server.listen", "conversations.recent_client_ids"]
    );
    assert_eq!(applied.server.listen, running.server.listen);
    assert_eq!(applied.conversations.recent_client_ids, 64);
    assert_eq!(applied.limits.max_text_chars, 10);
    assert_eq!(applied.conversations.resolved_idle_after_secs, 60);
    let (same, none) = running.clone().reloadable_from(&running);
    assert_eq!((same, none), (running, Vec::<&str>::new()));
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let err = Config::parse("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
    assert!(err.contains("lisen"), "{err}");
    let err = Config::parse("[nope]\n").unwrap_err();
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn bad_values_name_their_key() {
    let err = Config::parse("[server]\nlisten = \"not an address\"\n").unwrap_err();
    assert!(err.contains("listen"), "{err}");
    let cfg = Config::parse(
        "[journal]\nsegment_bytes = 10\n[limits]\nmax_text_chars = 0\n[log]\nlevel = \"[[\"\n",
    )
    .unwrap();
    let keys: Vec<_> = cfg.validate().into_iter().map(|e| e.key).collect();
    assert_eq!(
        keys,
        vec![
            "journal.segment_bytes",
            "limits.max_text_chars",
            "log.level"
        ]
    );
}
