//! What stands between the internet and the password check: the login limiter, the password
//! gate and device proofs.
//!
//! Invariants:
//! - An attempt is counted *before* its password is checked ([`LoginLimiter::begin`]), so
//!   requests already in flight cannot all get a real check: of any number of parallel
//!   attempts, at most the limit reach Argon2. A successful attempt is taken back.
//! - Limits hold per address (IPv6 by its /64), per account (across addresses) and per
//!   device proof, each over a sliding minute. Keys are keyed hashes (never the raw name a
//!   client sent), and the table holds at most [`MAX_KEYS`] of them: when it is full of keys
//!   with recent failures, new keys are refused rather than old ones forgotten, so flooding
//!   keys cannot reset anyone's count.
//! - A browser that logged in before holds a device proof (an HMAC over the agent and a
//!   random nonce, under a key kept in the store). With it, an account or address blocked by
//!   someone else's failures still lets the right password in; only failures made with that
//!   same proof count against it. So an attack neither locks a shop behind one tunnel out
//!   nor locks out an agent's own devices, and a new device waits out at most a minute after
//!   the attack stops.
//! - Argon2 runs behind [`PasswordGate`]: a few checks at a time, each about 12 MiB, so
//!   memory stays flat under any login storm; the queue in front of it is bounded too.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a failure counts.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The most keys the limiter remembers.
pub const MAX_KEYS: usize = 10_000;
/// An address may fail this many times the per-account limit (a shop's agents share one).
const ADDRESS_FACTOR: u32 = 3;

/// The three together, as the HTTP handlers use them.
pub struct LoginGuard {
    pub limiter: LoginLimiter,
    pub gate: PasswordGate,
    pub devices: DeviceProofs,
}

impl LoginGuard {
    /// Two Argon2 checks at a time (about 24 MiB), 64 more waiting at most 10 s each.
    pub fn new(per_minute: u32, device_key: [u8; 32]) -> Self {
        LoginGuard {
            limiter: LoginLimiter::new(per_minute),
            gate: PasswordGate::new(2, 64, Duration::from_secs(10)),
            devices: DeviceProofs::new(device_key),
        }
    }
}

/// What an attempt is counted against.
#[derive(Clone, Copy)]
pub enum Key<'a> {
    Account(&'a str),
    Address(IpAddr),
    /// The nonce of a device proof that verified.
    Device(&'a str),
}

/// Failed logins per key in a sliding minute.
pub struct LoginLimiter {
    /// Changed by a config reload; takes effect at the next attempt.
    per_minute: AtomicU32,
    hasher: RandomState,
    table: Mutex<HashMap<u64, VecDeque<Instant>>>,
}

/// An attempt that was admitted and counted; tell the limiter how it went.
#[must_use]
pub struct Attempt {
    keys: Vec<u64>,
    at: Instant,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Blocked;

impl LoginLimiter {
    pub fn new(per_minute: u32) -> Self {
        LoginLimiter {
            per_minute: AtomicU32::new(per_minute),
            hasher: RandomState::new(),
            table: Mutex::new(HashMap::new()),
        }
    }

    pub fn set_per_minute(&self, per_minute: u32) {
        self.per_minute.store(per_minute, Ordering::Relaxed);
    }

    fn key(&self, key: Key<'_>) -> (u64, usize) {
        let per_minute = self.per_minute.load(Ordering::Relaxed) as usize;
        match key {
            Key::Account(name) => (
                self.hasher
                    .hash_one(("account", name.to_lowercase().as_str())),
                per_minute,
            ),
            Key::Address(ip) => (
                self.hasher.hash_one(("address", address_block(ip))),
                per_minute * ADDRESS_FACTOR as usize,
            ),
            Key::Device(nonce) => (self.hasher.hash_one(("device", nonce)), per_minute),
        }
    }

    /// Counts an attempt against `keys`, or refuses it when any of them has used up its
    /// failures in the last minute (or the table is full of other keys' failures).
    ///
    /// # Errors
    /// [`Blocked`] when the attempt may not be made now.
    pub fn begin(&self, keys: &[Key<'_>]) -> Result<Attempt, Blocked> {
        self.begin_at(keys, Instant::now())
    }

    fn begin_at(&self, keys: &[Key<'_>], now: Instant) -> Result<Attempt, Blocked> {
        let keys: Vec<(u64, usize)> = keys.iter().map(|k| self.key(*k)).collect();
        let mut table = self
            .table
            .lock()
            .expect("invariant: limiter lock is never poisoned");
        let mut blocked = false;
        let mut new_keys = 0;
        for (key, limit) in &keys {
            match table.get_mut(key) {
                Some(q) => {
                    expire(q, now);
                    blocked |= q.len() >= *limit;
                }
                None => new_keys += 1,
            }
        }
        if blocked {
            return Err(Blocked);
        }
        if table.len() + new_keys > MAX_KEYS {
            table.retain(|_, q| {
                expire(q, now);
                !q.is_empty()
            });
            if table.len() + new_keys > MAX_KEYS {
                return Err(Blocked);
            }
        }
        for (key, _) in &keys {
            table.entry(*key).or_default().push_back(now);
        }
        Ok(Attempt {
            keys: keys.into_iter().map(|(k, _)| k).collect(),
            at: now,
        })
    }

    /// The password was right: the attempt does not count.
    pub fn succeeded(&self, attempt: Attempt) {
        let mut table = self
            .table
            .lock()
            .expect("invariant: limiter lock is never poisoned");
        for key in &attempt.keys {
            if let Some(q) = table.get_mut(key) {
                if let Some(i) = q.iter().rposition(|t| *t == attempt.at) {
                    q.remove(i);
                }
                if q.is_empty() {
                    table.remove(key);
                }
            }
        }
    }

    /// Keys remembered now (for tests and metrics).
    pub fn keys(&self) -> usize {
        self.table
            .lock()
            .expect("invariant: limiter lock is never poisoned")
            .len()
    }
}

fn expire(q: &mut VecDeque<Instant>, now: Instant) {
    while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
        q.pop_front();
    }
}

/// An address as the limiter sees it: IPv4 whole, IPv6 by its /64 (one customer's prefix).
fn address_block(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => (u128::from(v6) >> 64) | (1 << 127),
        },
    }
}

/// At most a few Argon2 checks at a time; everyone else waits in a bounded queue.
pub struct PasswordGate {
    permits: tokio::sync::Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_wait: Duration,
}

/// The gate's queue is full, or the wait ran out: try again later.
#[derive(Debug)]
pub struct Busy;

impl PasswordGate {
    pub fn new(concurrent: usize, max_waiting: usize, max_wait: Duration) -> Self {
        PasswordGate {
            permits: tokio::sync::Semaphore::new(concurrent),
            waiting: AtomicUsize::new(0),
            max_waiting,
            max_wait,
        }
    }

    /// Waits for a turn to hash or check a password.
    ///
    /// # Errors
    /// [`Busy`] when too many wait already or the turn does not come in time.
    pub async fn enter(&self) -> Result<tokio::sync::SemaphorePermit<'_>, Busy> {
        if let Ok(permit) = self.permits.try_acquire() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let permit = tokio::time::timeout(self.max_wait, self.permits.acquire()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match permit {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Busy),
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

/// Device proofs: `NONCE.MAC`, where MAC = HMAC-SHA256(key, lower-cased username ‖ 0 ‖ nonce).
pub struct DeviceProofs {
    key: [u8; 32],
}

impl DeviceProofs {
    pub fn new(key: [u8; 32]) -> Self {
        DeviceProofs { key }
    }

    fn mac(&self, username: &str, nonce: &str) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.key).expect("invariant: HMAC takes any key length");
        mac.update(username.to_lowercase().as_bytes());
        mac.update(&[0]);
        mac.update(nonce.as_bytes());
        mac
    }

    /// A new proof for this browser of the agent `username`.
    pub fn issue(&self, username: &str) -> String {
        let mut raw = [0u8; 16];
        getrandom::getrandom(&mut raw).expect("invariant: the OS has randomness");
        let nonce = hex(&raw);
        let tag = hex(&self.mac(username, &nonce).finalize().into_bytes());
        format!("{nonce}.{tag}")
    }

    /// The proof's nonce when `proof` was issued for `username` by this box.
    pub fn verify<'p>(&self, username: &str, proof: &'p str) -> Option<&'p str> {
        let (nonce, tag) = proof.split_once('.')?;
        if nonce.len() != 32 || tag.len() != 64 {
            return None;
        }
        let tag = unhex(tag)?;
        self.mac(username, nonce).verify_slice(&tag).ok()?;
        Some(nonce)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn attempts_count_before_the_check() {
        let l = LoginLimiter::new(3);
        let now = Instant::now();
        let keys = [Key::Account("li"), Key::Address(ip("10.0.0.1"))];
        // Three in flight at once are admitted; the fourth is refused before any finished.
        let admitted: Vec<_> = (0..3).map(|_| l.begin_at(&keys, now).unwrap()).collect();
        assert_eq!(l.begin_at(&keys, now).err(), Some(Blocked));
        drop(admitted);
        // A minute later the window is clear.
        assert!(l.begin_at(&keys, now + WINDOW).is_ok());
    }

    #[test]
    fn a_success_is_taken_back() {
        let l = LoginLimiter::new(2);
        let now = Instant::now();
        for _ in 0..10 {
            let a = l.begin_at(&[Key::Account("li")], now).unwrap();
            l.succeeded(a);
        }
        assert_eq!(l.keys(), 0);
    }

    #[test]
    fn accounts_addresses_and_devices_are_separate() {
        let l = LoginLimiter::new(2);
        let now = Instant::now();
        let attacker = Key::Address(ip("203.0.113.9"));
        for _ in 0..2 {
            let _ = l.begin_at(&[Key::Account("li"), attacker], now).unwrap();
        }
        // The account is blocked for everyone without a device proof ...
        assert!(l
            .begin_at(&[Key::Account("li"), Key::Address(ip("198.51.100.1"))], now)
            .is_err());
        // ... another account from the attacker's address is not (yet) ...
        assert!(l.begin_at(&[Key::Account("wang"), attacker], now).is_ok());
        // ... and a device that proved itself before only counts its own failures.
        assert!(l.begin_at(&[Key::Device("n1")], now).is_ok());
    }

    #[test]
    fn an_address_may_fail_more_than_an_account_and_ipv6_counts_by_prefix() {
        let l = LoginLimiter::new(2);
        let now = Instant::now();
        for i in 0..6 {
            let name = format!("user{i}");
            let a = ip(&format!("2001:db8::{i}"));
            assert!(l
                .begin_at(&[Key::Account(&name), Key::Address(a)], now)
                .is_ok());
        }
        assert!(l
            .begin_at(
                &[Key::Account("x"), Key::Address(ip("2001:db8::ffff"))],
                now
            )
            .is_err());
        assert!(l
            .begin_at(&[Key::Account("x"), Key::Address(ip("2001:db9::1"))], now)
            .is_ok());
    }

    #[test]
    fn the_table_is_bounded_and_refuses_new_keys_rather_than_forgetting() {
        let l = LoginLimiter::new(1);
        let now = Instant::now();
        for i in 0..MAX_KEYS {
            let _ = l.begin_at(&[Key::Account(&format!("u{i}"))], now).unwrap();
        }
        assert_eq!(l.keys(), MAX_KEYS);
        assert!(l.begin_at(&[Key::Account("new")], now).is_err());
        assert!(l.begin_at(&[Key::Account("u1")], now).is_err());
        // Once the failures age out, room is made.
        assert!(l.begin_at(&[Key::Account("new")], now + WINDOW).is_ok());
        assert_eq!(l.keys(), 1);
    }

    #[test]
    fn device_proofs_verify_only_for_their_agent_and_key() {
        let proofs = DeviceProofs::new([7; 32]);
        let proof = proofs.issue("li");
        let nonce = proofs.verify("LI", &proof).unwrap();
        assert_eq!(nonce.len(), 32);
        assert!(proofs.verify("wang", &proof).is_none());
        assert!(DeviceProofs::new([8; 32]).verify("li", &proof).is_none());
        assert!(proofs.verify("li", "garbage").is_none());
        let mut forged = proof.clone();
        forged.replace_range(40..41, if &proof[40..41] == "0" { "1" } else { "0" });
        assert!(proofs.verify("li", &forged).is_none());
    }

    #[tokio::test]
    async fn the_gate_bounds_concurrency_and_its_queue() {
        let gate = PasswordGate::new(1, 1, Duration::from_secs(5));
        let first = gate.enter().await.unwrap();
        let (second, third) = tokio::join!(gate.enter(), async {
            // The second is queued (the one place in the queue); the third finds it full.
            tokio::task::yield_now().await;
            let third = gate.enter().await.map(drop);
            drop(first);
            third
        });
        assert!(second.is_ok());
        assert!(third.is_err());
        // A wait that runs out is refused too.
        let gate = PasswordGate::new(1, 1, Duration::from_millis(20));
        let _held = gate.enter().await.unwrap();
        assert!(gate.enter().await.is_err());
    }
}
