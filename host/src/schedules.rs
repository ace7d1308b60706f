//! Schedules: the cron expressions of plugin manifests, their due times, and
//! the clock due times are measured by (injectable, for tests). The
//! scheduler that queues the runs is a job: [`crate::jobs::scheduler`].

use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use croner::Cron;

use crate::ids::now_ms;

/// Where "now" comes from for due times.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Unix milliseconds.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// A clock tests set by hand.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(ms: i64) -> Self {
        Self(AtomicI64::new(ms))
    }

    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Parses a manifest cron expression (5 fields, or 6 with seconds first).
pub fn parse(expr: &str) -> Result<Cron, String> {
    Cron::from_str(expr).map_err(|e| format!("invalid cron expression {expr:?}: {e}"))
}

fn to_datetime(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_millis(ms)
}

/// The latest due time at or before `now` (Unix ms).
pub fn latest_due(cron: &Cron, now: i64) -> Option<i64> {
    cron.find_previous_occurrence(&to_datetime(now)?, true)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The first due time after `now` (Unix ms).
pub fn next_due(cron: &Cron, now: i64) -> Option<i64> {
    cron.find_next_occurrence(&to_datetime(now)?, false)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn five_and_six_field_expressions_parse() {
        assert!(parse("0 6 * * *").is_ok());
        assert!(parse("*/10 * * * * *").is_ok());
        assert!(parse("61 * * * *").is_err());
        assert!(parse("every day").is_err());
    }

    #[test]
    fn latest_and_next_due_bracket_now() {
        let daily = parse("0 6 * * *").expect("cron");
        // 2026-11-25T10:30:00Z
        let now = 1_795_516_200_000;
        let latest = latest_due(&daily, now).expect("latest");
        let next = next_due(&daily, now).expect("next");
        assert_eq!(next - latest, 24 * 60 * MIN);
        assert!(latest <= now && now < next);
        assert_eq!(latest % (60 * MIN), 6 * 60 * MIN % (60 * MIN));
        // A due time itself is the latest due at that instant.
        assert_eq!(latest_due(&daily, latest), Some(latest));
    }
}
