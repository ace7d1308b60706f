//! Channels, recipients and contacts: who a message is for, where each
//! channel reaches them, what they allow, and when they do not want to be
//! disturbed.
//!
//! The principal carries only a user's id and name, so the plugin keeps a
//! contact per user (docs `contacts`, id = user id): addresses, locale,
//! channel preferences and quiet hours.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A delivery channel (the outbox's four).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    Push,
    InApp,
}

impl Channel {
    pub const ALL: [Channel; 4] = [Channel::Email, Channel::Sms, Channel::Push, Channel::InApp];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
            Channel::InApp => "in_app",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "email" => Channel::Email,
            "sms" => Channel::Sms,
            "push" => Channel::Push,
            "in_app" | "in-app" => Channel::InApp,
            _ => return None,
        })
    }
}

/// A list of channel names, checked and without repeats.
pub fn parse_channels(names: &[String]) -> Result<Vec<Channel>, String> {
    if names.is_empty() {
        return Err("channels must name at least one of email, sms, push, in_app".into());
    }
    let mut out: Vec<Channel> = Vec::new();
    for name in names {
        let channel = Channel::parse(name)
            .ok_or_else(|| format!("unknown channel {name:?} (email, sms, push or in_app)"))?;
        if !out.contains(&channel) {
            out.push(channel);
        }
    }
    Ok(out)
}

/// Who a send is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Recipient {
    /// A user of the tenant: reached through their contact.
    User(String),
    /// A raw email address (email only).
    Email(String),
    /// A raw E.164 number (SMS only).
    Phone(String),
}

impl Recipient {
    /// `ada@example.org` is an address, `+14155550100` a number, anything
    /// else a user id.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.contains('@') {
            check_email(raw)?;
            Ok(Recipient::Email(raw.to_ascii_lowercase()))
        } else if raw.starts_with('+') {
            check_e164(raw)?;
            Ok(Recipient::Phone(raw.to_owned()))
        } else if is_user_id(raw) {
            Ok(Recipient::User(raw.to_owned()))
        } else {
            Err(format!(
                "{raw:?} is neither a user id, an email address nor an E.164 number"
            ))
        }
    }

    /// How the log and the suppressions name it.
    pub fn key(&self) -> String {
        match self {
            Recipient::User(id) => format!("u:{id}"),
            Recipient::Email(a) => format!("e:{a}"),
            Recipient::Phone(p) => format!("p:{p}"),
        }
    }

    /// The recipient as the request gave it.
    pub fn raw(&self) -> &str {
        match self {
            Recipient::User(v) | Recipient::Email(v) | Recipient::Phone(v) => v,
        }
    }
}

/// User ids as the host issues them (uuids); kept loose but safe for keys.
pub fn is_user_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `local@domain`: the outbox's own rule, checked here first so a
/// fan-out refuses bad input before it queues anything.
pub use weft_addr::check_email;

/// The outbox's E.164 rule, and at least 8 digits: shorter numbers pass
/// the protocol check but reach no phone, so a fan-out refuses them.
pub fn check_e164(number: &str) -> Result<(), String> {
    weft_addr::check_e164(number)?;
    let digits = number.len() - 1;
    if digits < 8 {
        return Err(format!(
            "{number:?} is not an E.164 phone number (like +14155550100)"
        ));
    }
    Ok(())
}

/// A user's contact record.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Contact {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    #[serde(default)]
    pub push_tokens: Vec<String>,
    pub locale: Option<String>,
    /// Channels the user turned off (`false`); absent means allowed.
    #[serde(default)]
    pub channels: BTreeMap<String, bool>,
    pub quiet_hours: Option<QuietHours>,
}

impl Contact {
    /// Whether the user allows `channel`.
    pub fn allows(&self, channel: Channel) -> bool {
        self.channels.get(channel.as_str()).copied().unwrap_or(true)
    }

    /// Checks the fields a user or admin sets.
    pub fn check(&mut self) -> Result<(), String> {
        if let Some(email) = &mut self.email {
            *email = email.trim().to_ascii_lowercase();
            check_email(email)?;
        }
        if let Some(phone) = &self.phone {
            check_e164(phone)?;
        }
        if self.push_tokens.len() > 10 {
            return Err("at most 10 push tokens".into());
        }
        if self
            .push_tokens
            .iter()
            .any(|t| t.is_empty() || t.len() > 4096 || t.contains(char::is_whitespace))
        {
            return Err("a push token is 1-4096 characters without spaces".into());
        }
        if let Some(locale) = &self.locale
            && !crate::templates::check_locale(locale)
        {
            return Err(format!("{locale:?} is not a locale tag (like en or fr-CA)"));
        }
        for name in self.channels.keys() {
            if Channel::parse(name).is_none() {
                return Err(format!("unknown channel {name:?} in channels"));
            }
        }
        if let Some(q) = &self.quiet_hours {
            q.check()?;
        }
        Ok(())
    }
}

/// A daily window in which interrupting channels wait, in a fixed UTC
/// offset (no time zone database in a plugin: the user's device knows its
/// offset and updates it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QuietHours {
    /// `HH:MM`, local.
    pub start: String,
    /// `HH:MM`, local; before `start` means the window spans midnight.
    pub end: String,
    #[serde(default)]
    pub utc_offset_minutes: i32,
    /// Which channels wait (default: SMS and push, the ones that buzz).
    #[serde(default = "default_quiet_channels")]
    pub channels: Vec<Channel>,
}

fn default_quiet_channels() -> Vec<Channel> {
    vec![Channel::Sms, Channel::Push]
}

const DAY_MINUTES: i64 = 24 * 60;

fn minutes(hhmm: &str) -> Option<i64> {
    let (h, m) = hhmm.split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m) && hhmm.len() == 5).then_some(h * 60 + m)
}

impl QuietHours {
    pub fn check(&self) -> Result<(), String> {
        if minutes(&self.start).is_none() || minutes(&self.end).is_none() {
            return Err("quiet_hours start and end are HH:MM".into());
        }
        if !(-14 * 60..=14 * 60).contains(&self.utc_offset_minutes) {
            return Err("quiet_hours utc_offset_minutes is between -840 and 840".into());
        }
        Ok(())
    }

    /// When a message on `channel` at `now_ms` may go: `None` if now,
    /// else the window's end (Unix ms).
    pub fn defer_until(&self, channel: Channel, now_ms: i64) -> Option<i64> {
        if !self.channels.contains(&channel) {
            return None;
        }
        let (start, end) = (minutes(&self.start)?, minutes(&self.end)?);
        if start == end {
            return None;
        }
        let now_min = now_ms.div_euclid(60_000);
        let local = (now_min + i64::from(self.utc_offset_minutes)).rem_euclid(DAY_MINUTES);
        let inside = if start < end {
            (start..end).contains(&local)
        } else {
            local >= start || local < end
        };
        if !inside {
            return None;
        }
        let wait = (end - local).rem_euclid(DAY_MINUTES);
        Some((now_min + wait) * 60_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_told_apart_and_checked() {
        assert_eq!(
            Recipient::parse(" Ada@Example.org "),
            Ok(Recipient::Email("ada@example.org".into()))
        );
        assert_eq!(
            Recipient::parse("+14155550100"),
            Ok(Recipient::Phone("+14155550100".into()))
        );
        assert!(matches!(
            Recipient::parse("0190f1e2-aaaa-7bbb-8ccc-123456789abc"),
            Ok(Recipient::User(_))
        ));
        for bad in [
            "not@an",
            "a@b@",
            "+1415",
            "+1 415 555 0100",
            "a b",
            "",
            "x@y.z\r\nBcc: e@f.g",
        ] {
            assert!(Recipient::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn channel_lists() {
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            parse_channels(&names(&["email", "in-app", "email"])),
            Ok(vec![Channel::Email, Channel::InApp])
        );
        assert!(parse_channels(&names(&["fax"])).is_err());
        assert!(parse_channels(&[]).is_err());
    }

    #[test]
    fn contacts_are_checked_and_normalized() {
        let mut c = Contact {
            email: Some(" Ada@Example.ORG".into()),
            phone: Some("+33612345678".into()),
            locale: Some("fr-CA".into()),
            ..Contact::default()
        };
        assert!(c.check().is_ok());
        assert_eq!(c.email.as_deref(), Some("ada@example.org"));
        c.phone = Some("0612345678".into());
        assert!(c.check().is_err());
        c.phone = None;
        c.channels.insert("fax".into(), false);
        assert!(c.check().is_err());
        c.channels.clear();
        c.channels.insert("sms".into(), false);
        assert!(c.check().is_ok() && !c.allows(Channel::Sms) && c.allows(Channel::Email));
    }

    #[test]
    fn quiet_hours_defer_to_the_end_of_the_window() {
        let q = QuietHours {
            start: "22:00".into(),
            end: "07:00".into(),
            utc_offset_minutes: 60,
            channels: vec![Channel::Sms],
        };
        let at = |h: i64, m: i64| (h * 60 + m) * 60_000; // UTC, day 0
        // 22:30 UTC is 23:30 local: quiet until 07:00 local = 06:00 UTC next day.
        assert_eq!(q.defer_until(Channel::Sms, at(22, 30)), Some(at(30, 0)));
        // 05:00 UTC is 06:00 local: one hour left.
        assert_eq!(q.defer_until(Channel::Sms, at(5, 0)), Some(at(6, 0)));
        // 06:00 UTC is 07:00 local: over.
        assert_eq!(q.defer_until(Channel::Sms, at(6, 0)), None);
        assert_eq!(q.defer_until(Channel::Sms, at(12, 0)), None);
        // Email is not in the window's channels.
        assert_eq!(q.defer_until(Channel::Email, at(22, 30)), None);
        let day = QuietHours {
            start: "09:00".into(),
            end: "17:00".into(),
            utc_offset_minutes: -300,
            channels: vec![Channel::Push],
        };
        // 15:00 UTC is 10:00 at UTC-5: until 17:00 local = 22:00 UTC.
        assert_eq!(day.defer_until(Channel::Push, at(15, 0)), Some(at(22, 0)));
        assert!(
            QuietHours {
                start: "25:00".into(),
                ..day.clone()
            }
            .check()
            .is_err()
        );
        assert!(
            QuietHours {
                utc_offset_minutes: 900,
                ..day
            }
            .check()
            .is_err()
        );
    }
}
