//! The wire form of a box's roster: its agents as the other boxes show them (name, presence,
//! load), published retained on `agents/{node}` so a box that joins later hears it at once.
//!
//! Invariant: decoding never allocates from an untrusted count; names are bounded.

use serde::Serialize;

use super::assign::{cut, MAX_NAME};
use crate::op::codec::{put_str, put_u32, put_u64, Reader};
use crate::op::DecodeError;

/// Roster entries are small: a box with more agents than this sends the first ones.
pub const MAX_ROSTER: usize = 512;
/// Teams per agent sent (an agent in more is sent with the first ones).
pub const MAX_TEAMS: usize = 16;
/// Bytes of a team name sent.
const MAX_TEAM: usize = 64;

/// Whether an agent can take a conversation now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    /// No console open.
    Offline,
    /// A console open, marked away: no new conversations.
    Away,
    Online,
}

impl Presence {
    fn code(self) -> u8 {
        match self {
            Presence::Offline => 0,
            Presence::Away => 1,
            Presence::Online => 2,
        }
    }

    fn from_code(code: u8) -> Option<Presence> {
        [Presence::Offline, Presence::Away, Presence::Online]
            .into_iter()
            .find(|p| p.code() == code)
    }
}

/// One agent of a box's roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RosterAgent {
    /// The box's id for the agent.
    pub id: u64,
    pub name: String,
    pub presence: Presence,
    /// Conversations they hold that are not resolved, and how many they take at once.
    pub open: u32,
    pub capacity: u32,
    /// The teams whose queues they take from (none: any).
    pub teams: Vec<String>,
}

pub(super) fn encode(agents: &[RosterAgent], buf: &mut Vec<u8>) {
    let agents = &agents[..agents.len().min(MAX_ROSTER)];
    put_u32(buf, agents.len() as u32);
    for a in agents {
        put_u64(buf, a.id);
        put_str(buf, &a.name);
        buf.push(a.presence.code());
        put_u32(buf, a.open);
        put_u32(buf, a.capacity);
        let teams = &a.teams[..a.teams.len().min(MAX_TEAMS)];
        buf.push(teams.len() as u8);
        for team in teams {
            put_str(buf, cut(team, MAX_TEAM));
        }
    }
}

pub(super) fn decode(r: &mut Reader<'_>) -> Result<Vec<RosterAgent>, DecodeError> {
    let count = r.u32()? as usize;
    // Each entry takes at least 22 bytes.
    if count > MAX_ROSTER || count > r.buf.len() / 22 {
        return Err(DecodeError::BadValue("roster length"));
    }
    let mut agents = Vec::with_capacity(count);
    for _ in 0..count {
        let id = r.u64()?;
        let name = r.str()?;
        if name.len() > MAX_NAME {
            return Err(DecodeError::BadValue("agent name"));
        }
        let name = name.to_owned();
        let presence = Presence::from_code(r.u8()?).ok_or(DecodeError::BadValue("presence"))?;
        let open = r.u32()?;
        let capacity = r.u32()?;
        let count = r.u8()? as usize;
        if count > MAX_TEAMS {
            return Err(DecodeError::BadValue("team count"));
        }
        let mut teams = Vec::with_capacity(count);
        for _ in 0..count {
            let team = r.str()?;
            if team.len() > MAX_TEAM {
                return Err(DecodeError::BadValue("team name"));
            }
            teams.push(team.to_owned());
        }
        agents.push(RosterAgent {
            id,
            name,
            presence,
            open,
            capacity,
            teams,
        });
    }
    Ok(agents)
}
