//! The outbox runner: delivers one adapter's pending replies, in message order, and journals
//! what became of each.
//!
//! Rows come from the store's `deliveries` table (written when a reply is applied), filtered
//! by the route table to the adapter's channels. Up to the adapter's `max_in_flight` sends run
//! at once. A confirmed send is journaled as delivered (many per record); a failed one is
//! journaled with its attempt count and tried again after a capped exponential backoff, until
//! `max_attempts`, when it goes to the dead letters. Sends a restart interrupts are still
//! pending in the store and go out again (at least once).
//!
//! While a failed reply waits for its retry, nothing newer is sent or fetched: a channel that
//! fails is not hammered with the whole backlog, memory holds at most one fetch, and replies
//! to a customer do not overtake the one before them (until that one goes dead).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Adapter, Outbound, SendError};
use crate::dispatch::{Command, DeliveryReport};
use crate::model::{ChannelFilter, Lsn, MessageId};
use crate::store::pool::ReadPool;
use crate::store::queries;

/// Rows fetched from the store at a time.
const FETCH: u32 = 256;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts before a reply goes to the dead letters.
    pub max_attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The wait before attempt `attempts + 1`, after `attempts` failed ones.
    pub fn delay(&self, attempts: u32) -> Duration {
        let factor = 1u32 << attempts.saturating_sub(1).min(16);
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// What the runner needs from the daemon.
pub struct OutboxContext {
    pub reads: ReadPool,
    pub applied: watch::Receiver<Lsn>,
    pub commands: mpsc::Sender<Command>,
    pub stop: CancellationToken,
}

/// Runs until `ctx.stop` is cancelled.
///
/// One piece on purpose: one loop that reads pending rows, sends them within the adapter's
/// in-flight limit and reports the outcomes; its `select!` arms share the in-flight set and
/// the retry schedule.
pub async fn run(
    adapter: Arc<dyn Adapter>,
    filter: ChannelFilter,
    policy: RetryPolicy,
    mut ctx: OutboxContext,
) {
    let description = adapter.describe();
    let name = description.name;
    let max_in_flight = description.max_in_flight.max(1);
    let events = description.events;
    let filter = Arc::new(filter);
    // Rows fetched and not yet sent, the highest message id fetched, retries by due time.
    let mut queue: VecDeque<Outbound> = VecDeque::new();
    let mut cursor: MessageId = 0;
    let mut caught_up = false;
    let mut retries: BTreeMap<(Instant, MessageId), Outbound> = BTreeMap::new();
    let mut in_flight = FuturesUnordered::new();
    loop {
        if queue.is_empty() && !caught_up && retries.is_empty() {
            ctx.applied.borrow_and_update();
            let (f, after) = (Arc::clone(&filter), cursor);
            match ctx
                .reads
                .run(move |c| queries::pending_deliveries(c, &f, events, after, FETCH))
                .await
            {
                Ok(page) => {
                    caught_up = page.scanned < FETCH as usize;
                    cursor = page.last_id.unwrap_or(cursor);
                    queue.extend(page.rows);
                }
                Err(e) => {
                    tracing::warn!(adapter = %name, error = %e, "outbox: cannot read pending replies");
                    caught_up = true;
                }
            }
        }
        let now = Instant::now();
        while in_flight.len() < max_in_flight {
            let next = match retries.first_key_value() {
                Some((&(due, _), _)) if due <= now => retries.pop_first().map(|(_, m)| m),
                Some(_) => None,
                None => queue.pop_front(),
            };
            let Some(message) = next else { break };
            let adapter = Arc::clone(&adapter);
            in_flight.push(async move {
                let result = adapter.send(&message).await;
                (message, result)
            });
        }
        // Armed only with a free slot: a due retry waiting for one would wake this at once.
        let next_retry = retries
            .first_key_value()
            .map(|(&(due, _), _)| due)
            .filter(|_| in_flight.len() < max_in_flight);
        // Cancel safety: `FuturesUnordered::next`, `watch::Receiver::changed` and the timers
        // lose nothing when another branch wins.
        tokio::select! {
            _ = ctx.stop.cancelled() => break,
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                let mut delivered = Vec::new();
                let mut outcome = Some(done);
                while let Some((message, result)) = outcome {
                    match result {
                        Ok(()) => delivered.push(message.id),
                        Err(e) => {
                            let report = failed(&name, message, e, &policy, &mut retries);
                            report_to(&ctx.commands, report).await;
                        }
                    }
                    outcome = in_flight.next().now_or_never().flatten();
                }
                if !delivered.is_empty() {
                    report_to(&ctx.commands, DeliveryReport::Delivered(delivered)).await;
                }
            }
            changed = ctx.applied.changed(), if caught_up => {
                if changed.is_err() {
                    break;
                }
                caught_up = false;
            }
            _ = tokio::time::sleep_until(next_retry.unwrap_or(now)), if next_retry.is_some() => {}
        }
    }
    tracing::debug!(adapter = %name, "outbox stopped");
}

/// Records a failed send: scheduled again, or dead after the last attempt.
fn failed(
    adapter: &str,
    mut message: Outbound,
    error: SendError,
    policy: &RetryPolicy,
    retries: &mut BTreeMap<(Instant, MessageId), Outbound>,
) -> DeliveryReport {
    message.attempts += 1;
    let dead = matches!(error, SendError::Refused(_)) || message.attempts >= policy.max_attempts;
    tracing::warn!(
        adapter,
        id = message.id,
        attempts = message.attempts,
        dead,
        error = %error,
        "outbox: reply not delivered"
    );
    let report = DeliveryReport::Failed {
        message: message.id,
        attempts: message.attempts,
        dead,
        error: error.to_string(),
    };
    if !dead {
        let due = Instant::now() + policy.delay(message.attempts);
        retries.insert((due, message.id), message);
    }
    report
}

async fn report_to(commands: &mpsc::Sender<Command>, report: DeliveryReport) {
    // Only fails while stopping; the rows stay pending and go out again after the restart.
    let _ = commands.send(Command::Delivery(report)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 8,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        };
        let delays: Vec<u64> = (1..=8).map(|a| p.delay(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(p.delay(1000), Duration::from_secs(60));
    }
}
