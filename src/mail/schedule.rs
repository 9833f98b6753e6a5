//! The nightly window: when the day's submissions are applied.
//!
//! In: `[schedule]` (a local time, an IANA time zone, a window length) and the current time
//! (passed in). Out: the next start, and whether a run is due now given the last one. Local
//! times are resolved with the zone's own rules, so 02:00 Europe/London is 01:00 UTC in
//! summer and 02:00 UTC in winter; a start that falls in a spring-forward gap moves to the
//! first valid minute after it, and one that occurs twice (autumn) takes the first.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::config::ScheduleConfig;

/// Working hours, in which a nightly run is refused unless allowed.
const WORK_START: u32 = 8;
const WORK_END: u32 = 17;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("nightly_at \"{0}\" is not a time of day (HH:MM)")]
    BadTime(String),
    #[error("timezone \"{0}\" is not an IANA time zone name")]
    BadZone(String),
    #[error(
        "the nightly window {0} for {1} hours touches working hours (08:00-17:00); choose \
         another time or set allow_working_hours = true"
    )]
    WorkingHours(String, u32),
    #[error("window_hours must be between 1 and 23")]
    BadWindow,
}

/// A resolved schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub at: NaiveTime,
    pub zone: Tz,
    pub window: Duration,
}

impl Schedule {
    pub fn from_config(c: &ScheduleConfig) -> Result<Schedule, ScheduleError> {
        let at = NaiveTime::parse_from_str(c.nightly_at.trim(), "%H:%M")
            .map_err(|_| ScheduleError::BadTime(c.nightly_at.clone()))?;
        let zone: Tz = c
            .timezone
            .parse()
            .map_err(|_| ScheduleError::BadZone(c.timezone.clone()))?;
        if c.window_hours == 0 || c.window_hours > 23 {
            return Err(ScheduleError::BadWindow);
        }
        if !c.allow_working_hours && touches_working_hours(at, c.window_hours) {
            return Err(ScheduleError::WorkingHours(
                c.nightly_at.clone(),
                c.window_hours,
            ));
        }
        Ok(Schedule {
            at,
            zone,
            window: Duration::hours(i64::from(c.window_hours)),
        })
    }

    /// The start on a local calendar day, as an instant.
    fn start_on(&self, day: NaiveDate) -> DateTime<Utc> {
        let mut local = day.and_time(self.at);
        // A gap (spring forward) has no such local time: move on a minute at a time.
        for _ in 0..180 {
            match self.zone.from_local_datetime(&local) {
                LocalResult::Single(t) => return t.with_timezone(&Utc),
                LocalResult::Ambiguous(first, _) => return first.with_timezone(&Utc),
                LocalResult::None => local += Duration::minutes(1),
            }
        }
        // No zone has a gap of three hours; fall back to reading the time as UTC.
        Utc.from_utc_datetime(&day.and_time(self.at))
    }

    /// The first start strictly after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let today = now.with_timezone(&self.zone).date_naive();
        let mut day = today - Duration::days(1);
        loop {
            let start = self.start_on(day);
            if start > now {
                return start;
            }
            day += Duration::days(1);
        }
    }

    /// The latest start at or before `now`.
    pub fn last_start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let today = now.with_timezone(&self.zone).date_naive();
        let mut day = today + Duration::days(1);
        loop {
            let start = self.start_on(day);
            if start <= now {
                return start;
            }
            day -= Duration::days(1);
        }
    }

    /// Whether the nightly run is due: `now` is inside a window that has not had its run.
    pub fn due(&self, now: DateTime<Utc>, last_run: Option<DateTime<Utc>>) -> bool {
        let start = self.last_start(now);
        now < start + self.window && last_run.is_none_or(|l| l < start)
    }

    /// A start as the sender reads it: `Tuesday 3 June 2025 at 02:00 (Europe/London)`.
    pub fn describe(&self, t: DateTime<Utc>) -> String {
        describe_in(t, self.zone)
    }
}

/// A time as people read it, in a zone: `Tuesday 3 June 2025 at 02:00 (Europe/London)`.
/// Every schedule says its times this way.
pub fn describe_in(t: DateTime<Utc>, zone: Tz) -> String {
    let local = t.with_timezone(&zone);
    format!(
        "{} at {} ({})",
        local.format("%A %-d %B %Y"),
        local.format("%H:%M"),
        zone.name()
    )
}

/// Whether `[at, at + hours)` meets 08:00–17:00 on any day.
fn touches_working_hours(at: NaiveTime, hours: u32) -> bool {
    use chrono::Timelike;
    let start = at.hour() * 60 + at.minute();
    let end = start + hours * 60;
    let (ws, we) = (WORK_START * 60, WORK_END * 60);
    // Check today's and tomorrow's working hours against the window.
    [(ws, we), (ws + 1440, we + 1440)]
        .iter()
        .any(|&(s, e)| start < e && s < end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(at: &str) -> ScheduleConfig {
        ScheduleConfig {
            nightly_at: at.to_owned(),
            ..ScheduleConfig::default()
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn default_is_two_in_the_morning_london_time_in_summer_and_winter() {
        let s = Schedule::from_config(&ScheduleConfig::default()).unwrap();
        // Winter: London is UTC.
        assert_eq!(
            s.next_after(utc("2025-01-15T10:00:00Z")),
            utc("2025-01-16T02:00:00Z")
        );
        // Summer: London is UTC+1.
        assert_eq!(
            s.next_after(utc("2025-07-15T10:00:00Z")),
            utc("2025-07-16T01:00:00Z")
        );
        assert_eq!(
            s.describe(utc("2025-07-16T01:00:00Z")),
            "Wednesday 16 July 2025 at 02:00 (Europe/London)"
        );
    }

    #[test]
    fn dst_changes_move_the_start_correctly() {
        // 30 March 2025: clocks go 01:00 -> 02:00 GMT->BST; 01:30 does not exist.
        let s = Schedule::from_config(&config("01:30")).unwrap();
        assert_eq!(
            s.next_after(utc("2025-03-29T12:00:00Z")),
            utc("2025-03-30T01:00:00Z"),
            "a start in the gap moves to the first valid minute (02:00 BST)"
        );
        // 26 October 2025: 01:30 happens twice; the first (BST) is taken.
        assert_eq!(
            s.next_after(utc("2025-10-25T12:00:00Z")),
            utc("2025-10-26T00:30:00Z")
        );
        // The day after the change, 02:00 is 02:00 UTC again.
        let two = Schedule::from_config(&ScheduleConfig::default()).unwrap();
        assert_eq!(
            two.next_after(utc("2025-10-26T03:00:00Z")),
            utc("2025-10-27T02:00:00Z")
        );
    }

    #[test]
    fn working_hours_are_refused_unless_allowed() {
        assert!(matches!(
            Schedule::from_config(&config("12:00")),
            Err(ScheduleError::WorkingHours(..))
        ));
        // 05:00 with the default 4-hour window runs into 08:00.
        assert!(Schedule::from_config(&config("05:00")).is_err());
        assert!(Schedule::from_config(&config("17:00")).is_ok());
        assert!(Schedule::from_config(&config("04:00")).is_ok());
        let allowed = ScheduleConfig {
            allow_working_hours: true,
            ..config("12:00")
        };
        assert!(Schedule::from_config(&allowed).is_ok());
        assert_eq!(
            Schedule::from_config(&config("25:00")),
            Err(ScheduleError::BadTime("25:00".into()))
        );
    }

    #[test]
    fn due_once_per_window() {
        let s = Schedule::from_config(&ScheduleConfig::default()).unwrap();
        let start = utc("2025-01-16T02:00:00Z");
        assert!(!s.due(utc("2025-01-16T01:59:00Z"), None));
        assert!(s.due(utc("2025-01-16T02:00:00Z"), None));
        assert!(s.due(
            utc("2025-01-16T05:59:00Z"),
            Some(utc("2025-01-15T02:00:00Z"))
        ));
        assert!(!s.due(utc("2025-01-16T02:05:00Z"), Some(start)));
        assert!(
            !s.due(utc("2025-01-16T06:00:00Z"), None),
            "a missed window waits for the next night"
        );
    }
}
