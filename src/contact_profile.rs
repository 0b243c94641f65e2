//! What a person tells about themselves (the widget's form) or an agent records about them
//! (the contact panel): a name, a phone number, an e-mail address and notes. Pure checks and
//! the merge into a contact's details, a JSON object that may hold more (what an import
//! brought: a city, addresses): only the fields given change, an empty one is removed.

use serde::Deserialize;
use serde_json::{Map, Value};

/// The fields, each optional: `None` leaves it as it is.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ProfileChange {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// Agents only: the widget's form never sends notes.
    pub notes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("name is at most 100 characters, without control characters")]
    BadName,
    #[error("phone is at most 40 characters: digits, spaces and + - ( ) .")]
    BadPhone,
    #[error("email must look like name@host, at most 200 characters")]
    BadEmail,
    #[error("notes are at most 2000 characters")]
    BadNotes,
}

impl ProfileChange {
    /// Trims every field and checks it.
    ///
    /// # Errors
    /// [`ProfileError`] naming the first field that is not acceptable.
    pub fn checked(self) -> Result<ProfileChange, ProfileError> {
        let trim = |v: Option<String>| v.map(|s| s.trim().to_string());
        let change = ProfileChange {
            name: trim(self.name),
            phone: trim(self.phone),
            email: trim(self.email),
            notes: self.notes.map(|n| n.trim_end().to_string()),
        };
        if let Some(name) = &change.name {
            if name.chars().count() > 100 || name.chars().any(char::is_control) {
                return Err(ProfileError::BadName);
            }
        }
        if let Some(phone) = change.phone.as_deref().filter(|p| !p.is_empty()) {
            let ok = phone.len() <= 40
                && phone.bytes().any(|b| b.is_ascii_digit())
                && phone
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b" +-().".contains(&b));
            if !ok {
                return Err(ProfileError::BadPhone);
            }
        }
        if let Some(email) = change.email.as_deref().filter(|e| !e.is_empty()) {
            let ok = email.len() <= 200
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
                && email
                    .split_once('@')
                    .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'));
            if !ok {
                return Err(ProfileError::BadEmail);
            }
        }
        if let Some(notes) = &change.notes {
            if notes.chars().count() > 2000 {
                return Err(ProfileError::BadNotes);
            }
        }
        Ok(change)
    }

    /// Whether the change holds nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.phone.is_none() && self.email.is_none() && self.notes.is_none()
    }

    /// The contact's name and details after this change, from the stored ones. Details that
    /// are not a JSON object (never written by kefud) are kept under `"previous"`.
    pub fn apply(&self, name: &str, details: &str) -> (String, String) {
        let mut object = match serde_json::from_str::<Value>(details) {
            Ok(Value::Object(map)) => map,
            Ok(Value::Null) | Err(_) if details.trim().is_empty() => Map::new(),
            Ok(other) => Map::from_iter([("previous".to_string(), other)]),
            Err(_) => Map::from_iter([("previous".to_string(), Value::String(details.into()))]),
        };
        for (key, value) in [
            ("phone", &self.phone),
            ("email", &self.email),
            ("notes", &self.notes),
        ] {
            match value.as_deref() {
                None => {}
                Some("") => {
                    object.remove(key);
                }
                Some(v) => {
                    object.insert(key.to_string(), Value::String(v.to_string()));
                }
            }
        }
        let name = self.name.clone().unwrap_or_else(|| name.to_string());
        (name, Value::Object(object).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(name: &str, phone: &str, email: &str) -> ProfileChange {
        ProfileChange {
            name: Some(name.into()),
            phone: Some(phone.into()),
            email: Some(email.into()),
            notes: None,
        }
    }

    #[test]
    fn fields_are_trimmed_and_checked() {
        let ok = change("  Li Wei ", "+86 138-0000 0000", "li@example.com")
            .checked()
            .unwrap();
        assert_eq!(ok.name.as_deref(), Some("Li Wei"));
        assert_eq!(
            change("x", "call me", "").checked(),
            Err(ProfileError::BadPhone)
        );
        assert_eq!(
            change("x", "", "li@").checked(),
            Err(ProfileError::BadEmail)
        );
        assert_eq!(
            change("x", "", "li @example.com").checked(),
            Err(ProfileError::BadEmail)
        );
        assert_eq!(
            change(&"n".repeat(101), "", "").checked(),
            Err(ProfileError::BadName)
        );
        assert_eq!(
            change("", "", "").checked().map(|c| c.is_empty()),
            Ok(false)
        );
        assert!(ProfileChange::default().is_empty());
    }

    #[test]
    fn a_change_keeps_what_it_does_not_name_and_removes_what_it_empties() {
        let stored = r#"{"city":"北京","phone":"1","email":"old@example.com"}"#;
        let c = ProfileChange {
            phone: Some(String::new()),
            email: Some("new@example.com".into()),
            ..ProfileChange::default()
        };
        let (name, details) = c.apply("Ann", stored);
        assert_eq!(name, "Ann");
        let v: Value = serde_json::from_str(&details).unwrap();
        assert_eq!(v["city"], "北京");
        assert_eq!(v["email"], "new@example.com");
        assert!(v.get("phone").is_none());
        let (_, fresh) = change("Bo", "123", "").apply("", "");
        assert_eq!(
            serde_json::from_str::<Value>(&fresh).unwrap()["phone"],
            "123"
        );
        let (_, kept) = change("Bo", "123", "").apply("", "[1,2]");
        assert_eq!(
            serde_json::from_str::<Value>(&kept).unwrap()["previous"],
            serde_json::json!([1, 2])
        );
    }
}
