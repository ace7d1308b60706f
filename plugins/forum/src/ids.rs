//! Ids, keys and names: how the forum spells things in storage and URLs.
//!
//! Everything here is pure, so it is tested natively. Docs ids are 1-128
//! characters of `A-Z a-z 0-9 _ - . :`, and the store orders ids bytewise,
//! which the layouts below rely on:
//!
//! - a post is `{topic}.{number:06}`, so one topic's posts are one id range,
//!   in number order;
//! - a revision is `{post}.r{number:04}` and a flag `{post}.f.{user}`, so a
//!   post's revisions and flags are id ranges too;
//! - an activity record starts with its time, so a time window is a range.

use std::time::{SystemTime, UNIX_EPOCH};

/// The widest post number a topic can reach (six digits in the post id).
pub const MAX_POST_NUMBER: u32 = 999_999;
/// The most revisions a post keeps (four digits in the revision id).
pub const MAX_REVISION: u32 = 9_999;

/// Milliseconds since the Unix epoch, by the wall clock.
pub fn now_ms() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// A fresh topic id: a UUIDv7 (time-ordered, random tail) in 26 characters
/// of lower-case Crockford base32.
pub fn new_topic_id() -> String {
    base32(uuid::Uuid::now_v7().as_u128())
}

const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// `value` in 26 base32 digits, most significant first, so the text sorts
/// like the number.
fn base32(value: u128) -> String {
    (0..26)
        .rev()
        .map(|i| {
            let digit = (value >> (i * 5)) & 31;
            char::from(CROCKFORD[digit as usize])
        })
        .collect()
}

/// True for a topic id this plugin could have made (checked before it is
/// used to build other ids, so `..` or `/` never reach a key).
pub fn is_topic_id(id: &str) -> bool {
    id.len() == 26 && id.bytes().all(|b| CROCKFORD.contains(&b))
}

/// The id of post `number` of `topic`.
pub fn post_id(topic: &str, number: u32) -> String {
    format!("{topic}.{number:06}")
}

/// The topic and number of a post id, if it is one.
pub fn parse_post_id(id: &str) -> Option<(&str, u32)> {
    let (topic, number) = id.split_once('.')?;
    if !is_topic_id(topic) || number.len() != 6 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number: u32 = number.parse().ok()?;
    (number >= 1).then_some((topic, number))
}

/// The id range `(after, before)` holding every post of `topic`.
pub fn post_range(topic: &str) -> (String, String) {
    // '/' is the byte after '.', so this is exactly the "{topic}." prefix.
    (format!("{topic}."), format!("{topic}/"))
}

/// The id of revision `number` of `post`.
pub fn revision_id(post: &str, number: u32) -> String {
    format!("{post}.r{number:04}")
}

/// The id of `user`'s flag on `post` (one per user and post).
pub fn flag_id(post: &str, user_key: &str) -> String {
    format!("{post}.f.{user_key}")
}

/// A user id made safe for docs ids and kv keys.
///
/// The host's user and API-key ids are UUIDs, which pass through; anything
/// else becomes `x` and a 128-bit hash, so a strange id can never break a
/// key layout.
pub fn user_key(user_id: &str) -> String {
    let safe = (1..=64).contains(&user_id.len())
        && user_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if safe {
        user_id.to_owned()
    } else {
        format!(
            "x{:016x}{:016x}",
            fnv1a(user_id, 0xcbf2_9ce4_8422_2325),
            fnv1a(user_id, 0x6c62_272e_07bb_0142)
        )
    }
}

fn fnv1a(text: &str, seed: u64) -> u64 {
    text.bytes().fold(seed, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Why a category id is refused, if it is.
pub fn check_slug(slug: &str) -> Result<(), String> {
    if slug.is_empty() || slug.len() > 64 {
        return Err("must be 1-64 characters".into());
    }
    if !slug
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("must be lower-case letters, digits and '-'".into());
    }
    if slug.starts_with('-') || slug.ends_with('-') {
        return Err("must not begin or end with '-'".into());
    }
    Ok(())
}

/// A category id made from a display name: `"Off topic!"` is `off-topic`.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 64 {
            break;
        }
    }
    slug.trim_end_matches('-').to_owned()
}

/// The most tags a topic has.
pub const MAX_TAGS: usize = 5;

/// Tags normalized (trimmed, lower-cased, duplicates dropped, order kept),
/// or why they are refused.
pub fn normalize_tags(tags: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.trim().to_lowercase();
        check_tag(&tag)?;
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    if out.len() > MAX_TAGS {
        return Err(format!("at most {MAX_TAGS} tags"));
    }
    Ok(out)
}

/// Why one tag is refused, if it is: 1-30 characters of `a-z 0-9 -`.
pub fn check_tag(tag: &str) -> Result<(), String> {
    let ok = (1..=30).contains(&tag.len())
        && tag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag {tag:?} must be 1-30 characters of a-z, 0-9 and '-'"
        ))
    }
}

/// A user id given in a path or body: what the host could have issued.
pub fn check_user_id(id: &str) -> Result<(), String> {
    let ok = (1..=128).contains(&id.len()) && !id.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err("must be 1-128 characters without control characters".into())
    }
}

/// `YYYY-MM-DD` of a Unix millisecond time, in UTC.
pub fn utc_date(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_ids_are_sortable_and_checked() {
        let a = base32(1);
        let b = base32(2);
        assert_eq!(a.len(), 26);
        assert!(a < b);
        assert!(base32(u128::MAX).starts_with('7'));
        let id = new_topic_id();
        assert!(is_topic_id(&id), "{id}");
        assert!(!is_topic_id("../etc"));
        assert!(!is_topic_id(&id.to_uppercase()));
    }

    #[test]
    fn post_ids_round_trip_and_range() {
        let topic = base32(42);
        let id = post_id(&topic, 17);
        assert_eq!(parse_post_id(&id), Some((topic.as_str(), 17)));
        assert_eq!(parse_post_id(&format!("{topic}.000000")), None);
        assert_eq!(parse_post_id(&format!("{topic}.17")), None);
        assert_eq!(parse_post_id("nope.000001"), None);
        let (after, before) = post_range(&topic);
        assert!(after < id && id < before);
        assert!(post_id(&topic, 9) < post_id(&topic, 10));
        assert!(revision_id(&id, 2) > id);
        assert!(flag_id(&id, "u1").starts_with(&id));
    }

    #[test]
    fn user_keys_are_safe() {
        let uuid = "0192f7a4-2c3b-7d1e-9f00-1234567890ab";
        assert_eq!(user_key(uuid), uuid);
        let odd = user_key("a:b/c");
        assert_eq!(odd.len(), 33);
        assert!(odd.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(user_key("a:b/c"), user_key("a:b/d"));
    }

    #[test]
    fn slugs() {
        assert!(check_slug("general").is_ok());
        assert!(check_slug("off-topic-2").is_ok());
        for bad in ["", "Caps", "a_b", "-a", "a-", "a b", &"x".repeat(65)] {
            assert!(check_slug(bad).is_err(), "{bad:?}");
        }
        assert_eq!(slugify("Off topic!"), "off-topic");
        assert_eq!(slugify("  Rust & WASM  "), "rust-wasm");
        assert_eq!(slugify("¡¡¡"), "");
    }

    #[test]
    fn tags_are_normalized_and_bounded() {
        let tags =
            |v: &[&str]| normalize_tags(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(
            tags(&[" Rust ", "wasm", "rust"]),
            Ok(vec!["rust".into(), "wasm".into()])
        );
        assert!(tags(&["a", "b", "c", "d", "e"]).is_ok());
        assert!(tags(&["a", "b", "c", "d", "e", "f"]).is_err());
        assert!(tags(&[""]).is_err());
        assert!(tags(&["has space"]).is_err());
        assert!(tags(&["under_score"]).is_err());
        assert!(tags(&[&"x".repeat(31)]).is_err());
        assert!(tags(&[&"x".repeat(30)]).is_ok());
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(86_399_999), "1970-01-01");
        assert_eq!(utc_date(951_782_400_000), "2000-02-29");
        assert_eq!(utc_date(1_767_225_600_000), "2026-01-01");
        assert_eq!(utc_date(-1), "1969-12-31");
    }
}
