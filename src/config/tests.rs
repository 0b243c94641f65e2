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

#[test]
fn backup_keys_are_checked_only_when_backups_are_on() {
    let off = Config::parse("[backup]\ninterval_secs = 1\nkeep = 0\n").unwrap();
    assert!(off.validate().is_empty(), "{:?}", off.validate());
    let bad = Config::parse(
        "[storage]\ndata_dir = \"/var/lib/kefud\"\n\
         [backup]\ndirectory = \"/var/lib/kefud/backups\"\ninterval_secs = 59\nkeep = 0\n",
    )
    .unwrap();
    let keys: Vec<_> = bad.validate().into_iter().map(|e| e.key).collect();
    assert_eq!(
        keys,
        ["backup.directory", "backup.interval_secs", "backup.keep"]
    );
    let relative = Config::parse("[backup]\ndirectory = \"usb\"\n").unwrap();
    assert_eq!(relative.validate()[0].key, "backup.directory");
    let good = Config::parse(
        "[backup]\ndirectory = \"/media/usb/kefud\"\ninterval_secs = 3600\nkeep = 3\n",
    )
    .unwrap();
    assert!(good.validate().is_empty(), "{:?}", good.validate());
}

#[test]
fn cluster_keys_are_checked_only_when_the_cluster_is_on() {
    let off = Config::parse("[cluster]\nname = \"a/b\"\nsecret = \"short\"\n").unwrap();
    assert!(off.validate().is_empty(), "{:?}", off.validate());
    let bad = Config::parse(
        "[cluster]\nenabled = true\nname = \"tea/#\"\nsecret = \"\"\nmax_clock_ahead_ms = 0\n",
    )
    .unwrap();
    let keys: Vec<_> = bad.validate().into_iter().map(|e| e.key).collect();
    assert_eq!(
        keys,
        [
            "cluster.name",
            "cluster.secret",
            "cluster.max_clock_ahead_ms"
        ]
    );
    let good = Config::parse(
        "[cluster]\nenabled = true\nname = \"tea-shops\"\nsecret = \"0123456789abcdef\"\n",
    )
    .unwrap();
    assert!(good.validate().is_empty(), "{:?}", good.validate());
    assert!(!good.cluster.weak_secret());
    let short =
        Config::parse("[cluster]\nenabled = true\nname = \"t\"\nsecret = \"s3cret\"\n").unwrap();
    assert!(
        short.validate().is_empty(),
        "taken, with a warning at start"
    );
    assert!(short.cluster.weak_secret());
}

#[test]
fn formatting_a_config_shows_no_secret() {
    let cfg = Config::parse(
        "[mqtt]\nusername = \"shop\"\npassword = \"mqtt-password-1\"\n\
         [[webhooks]]\nchannel = \"app\"\nurl = \"http://127.0.0.1:9/hook\"\nsecret = \"webhook-secret-22\"\n\
         [wechat]\nenabled = true\ntoken = \"wechattoken333\"\napp_id = \"wx1234567890abcdef\"\n\
         app_secret = \"app-secret-4444\"\nencoding_aes_key = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\"\n\
         [cluster]\nenabled = true\nname = \"tea\"\nsecret = \"cluster-secret-55555\"\n",
    )
    .unwrap();
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    assert_eq!(cfg.mqtt.password.expose(), "mqtt-password-1");
    assert_eq!(cfg.webhooks[0].secret.expose(), "webhook-secret-22");
    let key = cfg
        .wechat
        .encoding_aes_key
        .as_ref()
        .expect("decoded at parse");
    assert_eq!(
        key.expose().bytes()[..4],
        [0x69, 0xb7, 0x1d, 0x79],
        "the key's bytes, not its text"
    );
    for shown in [format!("{cfg:?}"), format!("{cfg:#?}")] {
        for secret in [
            "mqtt-password-1",
            "webhook-secret-22",
            "wechattoken333",
            "app-secret-4444",
            "cluster-secret-55555",
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            // The decoded key's first bytes, as `Debug` of a byte array would print them.
            "105, 183, 29, 121",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("wx1234567890abcdef"), "not secret: {shown}");
        assert_eq!(shown.matches("(redacted)").count(), 6, "{shown}");
    }
}

#[test]
fn an_encoding_aes_key_is_decoded_once_as_the_file_is_parsed() {
    assert_eq!(Config::default().wechat.encoding_aes_key, None);
    let plain = Config::parse("[wechat]\nencoding_aes_key = \"\"\n").unwrap();
    assert_eq!(plain.wechat.encoding_aes_key, None);
    let err = Config::parse("[wechat]\nencoding_aes_key = \"short\"\n").unwrap_err();
    assert!(
        err.contains("encoding_aes_key") && err.contains("43-character EncodingAESKey"),
        "{err}"
    );
    // A reload tells a changed key (or secret) from the same one.
    let a = Config::parse(
        "[wechat]\nencoding_aes_key = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\"\n",
    )
    .unwrap();
    let b = Config::parse(
        "[wechat]\nencoding_aes_key = \"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg\"\n",
    )
    .unwrap();
    assert_eq!(a.clone().reloadable_from(&a).1, Vec::<&str>::new());
    assert_eq!(b.reloadable_from(&a).1, ["wechat"]);
    let c = Config::parse("[mqtt]\npassword = \"other\"\n").unwrap();
    assert_eq!(c.reloadable_from(&Config::default()).1, ["mqtt"]);
}
