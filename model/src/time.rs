//! The wire's times (RFC 3339, UTC, as the server writes them) as Unix
//! milliseconds, for countdowns in the browser and the desktop app without
//! pulling a date library into the wasm.

/// `2026-12-02T07:00:05.123Z` (fraction optional, `Z` or `+00:00`) → Unix
/// milliseconds. `None` for anything else, offsets other than UTC included.
pub fn unix_ms(rfc3339: &str) -> Option<i64> {
    let b = rfc3339.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> { rfc3339.get(from..to)?.parse::<i64>().ok() };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &rfc3339[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = padded.parse::<i64>().ok()?;
        rest = &fraction[digits..];
    }
    if !matches!(rest, "Z" | "z" | "+00:00" | "-00:00") {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `3725000` → `1:02:05`; under an hour `02:05`. Negative is `00:00`.
pub fn countdown(ms: i64) -> String {
    let total = (ms.max(0) + 999) / 1000;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_server_writes() {
        assert_eq!(unix_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(unix_ms("2000-03-01T00:00:00.000Z"), Some(951_868_800_000));
        assert_eq!(unix_ms("2026-12-02T07:00:05.123456Z"), Some(1_796_194_805_123));
        assert_eq!(unix_ms("2024-02-29T23:59:59+00:00"), Some(1_709_251_199_000));
    }

    #[test]
    fn refuses_what_it_cannot_read_exactly() {
        for bad in ["", "2026-12-02", "2026-12-02T07:00:05", "2026-12-02T07:00:05+01:00", "2026-13-02T07:00:05Z", "2026-12-02T07:00:05.Z", "soon"] {
            assert_eq!(unix_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn counts_down_in_whole_seconds() {
        assert_eq!(countdown(3_725_000), "1:02:05");
        assert_eq!(countdown(125_000), "02:05");
        assert_eq!(countdown(1), "00:01");
        assert_eq!(countdown(-5), "00:00");
    }
}
