//! UTC calendar arithmetic for segment names, `EXT-X-PROGRAM-DATE-TIME` and the HTTP `Date`
//! header, without a date crate.
//!
//! The day/civil conversions are Howard Hinnant's `days_from_civil` / `civil_from_days`
//! algorithms (proleptic Gregorian calendar, exact for every `i64` day we can meet).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// A broken-down UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
    /// 0 = Sunday.
    pub weekday: u32,
}

/// Days since 1970-01-01 of a Gregorian date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Breaks milliseconds since the epoch into UTC fields.
pub fn civil_from_ms(ms: i64) -> Civil {
    let days = ms.div_euclid(86_400_000);
    let ms_of_day = ms.rem_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (ms_of_day / 3_600_000) as u32,
        minute: (ms_of_day / 60_000 % 60) as u32,
        second: (ms_of_day / 1000 % 60) as u32,
        millis: (ms_of_day % 1000) as u32,
        weekday: (days + 4).rem_euclid(7) as u32,
    }
}

/// Seconds since the epoch of a UTC date and time, or `None` for out-of-range fields.
pub fn epoch_seconds(
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
) -> Option<i64> {
    if !(1..=12).contains(&month) || day == 0 || day > 31 || hour > 23 || minute > 59 || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // Reject dates like February 30 that days_from_civil would silently roll over.
    let back = civil_from_ms(days * 86_400_000);
    if back.month != month || back.day != day {
        return None;
    }
    Some(days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second))
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Length of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7).
pub const HTTP_DATE_LEN: usize = 29;

/// Formats an RFC 9110 IMF-fixdate.
pub fn http_date(ms: i64) -> [u8; HTTP_DATE_LEN] {
    let c = civil_from_ms(ms);
    let mut out = [b' '; HTTP_DATE_LEN];
    out[..3].copy_from_slice(WEEKDAYS[c.weekday as usize].as_bytes());
    out[3] = b',';
    put2(&mut out[5..7], c.day);
    out[8..11].copy_from_slice(MONTHS[(c.month - 1) as usize].as_bytes());
    put4(&mut out[12..16], c.year);
    put2(&mut out[17..19], c.hour);
    out[19] = b':';
    put2(&mut out[20..22], c.minute);
    out[22] = b':';
    put2(&mut out[23..25], c.second);
    out[26..29].copy_from_slice(b"GMT");
    out
}

/// Writes an ISO 8601 UTC timestamp with milliseconds (`2024-02-03T19:31:36.000Z`), as HLS
/// `EXT-X-PROGRAM-DATE-TIME` wants it.
pub fn write_iso8601(out: &mut Vec<u8>, ms: i64) {
    let c = civil_from_ms(ms);
    let mut b = *b"0000-00-00T00:00:00.000Z";
    put4(&mut b[0..4], c.year);
    put2(&mut b[5..7], c.month);
    put2(&mut b[8..10], c.day);
    put2(&mut b[11..13], c.hour);
    put2(&mut b[14..16], c.minute);
    put2(&mut b[17..19], c.second);
    put3(&mut b[20..23], c.millis);
    out.extend_from_slice(&b);
}

/// Appends `v` in decimal. The hot paths' integers (content lengths, playlist numbers)
/// go through here rather than `core::fmt`, whose machinery costs several times more.
pub fn write_decimal(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    let mut v = v;
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[at..]);
}

/// Appends `v` in decimal with at least `width` digits (leading zeros; at most 20).
pub fn write_zero_padded(out: &mut Vec<u8>, v: u64, width: usize) {
    let digits = v.checked_ilog10().map_or(1, |d| d as usize + 1);
    for _ in digits..width.min(20) {
        out.push(b'0');
    }
    write_decimal(out, v);
}

fn put2(dst: &mut [u8], v: u32) {
    dst[0] = b'0' + (v / 10 % 10) as u8;
    dst[1] = b'0' + (v % 10) as u8;
}

fn put3(dst: &mut [u8], v: u32) {
    dst[0] = b'0' + (v / 100 % 10) as u8;
    put2(&mut dst[1..3], v % 100);
}

fn put4(dst: &mut [u8], v: i64) {
    let v = v.clamp(0, 9999) as u32;
    put2(&mut dst[0..2], v / 100);
    put2(&mut dst[2..4], v % 100);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_dates() {
        // 2024-02-03T19:31:36Z, the spec's example segment.
        let s = epoch_seconds(2024, 2, 3, 19, 31, 36).unwrap();
        assert_eq!(s, 1_706_988_696);
        let c = civil_from_ms(s * 1000 + 250);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis),
            (2024, 2, 3, 19, 31, 36, 250)
        );
        assert_eq!(c.weekday, 6); // a Saturday
    }

    #[test]
    fn civil_agrees_with_days_over_centuries() {
        for days in (-800_000i64..800_000).step_by(997) {
            let c = civil_from_ms(days * 86_400_000);
            assert_eq!(days_from_civil(c.year, c.month, c.day), days);
        }
    }

    #[test]
    fn rejects_impossible_dates() {
        assert!(epoch_seconds(2023, 2, 29, 0, 0, 0).is_none());
        assert!(epoch_seconds(2024, 2, 29, 0, 0, 0).is_some());
        assert!(epoch_seconds(2024, 13, 1, 0, 0, 0).is_none());
        assert!(epoch_seconds(2024, 4, 31, 0, 0, 0).is_none());
    }

    #[test]
    fn formats_http_and_iso_dates() {
        assert_eq!(
            &http_date(784_111_777_000),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
        let mut v = Vec::new();
        write_iso8601(&mut v, 1_706_988_696_007);
        assert_eq!(v, b"2024-02-03T19:31:36.007Z");
    }

    #[test]
    fn decimals_match_core_fmt() {
        for v in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            write_decimal(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
            for width in [0, 1, 2, 5, 20] {
                out.clear();
                write_zero_padded(&mut out, v, width);
                assert_eq!(out, format!("{v:0width$}").as_bytes(), "{v} {width}");
            }
        }
    }
}
