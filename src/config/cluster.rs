//! The `[cluster]` section: several boxes, one inbox (see `crate::cluster`). The broker is
//! the one `[mqtt]` names; the cluster needs no channel of its own.

use serde::Deserialize;

use super::{ConfigError, Secret};
use crate::model::bounded_id;

/// Shortest cluster secret taken without a warning: it signs every operation boxes exchange.
pub const ADVISED_SECRET_CHARS: usize = 16;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Cluster {
    /// Off (the default): this box is alone, exactly as without the section.
    pub enabled: bool,
    /// The cluster's name: its topics are `kefu/v1/{name}/...`; boxes share conversations
    /// only with boxes of the same name and secret.
    pub name: String,
    /// The shared key every box of the cluster signs its operations with (16 characters or
    /// more advised; shorter ones are taken with a warning); an operation signed with another
    /// key is dropped and counted.
    pub secret: Secret<String>,
    /// A box whose clock is further ahead than this does not move this box's clock: its
    /// operations are still applied, and the skew is reported (`/api/v1/cluster`).
    pub max_clock_ahead_ms: u64,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            enabled: false,
            name: String::new(),
            secret: Secret::default(),
            max_clock_ahead_ms: 500,
        }
    }
}

impl Cluster {
    /// Whether the secret is shorter than advised (the daemon says so at start).
    pub fn weak_secret(&self) -> bool {
        self.secret.expose().chars().count() < ADVISED_SECRET_CHARS
    }

    /// Problems with the section, each naming its key; none while it is off.
    pub(super) fn problems(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if !self.enabled {
            return errors;
        }
        if bounded_id::<32>(&self.name).is_err() || self.name.contains(['/', '+', '#', ':', '@']) {
            errors.push(ConfigError {
                key: "cluster.name",
                message: "must be 1-32 letters, digits, '-', '_' or '.'".into(),
            });
        }
        if self.secret.expose().is_empty() {
            errors.push(ConfigError {
                key: "cluster.secret",
                message: "must be set: every box of the cluster signs with it".into(),
            });
        }
        if !(10..=3_600_000).contains(&self.max_clock_ahead_ms) {
            errors.push(ConfigError {
                key: "cluster.max_clock_ahead_ms",
                message: "must be between 10 and 3600000".into(),
            });
        }
        errors
    }
}
