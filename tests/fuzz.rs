//! Fuzz targets for every parser that reads the network or the disk, run by bolero.
//!
//! Under `cargo test` (stable) each target first replays its committed corpus,
//! `tests/__fuzz__/TARGET/corpus/` (valid examples and known edge cases, and every input that
//! once found a bug), then tries random inputs for about a second (at most 10,000). The seeds
//! are random on every run; a failure prints the input and a `BOLERO_RANDOM_SEED` that
//! replays it. `KEFUD_FUZZ_SECS=N` gives every target N seconds instead: the long random
//! campaign. The same targets run coverage-guided under bolero's libFuzzer engine (README,
//! "Fuzzing").
//!
//! Each target checks that the parser never panics, that no input of at most [`MAX_INPUT`]
//! bytes makes it allocate more than [`MAX_ALLOCATION`] at once or take more than
//! [`MAX_INPUT_TIME`], and, where there is a way back (operations, frames, knowledge-base
//! exports), that the round trip gives the same thing.
//!
//! Targets: visitor frames (the WebSocket contract), MQTT inbound messages, WeChat XML and
//! safe-mode decryption, journal frames, journal operations, journal recovery over segment
//! files, knowledge-base imports (JSON Lines and CSV), the config file, image sniffing of
//! uploads, and the outgoing-call URLs. The agents' live feed is server-to-console only and
//! their requests are serde-derived JSON bodies, so there is no agent frame parser to fuzz.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use kefud::channel::{mqtt, wechat};
use kefud::config::Config;
use kefud::conversation::Status;
use kefud::http::uploads::sniff_image;
use kefud::httpc::Url;
use kefud::journal::{frame, recovery, segment};
use kefud::model::{Identity, Sender};
use kefud::op::{HandoffReason, KbEntry, MessageAdded, Op, StatusChanged};
use kefud::routing::knowledge::{self, Format};
use kefud::{wechat_crypto, wire};

#[path = "fuzz/segments.rs"]
mod segments;
use segments::Segments;

/// The largest input a target takes; longer ones (from a corpus file) are skipped.
const MAX_INPUT: usize = 64 * 1024;
/// The largest single allocation any parser may make for an input of at most [`MAX_INPUT`].
const MAX_ALLOCATION: usize = 4 * 1024 * 1024;
/// The longest one input may take (a debug build, possibly under qemu-user).
const MAX_INPUT_TIME: Duration = Duration::from_secs(10);

thread_local! {
    /// The largest allocation this thread made since [`check`] last reset it.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, noting the largest request per thread (each target runs on its own
/// test thread).
struct Watching;

fn note(size: usize) {
    // `try_with`: a thread being torn down has no slot left, and allocating must not fail.
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to `System`; the bookkeeping neither allocates
// nor unwinds.
unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// Runs `target` on one input, checking the bounds every target shares.
fn check(input: &[u8], target: impl FnOnce(&[u8])) {
    if input.len() > MAX_INPUT {
        return;
    }
    LARGEST.with(|l| l.set(0));
    let started = Instant::now();
    target(input);
    let took = started.elapsed();
    let largest = LARGEST.with(Cell::get);
    assert!(
        largest <= MAX_ALLOCATION,
        "one allocation of {largest} bytes for a {}-byte input",
        input.len()
    );
    assert!(
        took <= MAX_INPUT_TIME,
        "{took:?} for a {}-byte input",
        input.len()
    );
}

/// Runs a target through bolero: the corpus, then random inputs for the budget.
macro_rules! fuzz {
    ($name:literal, $target:expr) => {{
        let (time, iterations) = budget();
        bolero::check!(name = $name)
            .with_test_time(time)
            .with_iterations(iterations)
            .for_each(|input: &[u8]| check(input, $target));
    }};
}

/// Random inputs per target: about a second and at most 10,000, or `KEFUD_FUZZ_SECS` seconds.
fn budget() -> (Duration, usize) {
    match std::env::var("KEFUD_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(secs) => (Duration::from_secs(secs), usize::MAX),
        None => (Duration::from_secs(1), 10_000),
    }
}

/// The input as text: parsers of network text get UTF-8 (hyper and tungstenite check it).
fn text(input: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(input)
}

/// The input cut in two at a place its first byte chooses.
fn split(input: &[u8]) -> (&[u8], &[u8]) {
    match input.split_first() {
        Some((&at, rest)) => rest.split_at(usize::from(at).min(rest.len())),
        None => (&[], &[]),
    }
}

#[test]
fn visitor_frame() {
    fuzz!("visitor_frame", |input| {
        let raw = text(input);
        let _ = wire::frame_client_id(&raw);
        match wire::parse_visitor_frame(&raw, 2000) {
            Ok(wire::VisitorFrame::Message {
                client_id,
                text,
                attachment,
            }) => {
                assert!(!client_id.is_empty());
                assert!(text.chars().count() <= 2000);
                assert!(!text.trim().is_empty() || attachment.is_some());
                assert!(attachment.as_deref().map_or(true, wire::is_upload_id));
            }
            Ok(wire::VisitorFrame::Read { message_id }) => {
                assert!(i64::try_from(message_id).is_ok_and(|id| id > 0));
            }
            Ok(wire::VisitorFrame::Typing) | Err(_) => {}
        }
    });
}

#[test]
fn mqtt_inbound() {
    fuzz!("mqtt_inbound", |input| {
        let (topic, payload) = split(input);
        let publish = rumqttc::Publish::new(text(topic), rumqttc::QoS::AtLeastOnce, payload);
        if let Ok((channel, contact, _)) = mqtt::parse_inbound("kefu", &publish) {
            assert!(!channel.is_empty() && !contact.is_empty() && !contact.contains('/'));
            assert_eq!(publish.topic, format!("kefu/in/{channel}/{contact}"));
        }
    });
}

#[test]
fn wechat_xml() {
    fuzz!("wechat_xml", |input| {
        let xml = text(input);
        let _ = wechat::encrypted_field(&xml);
        if let Ok(m) = wechat::parse_message(&xml) {
            assert!(!m.client_id.is_empty());
        }
    });
}

/// The EncodingAESKey of WeChat's documentation, and an app id.
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APP_ID: &str = "wx1234567890abcdef";

#[test]
fn wechat_decrypt() {
    use aes::cipher::{block_padding::NoPadding, BlockEncryptMut, KeyIvInit};
    use base64::Engine;
    let key = wechat_crypto::AesKey::parse(AES_KEY).unwrap();
    fuzz!("wechat_decrypt", |input| {
        let (head, plain) = split(input);
        // As the network gives it: an `<Encrypt>` field, its signature, the ciphertext.
        let xml = text(head);
        let _ = wechat_crypto::AesKey::parse(&xml);
        if let Some(encrypted) = wechat::encrypted_field(&xml) {
            let _ = wechat_crypto::msg_signature_ok("token", "1", "n", &encrypted, &xml);
            let _ = wechat_crypto::decrypt(&key, APP_ID, &encrypted);
        }
        // The plaintext chosen: the rest encrypted under the account's key, so that the
        // length field and the app id are what varies, and the padding too when the rest is
        // whole blocks already (else it is padded as WeChat does, PKCS#7 to 32 bytes).
        let mut block = plain.to_vec();
        if block.is_empty() || block.len() % 32 != 0 {
            let pad = 32 - block.len() % 32;
            block.resize(block.len() + pad, pad as u8);
        }
        let iv: [u8; 16] = key.bytes()[..16].try_into().unwrap();
        let len = block.len();
        let sealed = cbc::Encryptor::<aes::Aes256>::new(key.bytes().into(), &iv.into())
            .encrypt_padded_mut::<NoPadding>(&mut block.clone(), len)
            .unwrap()
            .to_vec();
        let encrypted = base64::engine::general_purpose::STANDARD.encode(sealed);
        if let Ok(opened) = wechat_crypto::decrypt(&key, APP_ID, &encrypted) {
            let body = &block[20..];
            assert_eq!(&body[..opened.len()], opened.as_bytes());
            assert_eq!(
                &body[opened.len()..opened.len() + APP_ID.len()],
                APP_ID.as_bytes()
            );
            let _ = wechat::parse_message(&opened);
        }
    });
}

#[test]
fn journal_frame() {
    fuzz!("journal_frame", |input| {
        let (id, buf) = input.split_at(input.len().min(8));
        let mut segment_id = [0u8; 8];
        segment_id[..id.len()].copy_from_slice(id);
        let segment_id = u64::from_le_bytes(segment_id);
        // Any bytes: a frame that decodes encodes back to exactly the bytes it came from.
        if let frame::Decoded::Frame(f) = frame::decode(buf, segment_id) {
            assert_eq!(f.size, frame::HEADER_LEN + f.payload.len());
            let mut again = Vec::new();
            frame::encode_with(&mut again, segment_id, f.lsn, f.kind, |b| {
                b.extend_from_slice(f.payload)
            });
            assert_eq!(again, buf[..f.size]);
        }
        // The bytes as a payload: encode, then decode gives it back; every cut is incomplete.
        let lsn = segment_id.rotate_left(7);
        let mut framed = Vec::new();
        frame::encode_with(&mut framed, segment_id, lsn, 3, |b| {
            b.extend_from_slice(buf)
        });
        assert_eq!(
            frame::decode(&framed, segment_id),
            frame::Decoded::Frame(frame::Frame {
                lsn,
                kind: 3,
                payload: buf,
                size: framed.len()
            })
        );
        assert_eq!(
            frame::decode(&framed[..framed.len() - 1], segment_id),
            frame::Decoded::Incomplete
        );
    });
}

/// Reads fields out of fuzz input; past its end, every field is zero or empty.
struct Cursor<'a> {
    input: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.input.split_first() else {
            return 0;
        };
        self.input = rest;
        b
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.input.split_at(n.min(self.input.len()));
        self.input = rest;
        head
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let raw = self.bytes(8);
        b[..raw.len()].copy_from_slice(raw);
        u64::from_le_bytes(b)
    }

    fn string(&mut self) -> String {
        let len = usize::from(self.byte() % 48);
        String::from_utf8_lossy(self.bytes(len)).into_owned()
    }

    fn id<const N: usize>(&mut self) -> heapless::String<N> {
        let mut id = heapless::String::new();
        for c in self.string().chars() {
            if id.push(c).is_err() {
                break;
            }
        }
        id
    }

    fn opt_u64(&mut self) -> Option<u64> {
        (self.byte() % 2 == 1).then(|| self.u64())
    }

    fn identity(&mut self) -> Identity {
        Identity {
            channel: self.id(),
            external_id: self.id(),
        }
    }

    /// An operation of every kind there is, its fields from the input.
    fn op(&mut self) -> Op {
        match self.byte() % 12 {
            0 => Op::ContactCreated {
                contact: self.u64(),
                identity: self.identity(),
                at_ms: self.u64() as i64,
            },
            1 => Op::ConversationOpened {
                conversation: self.u64(),
                contact: self.u64(),
                at_ms: self.u64() as i64,
            },
            2 => Op::MessageAdded(MessageAdded {
                conversation: self.u64(),
                contact: self.u64(),
                sender: Sender::from_code(self.byte() % 4 + 1).expect("codes 1 to 4"),
                agent: self.opt_u64(),
                client_id: (self.byte() % 2 == 1).then(|| self.id()),
                text: self.string(),
                at_ms: self.u64() as i64,
                attachment: (self.byte() % 2 == 1).then(|| self.string()),
                via: (self.byte() % 2 == 1).then(|| self.identity()),
            }),
            3 => Op::StatusChanged(StatusChanged {
                conversation: self.u64(),
                from: Status::from_code(self.byte() % 4).expect("codes 0 to 3"),
                to: Status::from_code(self.byte() % 4).expect("codes 0 to 3"),
                assignee: self.opt_u64(),
                by: self.opt_u64(),
                at_ms: self.u64() as i64,
            }),
            4 => Op::KbEntryPut {
                entry: KbEntry {
                    intent: self.string(),
                    examples: (0..self.byte() % 4).map(|_| self.string()).collect(),
                    answer: self.string(),
                    team: self.string(),
                },
                at_ms: self.u64() as i64,
            },
            5 => Op::KbEntryDeleted {
                intent: self.string(),
                at_ms: self.u64() as i64,
            },
            6 => Op::MessageClassified {
                message: self.u64(),
                intent: self.string(),
                score: f32::from_bits(self.u64() as u32),
            },
            7 => Op::HandedToHuman {
                conversation: self.u64(),
                team: self.string(),
                reason: match self.byte() % 3 {
                    0 => HandoffReason::Asked,
                    1 => HandoffReason::NotConfident,
                    _ => HandoffReason::Taken,
                },
                at_ms: self.u64() as i64,
            },
            8 => Op::ContactsLinked {
                keep: self.u64(),
                merged: self.u64(),
                folded: (self.byte() % 2 == 1).then(|| (self.u64(), self.u64())),
                at_ms: self.u64() as i64,
            },
            9 => Op::Delivered {
                messages: (0..self.byte() % 8).map(|_| self.u64()).collect(),
                at_ms: self.u64() as i64,
            },
            _ => Op::DeliveryFailed {
                message: self.u64(),
                attempts: self.u64() as u32,
                dead: self.byte() % 2 == 1,
                error: self.string(),
                at_ms: self.u64() as i64,
            },
        }
    }
}

/// Whether a payload that decodes is canonical: encoding what it decodes to gives the same
/// kind and bytes back.
fn assert_canonical(kind: u8, payload: &[u8]) {
    if let Ok(op) = Op::decode(kind, payload) {
        let mut again = Vec::new();
        op.encode(&mut again);
        assert_eq!(op.kind(), kind, "{op:?}");
        assert_eq!(again, payload, "{op:?} from {payload:?}");
    }
}

#[test]
fn op_codec() {
    fuzz!("op_codec", |input| {
        let Some((&kind, payload)) = input.split_first() else {
            return;
        };
        // Any bytes.
        assert_canonical(kind, payload);
        // An operation built from the bytes: it round-trips (compared encoded, so that a NaN
        // score compares equal to itself)...
        let mut c = Cursor { input };
        let op = c.op();
        let mut encoded = Vec::new();
        op.encode(&mut encoded);
        let decoded = Op::decode(op.kind(), &encoded).expect("an encoded op decodes");
        let mut again = Vec::new();
        decoded.encode(&mut again);
        assert_eq!(again, encoded, "{op:?}");
        // ...and its encoding, damaged where the rest of the bytes say, is refused or
        // decodes canonically.
        while !c.input.is_empty() && !encoded.is_empty() {
            let at = usize::from(c.byte()) % encoded.len();
            encoded[at] = c.byte();
            assert_canonical(op.kind(), &encoded);
        }
    });
}

/// A directory for the journal: on tmpfs where there is one (recovery fsyncs).
fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

#[test]
fn journal_recovery() {
    fuzz!("journal_recovery", |input| {
        let (applied, input) = input.split_first().unwrap_or((&0, &[]));
        let dir = scratch_dir();
        let files = Segments::build(input);
        for (first_lsn, bytes) in &files {
            std::fs::write(dir.path().join(segment::file_name(*first_lsn)), bytes).unwrap();
        }
        let applied_lsn = match applied % 4 {
            0 => 0,
            1 => files[0].0,
            2 => u64::from(*applied),
            _ => u64::MAX,
        };
        let mut replayed = Vec::new();
        let first = recovery::recover(dir.path(), applied_lsn, |lsn, _| {
            replayed.push(lsn);
            Ok(())
        });
        let Ok(first) = first else { return };
        // Records come once each, in order, all above what the store has.
        assert!(
            replayed.windows(2).all(|w| w[1] == w[0] + 1),
            "{replayed:?}"
        );
        assert!(replayed.iter().all(|&lsn| lsn > applied_lsn));
        if let Some(&last) = replayed.last() {
            assert_eq!(last, first.last_lsn);
        }
        // The last segment's records end at the tail; only zeros follow (a torn tail is
        // cleared in place). In a sealed one, they end with a batch's padding frame: a batch
        // is kept whole or not at all.
        if let Some(seg) = first.segments.last() {
            let bytes = std::fs::read(&seg.path).unwrap();
            assert!(bytes.len() as u64 >= first.tail_len);
            assert!(bytes[first.tail_len as usize..].iter().all(|&b| b == 0));
            let mut at = first.layout.data_offset as usize;
            let mut last_kind = frame::PAD;
            while at < first.tail_len as usize {
                let frame::Decoded::Frame(f) = frame::decode(&bytes[at..], seg.first_lsn) else {
                    panic!("no frame at {at}, before the tail at {}", first.tail_len);
                };
                (last_kind, at) = (f.kind, at + f.size);
            }
            assert_eq!(at as u64, first.tail_len.max(first.layout.data_offset));
            assert!(
                !first.layout.sealed || last_kind == frame::PAD,
                "{last_kind}"
            );
        }
        // Recovery after recovery finds nothing to repair and the same journal.
        let again = recovery::recover(dir.path(), applied_lsn, |_, _| Ok(())).unwrap();
        assert_eq!(again.truncated_bytes, 0);
        assert_eq!(again.last_lsn, first.last_lsn);
        assert_eq!(again.tail_len, first.tail_len);
    });
}

fn kb_import(input: &[u8], format: Format) {
    let Ok(entries) = knowledge::parse_import(&text(input), format) else {
        return;
    };
    for e in &entries {
        assert!(!e.intent.is_empty() && e.intent.chars().count() <= knowledge::MAX_INTENT_CHARS);
        assert!(!e.examples.is_empty());
        assert!(e.examples.iter().all(|x| !x.trim().is_empty()));
    }
    // An export imports back to the same entries.
    let exported = knowledge::export(entries.iter(), format);
    let back = knowledge::parse_import(&exported, format)
        .unwrap_or_else(|e| panic!("export does not import: {e}\n{exported}"));
    assert_eq!(back, entries, "{exported}");
}

#[test]
fn kb_jsonl() {
    fuzz!("kb_jsonl", |input| kb_import(input, Format::JsonLines));
}

#[test]
fn kb_csv() {
    fuzz!("kb_csv", |input| kb_import(input, Format::Csv));
}

#[test]
fn config() {
    fuzz!("config", |input| {
        let Ok(cfg) = Config::parse(&text(input)) else {
            return;
        };
        let _ = cfg.validate();
        let _ = cfg.event_channels();
        let running = Config::default();
        let _ = cfg.clone().reloadable_from(&running);
        let _ = Config::default().reloadable_from(&cfg);
    });
}

#[test]
fn image_sniff() {
    fuzz!("image_sniff", |input| {
        if let Some((ext, content_type)) = sniff_image(input) {
            assert!(wire::is_upload_id(&format!("{}.{ext}", "0".repeat(64))));
            assert!(content_type.starts_with("image/"));
        }
    });
}

#[test]
fn url() {
    fuzz!("url", |input| {
        let raw = text(input);
        if let Ok(url) = Url::parse(&raw) {
            assert!(!url.host.is_empty());
            assert!(url.path.starts_with('/'));
            assert!(raw.starts_with(if url.tls { "https://" } else { "http://" }));
            assert!(url.join("/v1").path.ends_with("/v1"));
        }
    });
}
