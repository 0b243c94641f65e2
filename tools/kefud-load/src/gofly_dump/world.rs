//! The world a dump describes, derived from the spec before anything is written: agents
//! with their logins, and each visitor's arrival, agent, UUID, city, IP, language and
//! message budget; then each visitor's state while its messages are generated.
//!
//! Invariants: everything here is a pure function of the seed and the visitor's (or agent's)
//! index, drawn from its own hash stream, so tables written at different times agree on a
//! visitor; budgets sum to exactly the spec's messages.

use super::data::{City, AGENT_NAMES, AGENT_NICKNAMES, CITIES, IP_FIRST_OCTETS};
use super::random::{hash, mix, pick, GOLDEN};
use super::sql::push_u64;
use super::{AgentLogin, Spec, DAY, HEX, HISTORY_END, HISTORY_START};

/// Everything derived from the spec before writing: agents, and what each visitor is.
pub(super) struct World {
    pub(super) seed: u64,
    pub(super) visitors: u64,
    pub(super) agents: Vec<Agent>,
    /// Seconds between visitors' arrivals, on average.
    arrival_step: i64,
}

pub(super) struct Agent {
    pub(super) login: AgentLogin,
    pub(super) nickname: &'static str,
    pub(super) created_at: i64,
}

/// Hash streams: each kind of derived attribute draws from its own.
const STREAM_VISITOR: u64 = 1;
pub(super) const STREAM_AGENT: u64 = 2;
const STREAM_BUDGET: u64 = 3;
pub(super) const STREAM_MESSAGES: u64 = 4;
const STREAM_UUID: u64 = 5;
pub(super) const STREAM_IPBLACK: u64 = 6;

impl World {
    pub(super) fn new(spec: &Spec) -> World {
        let agents = (0..spec.agents)
            .map(|index| {
                let h = hash(spec.seed, STREAM_AGENT, u64::from(index));
                let name = if index == 0 {
                    "agent".to_string()
                } else {
                    format!("{}{}", pick(AGENT_NAMES, h), index)
                };
                let password = format!("{name}-{:04}", (h >> 20) % 10_000);
                let nickname = if index == 0 {
                    "Open Source LiveChat Support"
                } else {
                    pick(AGENT_NICKNAMES, h >> 8)
                };
                let created_at = HISTORY_START - 30 * DAY + (index as i64) * 3_600;
                Agent {
                    login: AgentLogin { name, password },
                    nickname,
                    created_at,
                }
            })
            .collect();
        // About ten minutes between arrivals, the arrivals spread over 1 week to 1200 days.
        let span = (spec.visitors as i64)
            .saturating_mul(600)
            .clamp(7 * DAY, 1200 * DAY);
        World {
            seed: spec.seed,
            visitors: spec.visitors,
            agents,
            arrival_step: (span / spec.visitors.max(1) as i64).max(1),
        }
    }

    pub(super) fn visitor_hash(&self, visitor: u64) -> u64 {
        hash(self.seed, STREAM_VISITOR, visitor)
    }

    /// Visitors arrive in id order, each somewhere in its own slot.
    pub(super) fn arrival(&self, visitor: u64) -> i64 {
        let jitter = (self.visitor_hash(visitor) >> 3) as i64 % self.arrival_step;
        HISTORY_START + visitor as i64 * self.arrival_step + jitter
    }

    pub(super) fn agent_of(&self, visitor: u64) -> &Agent {
        let index = (self.visitor_hash(visitor) >> 40) % self.agents.len() as u64;
        &self.agents[index as usize]
    }

    /// The visitor's go-fly `visitor_id`: a v4 UUID holding all 64 bits of a bijection of
    /// the visitor's index (in its first four groups), so no two visitors share one.
    pub(super) fn visitor_uuid(&self, visitor: u64, out: &mut Vec<u8>) {
        let unique = mix(self.seed.rotate_left(17) ^ STREAM_UUID.wrapping_mul(GOLDEN) ^ visitor);
        let random = hash(self.seed, STREAM_UUID, visitor);
        let hex = |out: &mut Vec<u8>, value: u64, digits: u32| {
            for shift in (0..digits).rev() {
                out.push(HEX[((value >> (shift * 4)) & 0xf) as usize]);
            }
        };
        hex(out, unique >> 32, 8);
        out.push(b'-');
        hex(out, unique >> 16, 4);
        out.push(b'-');
        hex(out, 0x4000 | ((unique >> 4) & 0x0fff), 4);
        out.push(b'-');
        hex(out, 0x8000 | ((random & 0x03ff) << 4) | (unique & 0xf), 4);
        out.push(b'-');
        hex(out, random >> 16, 12);
    }

    pub(super) fn prefers_chinese(&self, visitor: u64) -> bool {
        self.visitor_hash(visitor) % 10 < 6
    }

    pub(super) fn city(&self, visitor: u64) -> &'static City {
        let h = self.visitor_hash(visitor);
        &CITIES[(h >> 12) as usize % CITIES.len()]
    }

    /// A public-looking IPv4 address, by `salt`.
    pub(super) fn ip(&self, visitor: u64, salt: u64, out: &mut Vec<u8>) {
        let h = hash(self.seed ^ salt, STREAM_VISITOR, visitor);
        let first = IP_FIRST_OCTETS[(h % IP_FIRST_OCTETS.len() as u64) as usize];
        for (index, octet) in [
            first,
            (h >> 8) as u8,
            (h >> 16) as u8,
            ((h >> 24) as u8).max(1),
        ]
        .into_iter()
        .enumerate()
        {
            if index > 0 {
                out.push(b'.');
            }
            push_u64(out, u64::from(octet));
        }
    }

    /// Message budgets: a skewed weight per visitor, scaled to sum to exactly `messages`.
    pub(super) fn budgets(&self, messages: u64) -> Vec<u64> {
        let weight = |visitor: u64| {
            let h = hash(self.seed, STREAM_BUDGET, visitor);
            let heavy = if (h >> 8) % 16 == 0 {
                (h >> 16) % 64
            } else {
                0
            };
            u128::from(1 + h % 8 + heavy)
        };
        let total: u128 = (0..self.visitors).map(weight).sum();
        let mut budgets: Vec<u64> = (0..self.visitors)
            .map(|v| (u128::from(messages) * weight(v) / total.max(1)) as u64)
            .collect();
        // Spread the remainder (< visitors) evenly over the visitors.
        let remainder = messages - budgets.iter().sum::<u64>();
        for (visitor, budget) in budgets.iter_mut().enumerate() {
            let share = |v: u64| u128::from(v) * u128::from(remainder) / u128::from(self.visitors);
            if share(visitor as u64 + 1) > share(visitor as u64) {
                *budget += 1;
            }
        }
        budgets
    }
}

/// A visitor during message generation.
pub(super) struct VisitorState {
    /// Messages still to send, and of them in the current session.
    pub(super) left: u64,
    pub(super) session_left: u32,
    /// The longest pause inside a session, and the mean gap between sessions (seconds).
    pub(super) spacing_max: u32,
    pub(super) gap_mean: u32,
    pub(super) kefu_turn: bool,
    pub(super) last_at: Option<i64>,
}

impl VisitorState {
    pub(super) fn new(budget: u64, arrival: i64) -> VisitorState {
        let available = (HISTORY_END - arrival).max(DAY) as u64;
        let spacing_max = (available / (4 * (budget + 1))).clamp(2, 180);
        let sessions = (budget / 6).max(1);
        let gap_mean = (available / 2 / (sessions + 1)).clamp(60, 5 * DAY as u64);
        VisitorState {
            left: budget,
            session_left: 0,
            spacing_max: spacing_max as u32,
            gap_mean: gap_mean as u32,
            kefu_turn: false,
            last_at: None,
        }
    }
}
