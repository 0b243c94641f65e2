//! The away message: outside business hours the bot tells a customer who writes that the shop
//! is closed, once per closed period of their conversation.
//!
//! Rule ([`away_due`], pure): while the hours are enabled, nobody holds the conversation and
//! the shop is closed at the command's time, the away message is due unless the bot has
//! already written in this conversation since the shop last closed (its last message was in
//! the same closed period: the shop did not open in between). So a customer who writes five
//! times at night gets one away message, and gets another the next night.
//!
//! The time is the dispatcher's decision time, read on the shop's clock through the injected
//! `local_time` (the C library's local time; a test's own in unit tests). The message is
//! journaled as any bot message, before the bot's routing of the same customer message.

use super::ports::{Journal, Snapshot};
use super::state::Now;
use super::Decider;
use crate::hours::{self, Hours, LocalTime};
use crate::model::ConversationId;

/// Whether the away message is due for a customer message at `now`, in a conversation held by
/// an agent or not (`held`) whose bot last wrote at `bot_last` (on the shop's clock).
pub(super) fn away_due(
    hours: &Hours,
    now: LocalTime,
    held: bool,
    bot_last: Option<LocalTime>,
) -> bool {
    hours.enabled
        && !held
        && !hours::is_open(hours, now)
        && match bot_last {
            None => true,
            Some(last) => hours::opened_between(hours, last, now),
        }
}

impl<J: Journal, S: Snapshot> Decider<J, S> {
    /// The away message to send for a customer's message in `conversation` (open, in
    /// memory) at `now`, if it is due.
    pub(super) fn away_message(&self, conversation: ConversationId, now: Now) -> Option<String> {
        // The hot path (hours off, as by default) reads no clock.
        if !self.hours.enabled {
            return None;
        }
        let state = &self.conversations[&conversation];
        let local = self.local_time;
        away_due(
            &self.hours,
            local(now.wall_ms),
            state.assignee.is_some(),
            state.bot_last_ms.map(local),
        )
        .then(|| self.hours.away_message.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::dispatch::fakes::{config, decider_over, identity, MemoryStore, TestDecider, T0};
    use crate::dispatch::{AgentMessage, CustomerMessage};
    use crate::hours::{HoursJson, IntervalJson, Week};
    use crate::model::Sender;
    use crate::op::Op;

    const MINUTE: i64 = 60_000;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;

    /// Open every day 09:00–18:00 UTC (the fakes' shop clock is UTC).
    fn nine_to_six(holidays: Vec<String>) -> Hours {
        let day = || {
            vec![IntervalJson {
                start: "09:00".into(),
                end: "18:00".into(),
            }]
        };
        let json = HoursJson {
            enabled: true,
            weekly: Week {
                mon: day(),
                tue: day(),
                wed: day(),
                thu: day(),
                fri: day(),
                sat: day(),
                sun: day(),
            },
            holidays,
            away_message: "Closed now; we answer from 9.".into(),
        };
        Hours::checked(&json, 100).unwrap()
    }

    /// T0 is 2027-01-15 08:00 UTC: one hour before opening.
    fn shop(hours: Hours) -> TestDecider {
        let mut store = MemoryStore::default();
        store.hours = hours;
        let mut d = decider_over(config(), store);
        d.local_time = hours::utc_time;
        d
    }

    fn at(ms: i64) -> Now {
        crate::dispatch::fakes::at(ms)
    }

    fn write(d: &mut TestDecider, who: &str, now: Now) -> Vec<String> {
        let before = d.journal.last();
        let message = CustomerMessage {
            identity: identity("web", who),
            client_id: None,
            text: "hello?".into(),
            attachment: None,
        };
        d.customer_message(message, now).unwrap();
        d.after_command(now);
        d.ops_since(before)
            .into_iter()
            .filter_map(|op| match op {
                Op::MessageAdded(m) if m.sender == Sender::Bot => Some(m.text.clone()),
                _ => None,
            })
            .collect()
    }

    const AWAY: &str = "Closed now; we answer from 9.";

    #[test]
    fn the_rule() {
        let h = nine_to_six(vec![]);
        let t = |ms: i64| hours::utc_time(T0.wall_ms + ms);
        assert!(away_due(&h, t(0), false, None), "closed, never told");
        assert!(!away_due(&h, t(2 * HOUR), false, None), "open at ten");
        assert!(!away_due(&h, t(0), true, None), "an agent holds it");
        assert!(
            !away_due(&h, t(30 * MINUTE), false, Some(t(0))),
            "told this morning"
        );
        assert!(
            away_due(&h, t(DAY), false, Some(t(0))),
            "told yesterday morning: the shop opened since"
        );
        assert!(
            !away_due(&Hours::default(), t(0), false, None),
            "hours disabled"
        );
    }

    #[test]
    fn outside_hours_the_customer_is_told_once_until_the_shop_opens_again() {
        let mut d = shop(nine_to_six(vec![]));
        assert_eq!(write(&mut d, "v1", T0), [AWAY]);
        assert!(write(&mut d, "v1", at(10 * MINUTE)).is_empty(), "once");
        assert!(write(&mut d, "v1", at(2 * HOUR)).is_empty(), "open at ten");
        // That evening the shop is closed again: the message is due again, once.
        assert_eq!(write(&mut d, "v1", at(12 * HOUR)), [AWAY]);
        assert!(write(&mut d, "v1", at(13 * HOUR)).is_empty());
        // Another customer's conversation has its own.
        assert_eq!(write(&mut d, "v2", at(13 * HOUR)), [AWAY]);
    }

    #[test]
    fn inside_hours_or_with_hours_off_nothing_is_sent() {
        let mut d = shop(nine_to_six(vec![]));
        assert!(write(&mut d, "v1", at(2 * HOUR)).is_empty());
        let mut d = shop(Hours::default());
        assert!(write(&mut d, "v1", T0).is_empty(), "disabled: as before");
    }

    #[test]
    fn a_holiday_is_closed_all_day() {
        let mut d = shop(nine_to_six(vec!["2027-01-15".into()]));
        assert_eq!(write(&mut d, "v1", at(2 * HOUR)), [AWAY]);
        assert!(write(&mut d, "v1", at(5 * HOUR)).is_empty());
    }

    #[test]
    fn new_hours_apply_from_the_next_message() {
        let mut d = shop(Hours::default());
        assert!(write(&mut d, "v1", T0).is_empty());
        d.hours = Arc::new(nine_to_six(vec![]));
        assert_eq!(write(&mut d, "v1", at(MINUTE)), [AWAY]);
    }

    #[test]
    fn the_bot_stays_quiet_while_an_agent_holds_the_conversation() {
        let mut d = shop(nine_to_six(vec![]));
        assert_eq!(write(&mut d, "v1", T0), [AWAY]);
        let reply = AgentMessage {
            conversation: 1,
            agent: 7,
            text: "I'm here early".into(),
            via: None,
        };
        d.agent_message(reply, at(MINUTE)).unwrap();
        assert!(write(&mut d, "v1", at(DAY)).is_empty(), "held by agent 7");
    }

    #[test]
    fn a_conversation_hydrated_from_the_store_remembers_it_was_told() {
        let mut d = shop(nine_to_six(vec![]));
        assert_eq!(write(&mut d, "v1", T0), [AWAY]);
        d.store_catches_up();
        d.evict(1);
        assert!(d.conversations.is_empty());
        assert!(
            write(&mut d, "v1", at(MINUTE)).is_empty(),
            "read from the store"
        );
        assert_eq!(d.conversations[&1].bot_last_ms, Some(T0.wall_ms));
    }
}
