//! This box's roster for the other boxes: its agents with their names, presence and load,
//! published retained on `agents/{node}` when it changes, and again every [`REPUBLISH`] (a
//! broker restarted without persistence forgets retained messages).
//!
//! The decision when to publish is pure ([`Roster::due`]); the link asks the dispatcher for
//! the roster and the store for names. Disabled agents are left out; a box that goes offline
//! takes its agents with it (its presence topic's last will), which the readers show.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::wire::{Presence, RosterAgent, MAX_ROSTER};
use crate::model::AgentId;
use crate::routing::scheduler::AgentSlot;

/// A roster unchanged is published again this often.
pub const REPUBLISH: Duration = Duration::from_secs(30);
/// Names are read from the store again this often (or at once for an agent not known).
const NAMES_FRESH: Duration = Duration::from_secs(60);

/// What was published last, and the names known.
#[derive(Default)]
pub struct Roster {
    published: Option<(Vec<RosterAgent>, Instant)>,
    names: HashMap<AgentId, String>,
    names_read: Option<Instant>,
}

impl Roster {
    /// Whether the names must be read (again) before building the roster of `slots`.
    pub fn names_wanted(&self, slots: &[(AgentId, AgentSlot)], now: Instant) -> bool {
        self.names_read
            .map_or(true, |at| now.duration_since(at) >= NAMES_FRESH)
            || slots
                .iter()
                .any(|(id, s)| !s.disabled && !self.names.contains_key(id))
    }

    /// The names read from the store for the agents of `slots`; one the store lacks is kept
    /// unnamed until the next regular read (not asked about again every tick).
    pub fn set_names(
        &mut self,
        mut names: HashMap<AgentId, String>,
        slots: &[(AgentId, AgentSlot)],
        now: Instant,
    ) {
        for (id, _) in slots {
            names.entry(*id).or_default();
        }
        self.names = names;
        self.names_read = Some(now);
    }

    /// The roster of `slots` as the other boxes see it, by agent id.
    pub fn build(&self, slots: &[(AgentId, AgentSlot)]) -> Vec<RosterAgent> {
        let mut agents: Vec<RosterAgent> = slots
            .iter()
            .filter(|(_, s)| !s.disabled)
            .map(|(id, s)| RosterAgent {
                id: *id,
                name: super::wire::bounded_name(self.names.get(id).map_or("", String::as_str)),
                presence: if s.is_online() {
                    Presence::Online
                } else if s.connections > 0 {
                    Presence::Away
                } else {
                    Presence::Offline
                },
                open: s.open,
                capacity: s.capacity,
                teams: s.teams.clone(),
            })
            .collect();
        agents.sort_by_key(|a| a.id);
        agents.truncate(MAX_ROSTER);
        agents
    }

    /// Whether `roster` is to be published now: it changed, or it was last sent
    /// [`REPUBLISH`] ago.
    pub fn due(&self, roster: &[RosterAgent], now: Instant) -> bool {
        match &self.published {
            None => true,
            Some((last, at)) => last != roster || now.duration_since(*at) >= REPUBLISH,
        }
    }

    pub fn published(&mut self, roster: Vec<RosterAgent>, now: Instant) {
        self.published = Some((roster, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(connections: u32, away: bool, open: u32) -> AgentSlot {
        let mut s = AgentSlot::new(Vec::new(), 4, false);
        s.connections = connections;
        s.away = away;
        s.open = open;
        s
    }

    #[test]
    fn the_roster_is_published_when_it_changes_and_every_half_minute() {
        let t0 = Instant::now();
        let mut r = Roster::default();
        let slots = vec![(2, slot(1, false, 1)), (1, slot(0, false, 0))];
        assert!(r.names_wanted(&slots, t0));
        r.set_names(
            HashMap::from([(1, "Bo".into()), (2, "Ann".into())]),
            &slots,
            t0,
        );
        assert!(!r.names_wanted(&slots, t0));
        let roster = r.build(&slots);
        assert_eq!(
            roster
                .iter()
                .map(|a| (a.id, a.name.as_str(), a.presence))
                .collect::<Vec<_>>(),
            [(1, "Bo", Presence::Offline), (2, "Ann", Presence::Online)]
        );
        assert!(r.due(&roster, t0));
        r.published(roster.clone(), t0);
        assert!(!r.due(&roster, t0 + Duration::from_secs(1)));
        assert!(r.due(&roster, t0 + REPUBLISH));
        let away = r.build(&[(2, slot(1, true, 1)), (1, slot(0, false, 0))]);
        assert_eq!(away[1].presence, Presence::Away);
        assert!(
            r.due(&away, t0 + Duration::from_secs(1)),
            "a change goes out at once"
        );
        // A new agent's name is read at once; a disabled one is left out.
        let mut disabled = slot(1, false, 0);
        disabled.disabled = true;
        assert!(r.names_wanted(&[(3, slot(1, false, 0))], t0));
        // An agent the store has no name for is not asked about again every tick.
        r.set_names(HashMap::new(), &[(3, slot(1, false, 0))], t0);
        assert!(!r.names_wanted(&[(3, slot(1, false, 0))], t0));
        assert!(!r.names_wanted(&[(4, disabled.clone())], t0));
        assert!(r.build(&[(4, disabled)]).is_empty());
        assert!(r.names_wanted(&slots, t0 + NAMES_FRESH));
    }
}
