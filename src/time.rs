//! Calendar arithmetic and the time formats we read and write.
//!
//! Log lines carry Go's `Nov  5 04:31:00.000`; STS, IMDS, the container
//! endpoint, `credential_process` and the SSO token cache give expiry times
//! as ISO-8601 / RFC 3339 text; SigV4 wants `20150830T123600Z`; a
//! `Retry-After` header may name an HTTP-date. The `time` crate is built without its parsing and
//! formatting features (they cost size and build time), and these few
//! conversions are short, so they live here, tested against known dates.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An ISO-8601 date-time as AWS writes it: `2024-05-01T12:30:00Z`, with
/// optional fractional seconds, and `Z`, `UTC`, `+hh:mm`, `+hhmm` or `+hh`
/// as the zone (`T` or a space between date and time). `None` when the text
/// is anything else, or before 1970.
pub fn parse_iso8601(text: &str) -> Option<SystemTime> {
    let s = text.trim().as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(range)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let year = num(0..4)?;
    if s.get(4) != Some(&b'-') || s.get(7) != Some(&b'-') {
        return None;
    }
    let month = num(5..7)?;
    let day = num(8..10)?;
    if !matches!(s.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let hour = num(11..13)?;
    if s.get(13) != Some(&b':') || s.get(16) != Some(&b':') {
        return None;
    }
    let minute = num(14..16)?;
    let second = num(17..19)?;
    let mut i = 19;
    let mut nanos: u64 = 0;
    if s.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 9 {
                nanos = nanos * 10 + u64::from(s[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start).min(9)..9 {
            nanos *= 10;
        }
    }
    let rest = std::str::from_utf8(&s[i..]).ok()?;
    let offset_secs: i64 = match rest {
        "Z" | "z" | "UTC" | "" => 0,
        _ => {
            let (sign, digits) = match rest.as_bytes().first()? {
                b'+' => (1, &rest[1..]),
                b'-' => (-1, &rest[1..]),
                _ => return None,
            };
            let digits: String = digits.chars().filter(|c| *c != ':').collect();
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let (h, m) = match digits.len() {
                2 => (digits.parse::<i64>().ok()?, 0),
                4 => (
                    digits[..2].parse::<i64>().ok()?,
                    digits[2..].parse::<i64>().ok()?,
                ),
                _ => return None,
            };
            sign * (h * 3600 + m * 60)
        }
    };
    let secs = seconds_since_epoch(year, month, day, hour, minute, second)? - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An HTTP-date in RFC 9110's preferred form, IMF-fixdate, as a
/// `Retry-After` header may carry it: `Sun, 06 Nov 1994 08:49:37 GMT`.
/// `None` for anything else (the obsolete RFC 850 and asctime forms, which
/// servers must no longer send, included), or before 1970.
pub fn parse_http_date(text: &str) -> Option<SystemTime> {
    let (weekday, rest) = text.trim().split_once(", ")?;
    if !["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&weekday) {
        return None;
    }
    let fields: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, clock, "GMT"] = fields[..] else {
        return None;
    };
    let digits = |text: &str, len: usize| -> Option<i64> {
        let all_digits = text.len() == len && text.bytes().all(|b| b.is_ascii_digit());
        all_digits.then(|| text.parse().ok()).flatten()
    };
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let clock: Vec<&str> = clock.split(':').collect();
    let [hour, minute, second] = clock[..] else {
        return None;
    };
    let secs = seconds_since_epoch(
        digits(year, 4)?,
        month,
        digits(day, 2)?,
        digits(hour, 2)?,
        digits(minute, 2)?,
        digits(second, 2)?,
    )?;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Seconds from 1970 to a UTC date and time (negative before), or `None`
/// when a field is out of range (a leap second, 60, is taken).
fn seconds_since_epoch(
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
) -> Option<i64> {
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month as u32, day as u32);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Milliseconds since 1970, as SSO's GetRoleCredentials gives `expiration`.
pub fn from_unix_millis(millis: i64) -> Option<SystemTime> {
    let millis = u64::try_from(millis).ok()?;
    Some(UNIX_EPOCH + Duration::from_millis(millis))
}

/// RFC 3339 in UTC, whole seconds: `2024-05-01T12:30:00Z` (the SSO cache's form).
pub fn format_rfc3339(at: SystemTime) -> String {
    let (date, secs) = split(at);
    let (y, m, d) = date;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// SigV4's timestamp and date stamp: (`20150830T123600Z`, `20150830`).
pub fn amz_date(at: SystemTime) -> (String, String) {
    let ((y, m, d), secs) = split(at);
    let day = format!("{y:04}{m:02}{d:02}");
    let stamp = format!(
        "{day}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    (stamp, day)
}

/// (civil date, seconds into the day) of a time, UTC.
fn split(at: SystemTime) -> ((i64, u32, u32), u64) {
    let secs = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let days = (secs / 86_400) as i64;
    (civil_from_days(days), secs % 86_400)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm; the inverse of `civil_from_days`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic
/// Gregorian (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn parses_the_forms_aws_writes() {
        // 2015-08-30T12:36:00Z = 1440938160
        assert_eq!(
            parse_iso8601("2015-08-30T12:36:00Z"),
            Some(at(1_440_938_160))
        );
        assert_eq!(
            parse_iso8601(" 2015-08-30T12:36:00UTC "),
            Some(at(1_440_938_160))
        );
        assert_eq!(
            parse_iso8601("2015-08-30 12:36:00z"),
            Some(at(1_440_938_160))
        );
        assert_eq!(
            parse_iso8601("2015-08-30T14:36:00+02:00"),
            Some(at(1_440_938_160))
        );
        assert_eq!(
            parse_iso8601("2015-08-30T10:36:00-0200"),
            Some(at(1_440_938_160))
        );
        assert_eq!(
            parse_iso8601("2015-08-30T13:36:00+01"),
            Some(at(1_440_938_160))
        );
        assert_eq!(
            parse_iso8601("2015-08-30T12:36:00.250Z"),
            Some(at(1_440_938_160) + Duration::from_millis(250))
        );
        assert_eq!(
            parse_iso8601("2015-08-30T12:36:00.123456789123Z"),
            Some(at(1_440_938_160) + Duration::from_nanos(123_456_789))
        );
        // Leap day and the epoch.
        assert_eq!(
            parse_iso8601("2024-02-29T23:59:59Z"),
            Some(at(1_709_251_199))
        );
        assert_eq!(parse_iso8601("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
    }

    #[test]
    fn rejects_what_is_not_a_date_time() {
        for bad in [
            "",
            "soon",
            "2015-08-30",
            "2015-08-30T12:36Z",
            "2015-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2015-08-30T24:00:00Z",
            "2015-08-30T12:36:00.Z",
            "2015-08-30T12:36:00 PST",
            "1969-12-31T23:59:59Z",
            "１９７０-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_imf_fixdate_and_nothing_else() {
        // RFC 9110's own example, and 2015-10-21T07:28:00Z = 1445412480.
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(at(784_111_777))
        );
        assert_eq!(
            parse_http_date(" Wed, 21 Oct 2015 07:28:00 GMT "),
            Some(at(1_445_412_480))
        );
        assert_eq!(
            parse_http_date("Thu, 29 Feb 2024 23:59:59 GMT"),
            Some(at(1_709_251_199))
        );
        for bad in [
            "",
            "120",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 nov 1994 08:49:37 GMT",
            "Fun, 06 Nov 1994 08:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1994 08:49:37:00 GMT",
            "Wed, 31 Dec 1969 23:59:59 GMT",
            "Sun, 06 Nov +994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_round_trip() {
        let t = at(1_440_938_160);
        assert_eq!(format_rfc3339(t), "2015-08-30T12:36:00Z");
        assert_eq!(parse_iso8601(&format_rfc3339(t)), Some(t));
        assert_eq!(
            amz_date(t),
            ("20150830T123600Z".to_string(), "20150830".to_string())
        );
        assert_eq!(from_unix_millis(1_440_938_160_000), Some(t));
        assert_eq!(from_unix_millis(-1), None);
        for days in [-1, 0, 59, 365, 11_016, 19_782, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
