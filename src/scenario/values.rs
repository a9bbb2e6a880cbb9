//! The small textual value syntaxes of scenario files and the CLI: durations (`"250ms"`),
//! seeds (`42`, `0x2a`), seed ranges (`"1..200"`) and duration intervals (`"5s..15s"`).
//!
//! Owns: parsing them strictly (no whitespace, no signs, no fractions) and printing durations
//! back in the same syntax, so that a file written by `ksim shrink` parses to the same values.
//! Errors are plain sentences for users: the CLI prints them as they are, and the scenario
//! parser wraps them with a file position.

use std::time::Duration;

/// What a duration looks like, quoted in every duration error.
const DURATION_FORMS: &str = r#"a duration like "250ms", "10s" or "2m""#;
/// What a seed looks like, quoted in every seed error.
const SEED_FORMS: &str = "a seed: a decimal or 0x-hex integer up to 18446744073709551615";
/// What a seed range looks like, quoted in every seed-range error.
const SEED_RANGE_FORMS: &str = r#"seeds like "1..100", "0x10..0x1f" or "7""#;

/// Parses a non-negative whole number of `ms`, `s`, `m` or `h`: `"250ms"`, `"10s"`, `"2m"`,
/// `"1h"`, `"0s"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = || format!("expected {DURATION_FORMS}, found {text:?}");
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(expected)?;
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(expected());
    }
    let too_large = || format!("duration {text:?} is too large");
    let amount: u64 = digits.parse().map_err(|_| too_large())?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(expected()),
    };
    let millis = amount.checked_mul(millis_per_unit).ok_or_else(too_large)?;
    Ok(Duration::from_millis(millis))
}

/// Prints a duration in the syntax [`parse_duration`] reads, with the largest unit that
/// divides it exactly (`90s` → `"90s"`, `120s` → `"2m"`). Sub-millisecond parts are dropped:
/// scenario durations are whole milliseconds.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_string();
    }
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if millis % size == 0 {
            return format!("{}{unit}", millis / size);
        }
    }
    format!("{millis}ms")
}

/// Parses one seed: a decimal or `0x`-hex `u64` (`42`, `0x2a`).
pub fn parse_seed(text: &str) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u64::from_str_radix(hex, 16).ok()
        }
        Some(_) => None,
        None if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
        None => None,
    };
    parsed.ok_or_else(|| format!("expected {SEED_FORMS}, found {text:?}"))
}

/// A range of seeds, inclusive at both ends: `"1..200"` is 200 seeds, `"7"` is one.
/// Never empty: `first <= last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedRange {
    pub first: u64,
    pub last: u64,
}

impl SeedRange {
    /// Parses `"A..B"` (inclusive) or a single seed `"A"`; each seed decimal or `0x`-hex.
    pub fn parse(text: &str) -> Result<SeedRange, String> {
        let (first, last) = text.split_once("..").unwrap_or((text, text));
        let seed = |part: &str| {
            parse_seed(part).map_err(|_| format!("expected {SEED_RANGE_FORMS}, found {text:?}"))
        };
        let (first, last) = (seed(first)?, seed(last)?);
        if first > last {
            return Err(format!(
                "seed range {text:?} is empty: its first seed is greater than its last"
            ));
        }
        Ok(SeedRange { first, last })
    }

    /// How many seeds the range holds (saturating at `u64::MAX` for the full range).
    pub fn len(&self) -> u64 {
        (self.last - self.first).saturating_add(1)
    }

    /// Always false: a range holds at least one seed. (Present because `len` is.)
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The seeds in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u64> {
        self.first..=self.last
    }
}

impl Default for SeedRange {
    /// The contract's default sweep range, `1..100`.
    fn default() -> Self {
        SeedRange {
            first: 1,
            last: 100,
        }
    }
}

impl std::fmt::Display for SeedRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.first, self.last)
    }
}

/// Parses a duration interval `"5s..15s"` (inclusive, `0 < min <= max`), as used by
/// `[nemesis] every`.
pub fn parse_interval(text: &str) -> Result<(Duration, Duration), String> {
    let expected =
        || format!(r#"expected an interval of durations like "5s..15s", found {text:?}"#);
    let (min, max) = text.split_once("..").ok_or_else(expected)?;
    let (min, max) = (parse_duration(min)?, parse_duration(max)?);
    if min.is_zero() {
        return Err(format!("interval {text:?} must start above 0s"));
    }
    if min > max {
        return Err(format!(
            "interval {text:?} is empty: its lower bound is greater than its upper bound"
        ));
    }
    Ok((min, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_whole_number_and_one_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("007s"), Ok(Duration::from_secs(7)));
    }

    #[test]
    fn durations_reject_everything_else_saying_what_is_expected() {
        for bad in [
            "", "10", "s", "ms", "-1s", "+1s", "1.5s", "10 s", " 10s", "10s ", "10sec", "10S",
            "1d", "1m1s", "1e3ms", "١s",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert_eq!(
                err,
                format!(r#"expected a duration like "250ms", "10s" or "2m", found {bad:?}"#)
            );
        }
    }

    #[test]
    fn durations_that_overflow_are_too_large_not_wrapped() {
        assert!(parse_duration("99999999999999999999s")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_duration("18446744073709551615h")
            .unwrap_err()
            .contains("too large"));
        assert_eq!(
            parse_duration("18446744073709551615ms"),
            Ok(Duration::from_millis(u64::MAX))
        );
    }

    #[test]
    fn formatted_durations_parse_back_to_themselves() {
        for (millis, text) in [
            (0, "0s"),
            (1, "1ms"),
            (1500, "1500ms"),
            (10_000, "10s"),
            (90_000, "90s"),
            (120_000, "2m"),
            (7_200_000, "2h"),
        ] {
            let duration = Duration::from_millis(millis);
            assert_eq!(format_duration(duration), text);
            assert_eq!(parse_duration(text), Ok(duration));
        }
    }

    #[test]
    fn seeds_are_decimal_or_hex_u64() {
        assert_eq!(parse_seed("0"), Ok(0));
        assert_eq!(parse_seed("42"), Ok(42));
        assert_eq!(parse_seed("0x2a"), Ok(42));
        assert_eq!(parse_seed("0X2A"), Ok(42));
        assert_eq!(parse_seed("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_seed("0xffffffffffffffff"), Ok(u64::MAX));
        for bad in [
            "",
            "-1",
            "+1",
            "0x",
            "0xg",
            "1_000",
            "18446744073709551616",
            "0x1ffffffffffffffff",
            " 1",
            "1.0",
            "x10",
        ] {
            let err = parse_seed(bad).unwrap_err();
            assert!(err.starts_with("expected a seed"), "{bad:?}: {err}");
            assert!(err.contains(&format!("{bad:?}")), "{bad:?}: {err}");
        }
    }

    #[test]
    fn seed_ranges_are_inclusive_at_both_ends() {
        let range = SeedRange::parse("1..200").unwrap();
        assert_eq!(
            range,
            SeedRange {
                first: 1,
                last: 200
            }
        );
        assert_eq!(range.len(), 200);
        assert_eq!(range.iter().count(), 200);
        assert_eq!(range.iter().next(), Some(1));
        assert_eq!(range.iter().last(), Some(200));
        assert!(!range.is_empty());
    }

    #[test]
    fn seed_ranges_accept_hex_and_a_single_seed() {
        assert_eq!(
            SeedRange::parse("0x10..0x1f"),
            Ok(SeedRange {
                first: 16,
                last: 31
            })
        );
        assert_eq!(SeedRange::parse("7"), Ok(SeedRange { first: 7, last: 7 }));
        assert_eq!(SeedRange::parse("7").unwrap().len(), 1);
        assert_eq!(
            SeedRange::parse("5..5").unwrap().iter().collect::<Vec<_>>(),
            vec![5]
        );
        let full = SeedRange::parse("0..18446744073709551615").unwrap();
        assert_eq!(
            full.len(),
            u64::MAX,
            "the full range saturates instead of overflowing"
        );
        assert_eq!(
            SeedRange::default(),
            SeedRange {
                first: 1,
                last: 100
            }
        );
        assert_eq!(SeedRange::default().to_string(), "1..100");
    }

    #[test]
    fn seed_ranges_reject_malformed_and_backwards_ranges() {
        for bad in [
            "", "..", "1..", "..5", "1...5", "1..=5", "a..b", "1..2..3", "1 ..2", "-1..5",
        ] {
            let err = SeedRange::parse(bad).unwrap_err();
            assert!(
                err.starts_with(r#"expected seeds like "1..100""#),
                "{bad:?}: {err}"
            );
        }
        let err = SeedRange::parse("9..3").unwrap_err();
        assert!(err.contains("\"9..3\" is empty"), "{err}");
    }

    #[test]
    fn intervals_are_ordered_positive_durations() {
        assert_eq!(
            parse_interval("5s..15s"),
            Ok((Duration::from_secs(5), Duration::from_secs(15)))
        );
        assert_eq!(
            parse_interval("500ms..500ms"),
            Ok((Duration::from_millis(500), Duration::from_millis(500)))
        );
        assert!(parse_interval("5s")
            .unwrap_err()
            .contains("expected an interval"));
        assert!(parse_interval("0s..5s").unwrap_err().contains("above 0s"));
        assert!(parse_interval("15s..5s").unwrap_err().contains("is empty"));
        assert!(parse_interval("5..15s")
            .unwrap_err()
            .contains("expected a duration"));
    }
}
