//! Go duration strings (`1.2s`, `300ms`, `250us`, `1h30m`), as Jaeger's
//! `minDuration` / `maxDuration` use them.

/// Parses a non-negative Go duration into nanoseconds.
pub fn parse_go_duration(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s == "0" {
        return Ok(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!(
                "{text:?} is not a duration (expected e.g. 1.5s, 300ms, 250us)"
            ));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("{text:?} has an invalid number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("{text:?} is missing a unit (ns, us, ms, s, m, h)")),
            other => return Err(format!("{text:?} has an unknown unit {other:?}")),
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(total.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        for (text, ns) in [
            ("0", 0),
            ("1ns", 1),
            ("250us", 250_000),
            ("250µs", 250_000),
            ("300ms", 300_000_000),
            ("1.2s", 1_200_000_000),
            ("1h30m", 5_400_000_000_000),
            ("2m0.5s", 120_500_000_000),
        ] {
            assert_eq!(parse_go_duration(text), Ok(ns), "{text}");
        }
        for bad in ["", "ms", "1", "-1s", "1x", "1.2.3s", "fast"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }
}
