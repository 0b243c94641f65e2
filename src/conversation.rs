//! The conversation state machine: a pure transition table, no I/O and no clock reads.
//!
//! ```text
//!   Idle ──customer writes──▶ Waiting ──agent takes / replies──▶ InProgress
//!                               ▲  │                               │
//!             customer writes   │  └──────────resolve──────────┐   │ resolve
//!                               │                              ▼   ▼
//!   Idle ◀──────timeout──────── Resolved ◀─────────────────────────┘
//!                               │ agent reopens ──▶ InProgress
//! ```
//!
//! Invariants: [`step`] is the only way a status changes; every pair it does not list is
//! refused with a reason an agent can read (the API turns it into a 409). `Idle` is the status
//! of a contact with no open conversation: a conversation that reaches it is closed for good,
//! and the contact's next message opens a new one.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Idle,
    Waiting,
    InProgress,
    Resolved,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Idle,
        Status::Waiting,
        Status::InProgress,
        Status::Resolved,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Waiting => "waiting",
            Status::InProgress => "in_progress",
            Status::Resolved => "resolved",
        }
    }

    pub const fn code(self) -> u8 {
        match self {
            Status::Idle => 0,
            Status::Waiting => 1,
            Status::InProgress => 2,
            Status::Resolved => 3,
        }
    }

    pub const fn from_code(code: u8) -> Option<Status> {
        match code {
            0 => Some(Status::Idle),
            1 => Some(Status::Waiting),
            2 => Some(Status::InProgress),
            3 => Some(Status::Resolved),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Open conversations are the ones an agent still has to act on.
    pub const fn is_open(self) -> bool {
        matches!(self, Status::Waiting | Status::InProgress)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    CustomerMessage,
    /// An agent assigns the conversation (to themself or another agent: a transfer).
    Assign,
    AgentReply,
    BotReply,
    Resolve,
    Reopen,
    IdleTimeout,
}

impl Event {
    pub const fn as_str(self) -> &'static str {
        match self {
            Event::CustomerMessage => "customer_message",
            Event::Assign => "assign",
            Event::AgentReply => "agent_reply",
            Event::BotReply => "bot_reply",
            Event::Resolve => "resolve",
            Event::Reopen => "reopen",
            Event::IdleTimeout => "idle_timeout",
        }
    }

    /// What was attempted, as a refusal names it: "cannot {verb} a conversation that is ...".
    pub const fn verb(self) -> &'static str {
        match self {
            Event::CustomerMessage => "take a customer message into",
            Event::Assign => "assign",
            Event::AgentReply => "reply to",
            Event::BotReply => "let the bot answer",
            Event::Resolve => "resolve",
            Event::Reopen => "reopen",
            Event::IdleTimeout => "close",
        }
    }
}

/// A transition the table does not allow, with the reason shown to the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {verb} a conversation that is {from}: {reason}", verb = .event.verb())]
pub struct Refused {
    pub from: Status,
    pub event: Event,
    pub reason: &'static str,
}

use Event as E;
use Status as S;

/// The whole machine. Reading down the table is reading the product's rules.
const TRANSITIONS: &[(Status, Event, Status)] = &[
    (S::Idle, E::CustomerMessage, S::Waiting),
    (S::Waiting, E::CustomerMessage, S::Waiting),
    (S::InProgress, E::CustomerMessage, S::InProgress),
    (S::Resolved, E::CustomerMessage, S::Waiting),
    (S::Waiting, E::Assign, S::InProgress),
    (S::InProgress, E::Assign, S::InProgress),
    (S::Waiting, E::AgentReply, S::InProgress),
    (S::InProgress, E::AgentReply, S::InProgress),
    (S::Waiting, E::BotReply, S::Waiting),
    (S::Waiting, E::Resolve, S::Resolved),
    (S::InProgress, E::Resolve, S::Resolved),
    (S::Resolved, E::Reopen, S::InProgress),
    (S::Resolved, E::IdleTimeout, S::Idle),
];

/// The status after `event`, or why it is refused.
///
/// # Errors
/// [`Refused`] for every (status, event) pair not in the table.
pub fn step(from: Status, event: Event) -> Result<Status, Refused> {
    TRANSITIONS
        .iter()
        .find(|(f, e, _)| *f == from && *e == event)
        .map(|(_, _, to)| *to)
        .ok_or(Refused {
            from,
            event,
            reason: refusal_reason(from, event),
        })
}

fn refusal_reason(from: Status, event: Event) -> &'static str {
    match (from, event) {
        (S::Idle, _) => "it is closed; the customer's next message opens a new one",
        (S::Resolved, E::Assign | E::AgentReply | E::BotReply) => "it is resolved; reopen it first",
        (S::Resolved, E::Resolve) => "it is already resolved",
        (_, E::Reopen) => "only a resolved conversation can be reopened",
        (_, E::IdleTimeout) => "only a resolved conversation times out",
        (S::InProgress, E::BotReply) => "an agent has taken it; the bot stays out",
        _ => "the transition is not allowed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: [Event; 7] = [
        E::CustomerMessage,
        E::Assign,
        E::AgentReply,
        E::BotReply,
        E::Resolve,
        E::Reopen,
        E::IdleTimeout,
    ];

    #[test]
    fn happy_path_walks_the_whole_cycle() {
        let mut s = S::Idle;
        for (ev, want) in [
            (E::CustomerMessage, S::Waiting),
            (E::Assign, S::InProgress),
            (E::AgentReply, S::InProgress),
            (E::Resolve, S::Resolved),
            (E::CustomerMessage, S::Waiting),
            (E::AgentReply, S::InProgress),
            (E::Resolve, S::Resolved),
            (E::Reopen, S::InProgress),
            (E::Resolve, S::Resolved),
            (E::IdleTimeout, S::Idle),
        ] {
            s = step(s, ev).unwrap_or_else(|r| panic!("{r}"));
            assert_eq!(s, want, "after {ev:?}");
        }
    }

    #[test]
    fn every_pair_is_either_listed_or_refused_with_a_reason() {
        let mut allowed = 0;
        for from in Status::ALL {
            for ev in EVENTS {
                match step(from, ev) {
                    Ok(_) => allowed += 1,
                    Err(r) => {
                        assert_eq!((r.from, r.event), (from, ev));
                        assert!(!r.reason.is_empty());
                    }
                }
            }
        }
        assert_eq!(allowed, TRANSITIONS.len(), "table has no duplicate pairs");
    }

    #[test]
    fn resolved_refuses_agent_actions_and_bot_stays_out_of_taken_ones() {
        let r = step(S::Resolved, E::AgentReply).unwrap_err();
        assert_eq!(
            r.to_string(),
            "cannot reply to a conversation that is resolved: it is resolved; reopen it first"
        );
        assert!(step(S::InProgress, E::BotReply).is_err());
        assert!(step(S::Idle, E::Resolve).is_err());
        assert!(step(S::Waiting, E::Reopen).is_err());
    }

    #[test]
    fn status_codes_and_names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::from_code(s.code()), Some(s));
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }
}
