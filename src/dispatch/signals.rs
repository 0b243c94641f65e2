//! Signals: what is not a decision about a conversation but passes through the dispatcher to
//! keep its order — typing and read indicators (not journaled: the thread hands them to the
//! fan-out), a channel's delivery reports and the wall clock's steps (journaled facts).
//!
//! Invariant: an indicator goes only to the conversation's own audience; customer typing
//! reaches the agents at most once per [`TYPING_INTERVAL_MS`] per conversation, however many
//! sockets a visitor opens or how fast they send.

use std::sync::Arc;

use super::command::{AgentTyping, DeliveryReport, VisitorRead, VisitorTyping};
use super::ports::{Journal, Snapshot};
use super::state::Now;
use super::{Decider, DispatchError};
use crate::conversation::Event;
use crate::fanout::Ephemeral;
use crate::model::{Identity, Lsn};
use crate::op::Op;
use crate::wire;

/// Customer-typing indicators per conversation reach agents at most this often.
pub(super) const TYPING_INTERVAL_MS: i64 = 2_000;

/// At most this many conversations' last typing times are remembered; beyond, the expired
/// ones are dropped.
const TYPING_REMEMBERED: usize = 10_000;

impl<J: Journal, S: Snapshot> Decider<J, S> {
    /// The customer is typing: the indicator for the agents, unless one went out for this
    /// conversation less than [`TYPING_INTERVAL_MS`] ago.
    pub(crate) fn visitor_typing(&mut self, cmd: VisitorTyping, now: Now) -> Option<Ephemeral> {
        let contact = self.lookup_identity(&cmd.identity, now).ok()??;
        let conversation = self.contacts[&contact].current?;
        let recent = |at: &i64| now.timer_ms - *at < TYPING_INTERVAL_MS;
        if self.typing_sent.get(&conversation).is_some_and(recent) {
            return None;
        }
        if self.typing_sent.len() >= TYPING_REMEMBERED {
            self.typing_sent.retain(|_, at| recent(at));
        }
        self.typing_sent.insert(conversation, now.timer_ms);
        let frame = wire::typing_for_agents(conversation, contact);
        Some(Ephemeral::Agents(frame.into()))
    }

    /// The customer has read up to a message: the indicator for the agents.
    pub(crate) fn visitor_read(&mut self, cmd: VisitorRead, now: Now) -> Option<Ephemeral> {
        let contact = self.lookup_identity(&cmd.identity, now).ok()??;
        let conversation = self.contacts[&contact].current?;
        let frame = wire::read_for_agents(conversation, contact, cmd.message_id);
        Some(Ephemeral::Agents(frame.into()))
    }

    /// An agent is typing: the indicator for the customer's widget sockets, and where a reply
    /// would go (for channels whose adapters show typing).
    pub(crate) fn agent_typing(
        &mut self,
        cmd: AgentTyping,
        now: Now,
    ) -> Result<(Ephemeral, Option<Identity>), DispatchError> {
        let conversation = cmd.conversation;
        self.hydrate_conversation(conversation, Event::AgentReply, now)?;
        let contact = self.conversations[&conversation].contact;
        let audience = Arc::clone(&self.contacts[&contact].identities);
        let indicator = Ephemeral::Visitors(audience, wire::typing_for_visitor().into());
        Ok((indicator, self.reply_route(contact)))
    }

    /// Journals what a channel confirmed or refused of outbound messages.
    pub(crate) fn delivery(
        &mut self,
        report: DeliveryReport,
        now: Now,
    ) -> Result<Lsn, DispatchError> {
        let op = match report {
            DeliveryReport::Delivered(messages) => Op::Delivered {
                messages,
                at_ms: now.wall_ms,
            },
            DeliveryReport::Failed {
                message,
                attempts,
                dead,
                error,
            } => Op::DeliveryFailed {
                message,
                attempts,
                dead,
                error,
                at_ms: now.wall_ms,
            },
        };
        self.append(op, None)
    }

    /// Journals a step of the wall clock, with the first LSN stamped since the last anchor
    /// (the store corrects those records' times if the clock was not synchronised).
    pub(crate) fn clock_stepped(
        &mut self,
        step: crate::clock::Step,
        now: Now,
    ) -> Result<Lsn, DispatchError> {
        let lsn = self.append(
            Op::ClockStepped {
                offset_ms: step.offset_ms,
                before_ms: step.before_ms,
                correct_since_ms: step.correct_since_ms,
                correct_from_lsn: self.interval_from_lsn,
                at_ms: now.wall_ms,
            },
            None,
        )?;
        self.interval_from_lsn = lsn + 1;
        Ok(lsn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::fakes::{at, decider, identity, TestDecider, T0};
    use crate::dispatch::CustomerMessage;

    fn customer_waiting() -> TestDecider {
        let mut d = decider();
        let message = CustomerMessage {
            identity: identity("web", "v1"),
            client_id: None,
            text: "hi".into(),
            attachment: None,
        };
        d.customer_message(message, T0).unwrap();
        d
    }

    fn typing(who: &str) -> VisitorTyping {
        VisitorTyping {
            identity: identity("web", who),
        }
    }

    #[test]
    fn customer_typing_reaches_the_agents_at_most_once_per_interval() {
        let mut d = customer_waiting();
        assert!(matches!(
            d.visitor_typing(typing("v1"), at(0)),
            Some(Ephemeral::Agents(_))
        ));
        assert!(d
            .visitor_typing(typing("v1"), at(TYPING_INTERVAL_MS - 1))
            .is_none());
        assert!(d
            .visitor_typing(typing("v1"), at(TYPING_INTERVAL_MS))
            .is_some());
        assert!(d.visitor_typing(typing("stranger"), at(0)).is_none());
        assert!(d.journal.entries.len() == 5, "indicators are not journaled");
    }

    #[test]
    fn agent_typing_goes_to_the_customers_sockets_and_names_the_reply_route() {
        let mut d = customer_waiting();
        let (indicator, route) = d
            .agent_typing(AgentTyping { conversation: 1 }, at(1))
            .unwrap();
        let Ephemeral::Visitors(audience, _) = indicator else {
            panic!("to the visitor")
        };
        assert_eq!(&audience[..], &[identity("web", "v1")]);
        assert_eq!(route, Some(identity("web", "v1")));
        assert!(matches!(
            d.agent_typing(AgentTyping { conversation: 9 }, at(1)),
            Err(DispatchError::NotFound(9))
        ));
    }

    #[test]
    fn a_read_mark_goes_to_the_agents_of_the_open_conversation() {
        let mut d = customer_waiting();
        let read = VisitorRead {
            identity: identity("web", "v1"),
            message_id: 4,
        };
        assert!(matches!(
            d.visitor_read(read, at(1)),
            Some(Ephemeral::Agents(_))
        ));
    }

    #[test]
    fn clock_steps_are_journaled_with_the_interval_they_correct() {
        let mut d = customer_waiting();
        let step = |offset_ms| crate::clock::Step {
            offset_ms,
            before_ms: T0.wall_ms,
            correct_since_ms: None,
        };
        let first = d.clock_stepped(step(5_000), at(1)).unwrap();
        assert!(matches!(
            d.ops_since(first - 1)[..],
            [Op::ClockStepped {
                correct_from_lsn: 1,
                offset_ms: 5_000,
                ..
            }]
        ));
        let second = d.clock_stepped(step(-3_000), at(2)).unwrap();
        assert!(
            matches!(d.ops_since(second - 1)[..], [Op::ClockStepped { correct_from_lsn, .. }]
            if *correct_from_lsn == first + 1)
        );
    }

    #[test]
    fn delivery_reports_are_journaled_as_they_came() {
        let mut d = decider();
        d.delivery(DeliveryReport::Delivered(vec![3, 4]), T0)
            .unwrap();
        let failed = DeliveryReport::Failed {
            message: 5,
            attempts: 3,
            dead: true,
            error: "410 gone".into(),
        };
        d.delivery(failed, at(1)).unwrap();
        assert!(matches!(d.ops_since(0)[..], [
            Op::Delivered { messages, .. },
            Op::DeliveryFailed { message: 5, dead: true, .. }
        ] if messages == &vec![3, 4]));
    }
}
