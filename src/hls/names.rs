//! Segment names: `YYYY/MM/DD/HH/MM/SS-DURMS.ts` (or `.m4s` for the fMP4 fragment of the
//! same segment), the UTC start second then the duration in milliseconds (five digits at
//! least), as the reference server names them.

use crate::stream::segment::Segment;
use crate::utc::{civil_from_ms, epoch_seconds, write_decimal, write_zero_padded};

/// The container a segment URL asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    Ts,
    Fmp4,
}

impl Container {
    pub fn extension(self) -> &'static str {
        match self {
            Container::Ts => ".ts",
            Container::Fmp4 => ".m4s",
        }
    }
}

/// Appends the segment's path (relative to `tracks-v1a1/`).
pub fn write_segment_path(out: &mut Vec<u8>, segment: &Segment, container: Container) {
    let c = civil_from_ms(segment.start_second() * 1000);
    write_zero_padded(out, c.year.max(0) as u64, 4);
    for (separator, field) in [
        (b'/', c.month),
        (b'/', c.day),
        (b'/', c.hour),
        (b'/', c.minute),
        (b'/', c.second),
    ] {
        out.push(separator);
        write_zero_padded(out, u64::from(field), 2);
    }
    out.push(b'-');
    write_zero_padded(out, u64::from(segment.duration_ms), 5);
    out.extend_from_slice(container.extension().as_bytes());
}

/// LL-HLS resources sit under this directory at the stream root, named by media sequence
/// number: `ll/init.mp4`, segments `ll/MSN.m4s`, parts `ll/MSN.PART.m4s`.
pub const LL_DIR: &str = "ll/";

/// What an LL-HLS file name under [`LL_DIR`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LlName {
    Segment { sequence: u64 },
    Part { sequence: u64, part: u32 },
}

/// Appends `MSN.m4s`.
pub fn write_ll_segment_path(out: &mut Vec<u8>, sequence: u64) {
    write_decimal(out, sequence);
    out.extend_from_slice(b".m4s");
}

/// Appends `MSN.PART.m4s`.
pub fn write_ll_part_path(out: &mut Vec<u8>, sequence: u64, part: u32) {
    write_decimal(out, sequence);
    out.push(b'.');
    write_decimal(out, u64::from(part));
    out.extend_from_slice(b".m4s");
}

/// Parses `MSN.m4s` or `MSN.PART.m4s` (plain decimal digits, no sign, no leading `+`).
pub fn parse_ll_name(file: &str) -> Option<LlName> {
    let stem = file.strip_suffix(".m4s")?;
    fn digits(t: &str, max: usize) -> Option<&str> {
        (!t.is_empty() && t.len() <= max && t.bytes().all(|b| b.is_ascii_digit())).then_some(t)
    }
    match stem.split_once('.') {
        None => Some(LlName::Segment {
            sequence: digits(stem, 19)?.parse().ok()?,
        }),
        Some((msn, part)) => Some(LlName::Part {
            sequence: digits(msn, 19)?.parse().ok()?,
            part: digits(part, 9)?.parse().ok()?,
        }),
    }
}

/// Parses the six path segments after `tracks-v1a1/` back into (start second, duration ms,
/// container). Anything that is not exactly that shape is `None` (answered 404).
pub fn parse_segment_path(parts: [&str; 6]) -> Option<(i64, u32, Container)> {
    let [y, mo, d, h, mi, last] = parts;
    let (s, rest) = last.split_once('-')?;
    let (dur, container) = match rest.strip_suffix(".ts") {
        Some(dur) => (dur, Container::Ts),
        None => (rest.strip_suffix(".m4s")?, Container::Fmp4),
    };
    let num = |t: &str, min: usize, max: usize| -> Option<u32> {
        if t.len() < min || t.len() > max || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let secs = epoch_seconds(
        i64::from(num(y, 4, 4)?),
        num(mo, 2, 2)?,
        num(d, 2, 2)?,
        num(h, 2, 2)?,
        num(mi, 2, 2)?,
        num(s, 2, 2)?,
    )?;
    Some((secs, num(dur, 5, 9)?, container))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn name_round_trips() {
        let start = epoch_seconds(2024, 2, 3, 19, 31, 36).unwrap();
        let seg = Segment {
            sequence: 0,
            start_utc_ms: start * 1000 + 480,
            duration_ms: 5000,
            ts: Bytes::new(),
            fmp4: None,
            parts: Default::default(),
            dash: Default::default(),
            mss: Default::default(),
            start_dts: 0,
            end_dts: 180_000,
        };
        let mut out = Vec::new();
        write_segment_path(&mut out, &seg, Container::Ts);
        assert_eq!(out, b"2024/02/03/19/31/36-05000.ts");
        assert_eq!(
            parse_segment_path(["2024", "02", "03", "19", "31", "36-05000.ts"]),
            Some((start, 5000, Container::Ts))
        );
        out.clear();
        write_segment_path(&mut out, &seg, Container::Fmp4);
        assert_eq!(out, b"2024/02/03/19/31/36-05000.m4s");
        assert_eq!(
            parse_segment_path(["2024", "02", "03", "19", "31", "36-05000.m4s"]),
            Some((start, 5000, Container::Fmp4))
        );
    }

    #[test]
    fn ll_names_round_trip() {
        let mut out = Vec::new();
        write_ll_segment_path(&mut out, 17);
        out.push(b' ');
        write_ll_part_path(&mut out, 17, 3);
        assert_eq!(out, b"17.m4s 17.3.m4s");
        assert_eq!(
            parse_ll_name("17.m4s"),
            Some(LlName::Segment { sequence: 17 })
        );
        assert_eq!(
            parse_ll_name("17.3.m4s"),
            Some(LlName::Part {
                sequence: 17,
                part: 3
            })
        );
        for bad in [
            ".m4s",
            "1..m4s",
            "+1.m4s",
            "1.-2.m4s",
            "1.2.3.m4s",
            "a.m4s",
            "1.m4",
            "99999999999999999999.m4s",
            "1.9999999999.m4s",
        ] {
            assert_eq!(parse_ll_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn rejects_other_shapes() {
        for parts in [
            ["2024", "2", "03", "19", "31", "36-05000.ts"],
            ["2024", "02", "30", "19", "31", "36-05000.ts"],
            ["2024", "02", "03", "19", "31", "36-0500.ts"],
            ["2024", "02", "03", "19", "31", "36-05000.mp4"],
            ["2024", "02", "03", "19", "31", "36+05000.ts"],
            ["2024", "02", "03", "24", "31", "36-05000.ts"],
            ["+024", "02", "03", "19", "31", "36-05000.ts"],
        ] {
            assert_eq!(parse_segment_path(parts), None, "{parts:?}");
        }
    }
}
