//! The route table: which adapter delivers the replies of which channel.
//!
//! A reply's route is one identity of its contact (chosen by the dispatcher: where the
//! customer last wrote from, or the identity the agent picked); the identity's channel names
//! the adapter here. An adapter names its channels, or (at most one) takes every channel no
//! other adapter names. The web widget's channel is never routed: the fan-out serves it.

use crate::model::{ChannelFilter, WEB_CHANNEL};

use super::Description;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("channel {channel} is claimed by both {first} and {second}")]
    Claimed {
        channel: String,
        first: String,
        second: String,
    },
    #[error("both {0} and {1} take every unclaimed channel; at most one may")]
    TwoDefaults(String, String),
    #[error("{0} claims the web widget's channel, which the live fan-out serves")]
    Web(String),
}

/// Which adapter delivers which channel.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// (channel, adapter name), for the channels adapters name.
    named: Vec<(String, String)>,
    /// The adapter that takes every other channel.
    default: Option<String>,
}

impl RouteTable {
    /// Builds the table from the adapters' descriptions.
    ///
    /// # Errors
    /// [`RouteError`] when two adapters claim one channel, two take the rest, or one claims
    /// the web channel.
    pub fn new(adapters: &[Description]) -> Result<Self, RouteError> {
        let mut table = RouteTable::default();
        for a in adapters {
            if a.channels.is_empty() {
                if let Some(first) = &table.default {
                    return Err(RouteError::TwoDefaults(first.clone(), a.name.clone()));
                }
                table.default = Some(a.name.clone());
            }
            for channel in &a.channels {
                if channel == WEB_CHANNEL {
                    return Err(RouteError::Web(a.name.clone()));
                }
                if let Some((_, first)) = table.named.iter().find(|(c, _)| c == channel) {
                    return Err(RouteError::Claimed {
                        channel: channel.clone(),
                        first: first.clone(),
                        second: a.name.clone(),
                    });
                }
                table.named.push((channel.clone(), a.name.clone()));
            }
        }
        Ok(table)
    }

    /// The adapter that delivers replies on `channel`, if any.
    pub fn adapter_for(&self, channel: &str) -> Option<&str> {
        if channel == WEB_CHANNEL {
            return None;
        }
        self.named
            .iter()
            .find(|(c, _)| c == channel)
            .map(|(_, a)| a.as_str())
            .or(self.default.as_deref())
    }

    /// The rows adapter `name` delivers.
    pub fn filter_for(&self, name: &str) -> ChannelFilter {
        if self.default.as_deref() == Some(name) {
            ChannelFilter::AllBut(
                self.named
                    .iter()
                    .filter(|(_, a)| a != name)
                    .map(|(c, _)| c.clone())
                    .collect(),
            )
        } else {
            ChannelFilter::Only(
                self.named
                    .iter()
                    .filter(|(_, a)| a == name)
                    .map(|(c, _)| c.clone())
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(name: &str, channels: &[&str]) -> Description {
        Description {
            name: name.into(),
            channels: channels.iter().map(|c| c.to_string()).collect(),
            max_in_flight: 1,
            events: false,
        }
    }

    #[test]
    fn named_channels_win_and_the_default_takes_the_rest() {
        let t = RouteTable::new(&[
            adapter("mqtt", &[]),
            adapter("webhook", &["app"]),
            adapter("wechat", &["wechat"]),
        ])
        .unwrap();
        assert_eq!(t.adapter_for("app"), Some("webhook"));
        assert_eq!(t.adapter_for("wechat"), Some("wechat"));
        assert_eq!(t.adapter_for("kiosk"), Some("mqtt"));
        assert_eq!(t.adapter_for("web"), None);
        assert_eq!(
            t.filter_for("mqtt"),
            ChannelFilter::AllBut(vec!["app".into(), "wechat".into()])
        );
        assert_eq!(
            t.filter_for("webhook"),
            ChannelFilter::Only(vec!["app".into()])
        );
        let none = RouteTable::new(&[adapter("webhook", &["app"])]).unwrap();
        assert_eq!(none.adapter_for("kiosk"), None);
        assert!(t.filter_for("mqtt").allows("kiosk"));
        assert!(!t.filter_for("mqtt").allows("app"));
        assert!(!t.filter_for("mqtt").allows("web"));
        assert!(t.filter_for("webhook").allows("app"));
        assert!(!t.filter_for("webhook").allows("kiosk"));
    }

    #[test]
    fn conflicting_claims_are_refused() {
        assert!(matches!(
            RouteTable::new(&[adapter("a", &["x"]), adapter("b", &["x"])]),
            Err(RouteError::Claimed { .. })
        ));
        assert!(matches!(
            RouteTable::new(&[adapter("a", &[]), adapter("b", &[])]),
            Err(RouteError::TwoDefaults(..))
        ));
        assert!(matches!(
            RouteTable::new(&[adapter("a", &["web"])]),
            Err(RouteError::Web(_))
        ));
    }
}
