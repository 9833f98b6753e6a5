//! When the `run` service syncs a source: a cron pattern in a time zone.
//!
//! In: a source's `schedule`, `timezone` and `allow_working_hours`, and the current time
//! (passed in). Out: the next time a sync is due after a given time. A pattern that can fire
//! during working hours (08:00–17:00 local time) is refused unless allowed, as for the
//! e-mail connector's nightly window.

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

use crate::sources::config::SourceConfig;

/// Working hours, in which a sync is refused unless allowed.
const WORK_START: u32 = 8;
const WORK_END: u32 = 17;

/// Occurrences looked at when checking a pattern against working hours (over a year of a
/// nightly pattern, or days of a frequent one).
const PROBE: usize = 2_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("schedule \"{0}\" is not a cron pattern: {1}")]
    Pattern(String, String),
    #[error("timezone \"{0}\" is not an IANA time zone name")]
    Zone(String),
    #[error(
        "schedule \"{0}\" fires during working hours (08:00-17:00, first at {1}); choose \
         another time or set allow_working_hours = true"
    )]
    WorkingHours(String, String),
    #[error("schedule \"{0}\" never fires")]
    Never(String),
}

/// A source's resolved schedule.
#[derive(Debug, Clone)]
pub struct SourceSchedule {
    cron: Cron,
    zone: Tz,
}

impl SourceSchedule {
    pub fn from_config(c: &SourceConfig) -> Result<SourceSchedule, ScheduleError> {
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(c.schedule.trim())
            .map_err(|e| ScheduleError::Pattern(c.schedule.clone(), e.to_string()))?;
        let zone: Tz = c
            .timezone
            .parse()
            .map_err(|_| ScheduleError::Zone(c.timezone.clone()))?;
        let schedule = SourceSchedule { cron, zone };
        let start = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
        let mut at = schedule
            .next_after(start)
            .ok_or_else(|| ScheduleError::Never(c.schedule.clone()))?;
        if !c.allow_working_hours {
            for _ in 0..PROBE {
                let local = at.with_timezone(&zone);
                if (WORK_START..WORK_END).contains(&local.hour()) {
                    return Err(ScheduleError::WorkingHours(
                        c.schedule.clone(),
                        local.format("%H:%M").to_string(),
                    ));
                }
                match schedule.next_after(at) {
                    Some(next) => at = next,
                    None => break,
                }
            }
        }
        Ok(schedule)
    }

    /// The first time the pattern fires strictly after `after`.
    /// A time in the schedule's zone, as the nightly run's are said:
    /// `Tuesday 24 November 2026 at 01:30 (Europe/London)`.
    pub fn describe(&self, t: DateTime<Utc>) -> String {
        crate::mail::schedule::describe_in(t, self.zone)
    }

    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.zone), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Whether a sync is due at `now`, given when the last one started (none yet: due at
    /// the first occurrence after `since`, the service's start).
    pub fn due(
        &self,
        last: Option<DateTime<Utc>>,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        self.next_after(last.unwrap_or(since).max(since))
            .is_some_and(|next| next <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(schedule: &str, allow: bool) -> SourceConfig {
        let text = format!(
            "name = \"ad\"\norganisations = [\"RXX\"]\nschedule = \"{schedule}\"\n\
             allow_working_hours = {allow}\n"
        );
        toml::from_str(&text).expect("source config")
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn the_default_is_half_past_one_london_time_in_summer_and_winter() {
        let s = SourceSchedule::from_config(&config("30 1 * * *", false)).expect("schedule");
        // British Summer Time: 01:30 local is 00:30 UTC.
        assert_eq!(
            s.next_after(utc("2026-07-01T12:00:00Z")),
            Some(utc("2026-07-02T00:30:00Z"))
        );
        // Winter: 01:30 local is 01:30 UTC.
        assert_eq!(
            s.next_after(utc("2026-12-01T12:00:00Z")),
            Some(utc("2026-12-02T01:30:00Z"))
        );
    }

    #[test]
    fn a_pattern_firing_in_working_hours_is_refused_unless_allowed() {
        for pattern in ["0 9 * * *", "*/30 * * * *", "0 0 12 * * 1"] {
            let err = SourceSchedule::from_config(&config(pattern, false)).unwrap_err();
            assert!(
                matches!(err, ScheduleError::WorkingHours(..)),
                "{pattern}: {err}"
            );
            assert!(SourceSchedule::from_config(&config(pattern, true)).is_ok());
        }
        for pattern in ["0 22 * * 1-5", "15 17 * * *", "0 7 * * *"] {
            assert!(
                SourceSchedule::from_config(&config(pattern, false)).is_ok(),
                "{pattern}"
            );
        }
    }

    #[test]
    fn bad_patterns_and_zones_are_named() {
        let err = SourceSchedule::from_config(&config("61 1 * * *", false)).unwrap_err();
        assert!(matches!(err, ScheduleError::Pattern(..)), "{err}");
        let mut c = config("30 1 * * *", false);
        c.timezone = "Mars/Olympus".to_owned();
        assert_eq!(
            SourceSchedule::from_config(&c).unwrap_err(),
            ScheduleError::Zone("Mars/Olympus".to_owned())
        );
    }

    #[test]
    fn due_once_per_occurrence() {
        let s = SourceSchedule::from_config(&config("30 1 * * *", false)).expect("schedule");
        let started = utc("2026-12-01T12:00:00Z");
        assert!(!s.due(None, started, utc("2026-12-02T01:29:00Z")));
        assert!(s.due(None, started, utc("2026-12-02T01:30:00Z")));
        let last = utc("2026-12-02T01:30:05Z");
        assert!(!s.due(Some(last), started, utc("2026-12-02T09:00:00Z")));
        assert!(s.due(Some(last), started, utc("2026-12-03T01:31:00Z")));
    }
}
