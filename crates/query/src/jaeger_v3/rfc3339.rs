//! RFC 3339 timestamps (`2026-12-07T17:41:48.123456789Z`, `…+02:00`), as
//! Jaeger's api_v3 reads `startTime`, `endTime` and `query.startTimeMin/Max`
//! (Go's `time.RFC3339Nano` layout). Pure; no calendar crate needed.

/// Nanoseconds since the Unix epoch of `text`, refused before the epoch
/// or beyond `u64` nanoseconds (year 2554).
pub fn parse_nanos(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not an RFC 3339 time (e.g. 2026-01-02T15:04:05Z)");
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    if b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let num = |from: usize, to: usize| -> Result<i64, String> {
        let s = text.get(from..to).ok_or_else(bad)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<i64>().map_err(|_| bad())
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(bad());
    }
    let mut rest = text.get(19..).ok_or_else(bad)?;
    let mut frac_nanos: i64 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return Err(bad());
        }
        let padded = format!("{:0<9}", &frac[..digits]);
        frac_nanos = padded.parse().map_err(|_| bad())?;
        rest = &frac[digits..];
    }
    let offset_secs: i64 = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && rest.as_bytes()[3] == b':'
            && rest
                .bytes()
                .enumerate()
                .all(|(i, c)| i == 0 || i == 3 || c.is_ascii_digit()) =>
        {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(bad()),
            };
            let h = rest
                .get(1..3)
                .ok_or_else(bad)?
                .parse::<i64>()
                .map_err(|_| bad())?;
            let m = rest
                .get(4..6)
                .ok_or_else(bad)?
                .parse::<i64>()
                .map_err(|_| bad())?;
            if h > 23 || m > 59 {
                return Err(bad());
            }
            sign * (h * 3_600 + m * 60)
        }
        _ => return Err(bad()),
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second
        - offset_secs;
    if secs < 0 {
        return Err(format!("{text:?} is before 1970"));
    }
    (secs as u64)
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(frac_nanos as u64))
        .ok_or_else(|| format!("{text:?} is out of range"))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        for (text, nanos) in [
            ("1970-01-01T00:00:00Z", 0),
            ("1970-01-01T00:00:01.5Z", 1_500_000_000),
            ("2001-09-09T01:46:40Z", 1_000_000_000_000_000_000),
            ("2001-09-09T03:46:40+02:00", 1_000_000_000_000_000_000),
            (
                "2001-09-08T23:46:40.000000001-02:00",
                1_000_000_000_000_000_001,
            ),
            // What Jaeger UI sends: `new Date(…).toISOString()`.
            ("2024-02-29T12:00:00.123Z", 1_709_208_000_123_000_000),
        ] {
            assert_eq!(parse_nanos(text), Ok(nanos), "{text}");
        }
        for bad in [
            "",
            "1700000000",
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00.1234567890Z",
            "2024-01-01T00:00:00+2:00",
            "1969-12-31T23:59:59Z",
            "9999-12-31T23:59:59Z",
            "２024-01-01T00:00:00Z",
        ] {
            assert!(parse_nanos(bad).is_err(), "{bad}");
        }
    }
}
