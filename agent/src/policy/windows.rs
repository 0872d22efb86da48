//! Maintenance windows: when, in the device's local time, each phase of an
//! update (download, activation, reboot) may start (docs/policy.md).
//!
//! One window is `DAYS HH:MM-HH:MM` or `HH:MM-HH:MM` (every day). `DAYS`
//! is `*` or a comma list of `Mon`…`Sun` and ranges `Mon-Fri` (a range may
//! wrap: `Sat-Mon`). The end may be `24:00`; an end before the start
//! crosses midnight and ends the next day (`Fri 22:00-02:00` is Friday
//! 22:00 to Saturday 02:00). The days name the day the window starts.
//!
//! Local time is UTC plus a fixed `utc_offset` (`+01:00`): the agent does
//! not read the tz database, so a daylight-saving change moves the windows
//! by an hour until the offset is changed (documented limitation).

use std::fmt;

use crate::bundle::time::format_rfc3339_utc;

const DAY: i64 = 1440;
const WEEK: i64 = 7 * DAY;
const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// One window: the days it starts on and its start and end minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Bit 0 = Monday … bit 6 = Sunday.
    days: u8,
    /// Minute of the day it opens, 0..1440.
    start: i64,
    /// Minute it closes, 1..=1440; at or before `start` = the next day.
    end: i64,
}

impl Window {
    /// Parses one window; the error says what is wrong (one line).
    pub fn parse(text: &str) -> Result<Window, String> {
        let t = text.trim();
        let (days, times) = match t.split_once(' ') {
            Some((d, r)) => (parse_days(d.trim())?, r.trim()),
            None => (0x7f, t),
        };
        let bad_times = || format!("{t:?}: expected HH:MM-HH:MM after the days");
        let (s, e) = times.split_once('-').ok_or_else(bad_times)?;
        let start = parse_minute(s).ok_or_else(bad_times)?;
        let end = parse_minute(e).ok_or_else(bad_times)?;
        if start == DAY {
            return Err(format!("{t:?}: a window cannot start at 24:00"));
        }
        if start == end {
            return Err(format!("{t:?}: the window is empty (start = end)"));
        }
        Ok(Window { days, start, end })
    }

    /// Minutes the window lasts.
    fn length(&self) -> i64 {
        if self.end > self.start {
            self.end - self.start
        } else {
            self.end + DAY - self.start
        }
    }

    /// The opening minutes (of the week) of this window.
    fn openings(&self) -> impl Iterator<Item = i64> + '_ {
        (0..7)
            .filter(|d| self.days & (1 << d) != 0)
            .map(|d| d * DAY + self.start)
    }
}

/// `*`, `Mon`, `Mon-Fri`, `Sat,Sun`, `Mon-Wed,Fri`.
fn parse_days(text: &str) -> Result<u8, String> {
    if text == "*" {
        return Ok(0x7f);
    }
    let day = |n: &str| {
        DAY_NAMES.iter().position(|d| *d == n).ok_or_else(|| {
            format!(
                "{text:?}: unknown day {n:?} (Mon Tue Wed Thu Fri Sat Sun, ranges Mon-Fri, or *)"
            )
        })
    };
    let mut mask = 0u8;
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    mask |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => mask |= 1 << day(part)?,
        }
    }
    Ok(mask)
}

/// `HH:MM` (two digits each), 00:00..=24:00, as minutes.
fn parse_minute(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 5
        || b[2] != b':'
        || !text[..2]
            .bytes()
            .chain(text[3..].bytes())
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let h: i64 = text[..2].parse().ok()?;
    let m: i64 = text[3..].parse().ok()?;
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

/// `+HH:MM` / `-HH:MM` (at most ±14:00) as minutes east of UTC.
pub fn parse_utc_offset(text: &str) -> Result<i32, String> {
    let bad = || format!("{text:?}: expected +HH:MM or -HH:MM (at most 14:00)");
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => return Err(bad()),
    };
    let m = parse_minute(rest).ok_or_else(bad)?;
    if m > 14 * 60 {
        return Err(bad());
    }
    Ok(sign * m as i32)
}

/// The windows of one phase; empty = always open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Windows(pub Vec<Window>);

/// Why a phase may not start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// When the next window opens (seconds since the epoch, UTC).
    pub until: i64,
    /// The configured offset, for printing `until` in local time.
    pub utc_offset_min: i32,
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let local = format_rfc3339_utc(self.until + i64::from(self.utc_offset_min) * 60);
        let o = self.utc_offset_min;
        let sign = if o < 0 { '-' } else { '+' };
        write!(
            f,
            "window closed until {}{sign}{:02}:{:02}",
            &local[..16],
            o.abs() / 60,
            o.abs() % 60
        )
    }
}

impl Windows {
    /// Parses a config array; `what` names the key in errors.
    pub fn parse(items: &[String]) -> Result<Windows, String> {
        if items.is_empty() {
            return Err("an empty list would never open (leave the key out for \"always\")".into());
        }
        items
            .iter()
            .map(|i| Window::parse(i))
            .collect::<Result<_, _>>()
            .map(Windows)
    }

    /// `Ok` when a window is open at `now` (UTC seconds), else when the
    /// next one opens. No windows = always open.
    pub fn check(&self, now: i64, utc_offset_min: i32) -> Result<(), Closed> {
        if self.0.is_empty() {
            return Ok(());
        }
        let local = now + i64::from(utc_offset_min) * 60;
        let minute = local.div_euclid(60);
        // 1970-01-01 was a Thursday (index 3 from Monday).
        let t = (minute.div_euclid(DAY) + 3).rem_euclid(7) * DAY + minute.rem_euclid(DAY);
        let mut next = WEEK;
        for w in &self.0 {
            for open in w.openings() {
                // Minutes since this opening (mod a week): open while below its length.
                if (t - open).rem_euclid(WEEK) < w.length() {
                    return Ok(());
                }
                next = next.min((open - t).rem_euclid(WEEK));
            }
        }
        Err(Closed {
            until: (minute + next) * 60 - i64::from(utc_offset_min) * 60,
            utc_offset_min,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::time::parse_rfc3339_utc;

    fn w(items: &[&str]) -> Windows {
        Windows::parse(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn at(s: &str) -> i64 {
        parse_rfc3339_utc(s).unwrap()
    }

    /// `Ok` or the local time it opens, as `Closed` prints it.
    fn check(ws: &Windows, now: &str, off: i32) -> Result<(), String> {
        ws.check(at(now), off).map_err(|c| c.to_string())
    }

    // 2026-12-07 is a Monday (`date -d 2026-12-07 +%a`).
    #[test]
    fn edges_are_start_inclusive_end_exclusive() {
        let ws = w(&["Mon-Fri 01:00-05:00"]);
        assert_eq!(
            check(&ws, "2026-12-07T00:59:59Z", 0),
            Err("window closed until 2026-12-07T01:00+00:00".into())
        );
        assert_eq!(check(&ws, "2026-12-07T01:00:00Z", 0), Ok(()));
        assert_eq!(check(&ws, "2026-12-07T04:59:59Z", 0), Ok(()));
        assert_eq!(
            check(&ws, "2026-12-07T05:00:00Z", 0),
            Err("window closed until 2026-12-08T01:00+00:00".into())
        );
        // Friday after the window: the next is Monday.
        assert_eq!(
            check(&ws, "2026-12-11T06:00:00Z", 0),
            Err("window closed until 2026-12-14T01:00+00:00".into())
        );
        // Saturday and Sunday are closed all day.
        assert!(check(&ws, "2026-12-12T02:00:00Z", 0).is_err());
        assert!(check(&ws, "2026-12-13T02:00:00Z", 0).is_err());
    }

    #[test]
    fn crossing_midnight_and_the_week_end() {
        let ws = w(&["Sun 22:00-02:00"]);
        // Sunday 23:30 and Monday 01:59 are inside; Monday 02:00 is not.
        assert_eq!(check(&ws, "2026-12-13T23:30:00Z", 0), Ok(()));
        assert_eq!(check(&ws, "2026-12-14T01:59:00Z", 0), Ok(()));
        assert_eq!(
            check(&ws, "2026-12-14T02:00:00Z", 0),
            Err("window closed until 2026-12-20T22:00+00:00".into())
        );
        // Monday 23:00 is not Sunday's window.
        assert!(check(&ws, "2026-12-14T23:00:00Z", 0).is_err());
        let day = w(&["Sat,Sun 00:00-24:00"]);
        assert_eq!(check(&day, "2026-12-12T00:00:00Z", 0), Ok(()));
        assert_eq!(check(&day, "2026-12-13T23:59:59Z", 0), Ok(()));
        assert_eq!(
            check(&day, "2026-12-14T00:00:00Z", 0),
            Err("window closed until 2026-12-19T00:00+00:00".into())
        );
    }

    #[test]
    fn several_windows_and_day_lists() {
        let ws = w(&["Mon-Fri 01:00-05:00", "Sat,Sun 00:00-24:00", "12:00-12:30"]);
        assert_eq!(check(&ws, "2026-12-09T12:10:00Z", 0), Ok(())); // Wednesday noon
        assert_eq!(
            check(&ws, "2026-12-09T12:30:00Z", 0),
            Err("window closed until 2026-12-10T01:00+00:00".into())
        );
        assert_eq!(check(&ws, "2026-12-12T18:00:00Z", 0), Ok(()));
        let wrap = w(&["Sat-Mon 03:00-04:00"]);
        assert!(check(&wrap, "2026-12-07T03:30:00Z", 0).is_ok()); // Monday
        assert!(check(&wrap, "2026-12-08T03:30:00Z", 0).is_err()); // Tuesday
    }

    #[test]
    fn local_time_is_utc_plus_the_offset() {
        let ws = w(&["Mon 01:00-05:00"]);
        // 01:00 at +01:00 is Monday 00:00 UTC.
        assert_eq!(check(&ws, "2026-12-07T00:00:00Z", 60), Ok(()));
        assert_eq!(
            check(&ws, "2026-12-06T23:59:00Z", 60),
            Err("window closed until 2026-12-07T01:00+01:00".into())
        );
        assert_eq!(
            ws.check(at("2026-12-06T23:59:00Z"), 60).unwrap_err().until,
            at("2026-12-07T00:00:00Z")
        );
        // -05:00: Monday 01:00 local is Monday 06:00 UTC; Monday 05:30 UTC
        // is Monday 00:30 local, before the window.
        assert_eq!(
            check(&ws, "2026-12-07T05:30:00Z", -300),
            Err("window closed until 2026-12-07T01:00-05:00".into())
        );
        assert_eq!(check(&ws, "2026-12-07T06:00:00Z", -300), Ok(()));
    }

    #[test]
    fn no_windows_is_always_open() {
        assert_eq!(
            Windows::default().check(at("2026-12-07T00:00:00Z"), 0),
            Ok(())
        );
    }

    #[test]
    fn bad_windows_are_one_clear_line() {
        for (bad, needle) in [
            ("Mon-Fri 1:00-05:00", "HH:MM-HH:MM"),
            ("Mon-Fri 01:00", "HH:MM-HH:MM"),
            ("Monday 01:00-05:00", "unknown day \"Monday\""),
            ("Mon-Fri 01:00-01:00", "empty"),
            ("Mon 24:00-01:00", "24:00"),
            ("Mon 23:60-24:00", "HH:MM-HH:MM"),
            ("Mon 01:00-24:01", "HH:MM-HH:MM"),
            ("mon 01:00-02:00", "unknown day"),
            ("", "HH:MM-HH:MM"),
        ] {
            let e = Window::parse(bad).unwrap_err();
            assert!(e.contains(needle) && !e.contains('\n'), "{bad}: {e}");
        }
        assert!(Windows::parse(&[]).unwrap_err().contains("empty list"));
        assert_eq!(parse_utc_offset("+01:00"), Ok(60));
        assert_eq!(parse_utc_offset("-09:30"), Ok(-570));
        assert_eq!(parse_utc_offset("+00:00"), Ok(0));
        for bad in ["01:00", "+1:00", "+15:00", "UTC+1", ""] {
            assert!(parse_utc_offset(bad).is_err(), "{bad}");
        }
    }
}
