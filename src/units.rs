//! Human units in scenario files: durations ("250ms", "30s", "1h") and rates
//! ("83.3/s", "5000/m"). Parsing lives here so that every field with a unit is
//! read, and rejected, the same way.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::time::{NS_PER_MS, NS_PER_S, NS_PER_US, SimDuration};

const DURATION_UNITS: &str = "ns, us, ms, s, m, h";

/// Parses "250ms", "1.5s", "30m", "1h", "0". Returns a message naming the
/// valid units on failure.
pub fn parse_duration(s: &str) -> Result<SimDuration, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(SimDuration::ZERO);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let per_unit: f64 = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => NS_PER_US as f64,
        "ms" => NS_PER_MS as f64,
        "s" => NS_PER_S as f64,
        "m" | "min" => 60.0 * NS_PER_S as f64,
        "h" => 3600.0 * NS_PER_S as f64,
        "" => {
            return Err(format!(
                "duration `{s}` has no unit: write e.g. \"250ms\" (units: {DURATION_UNITS})"
            ));
        }
        other => {
            return Err(format!(
                "duration `{s}` has unknown unit `{other}` (units: {DURATION_UNITS})"
            ));
        }
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("duration `{s}` does not start with a number"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("duration `{s}` must be zero or positive"));
    }
    let ns = v * per_unit;
    if ns > u64::MAX as f64 / 2.0 {
        return Err(format!("duration `{s}` is too long"));
    }
    Ok(SimDuration(ns.round() as u64))
}

/// A rate in events per second.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Default)]
pub struct Rate {
    pub per_s: f64,
}

/// Highest rate a scenario may give: one per nanosecond, the resolution of
/// simulated time.
pub const MAX_RATE_PER_S: f64 = 1e9;

/// A count for a message: digits while it is readable, else `3.6e14`.
pub fn count_text(x: f64) -> String {
    if x.abs() < 1e12 {
        format!("{x:.0}")
    } else {
        format!("{x:.1e}")
    }
}

/// Parses "83.3/s", "5000/m", "10/h", "2/ms".
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let Some((num, unit)) = s.trim().split_once('/') else {
        return Err(format!(
            "rate `{s}` needs a unit: write e.g. \"83.3/s\" (units: /ms, /s, /m, /h)"
        ));
    };
    let per: f64 = match unit.trim() {
        "ms" => 1e3,
        "s" => 1.0,
        "m" | "min" => 1.0 / 60.0,
        "h" => 1.0 / 3600.0,
        other => {
            return Err(format!(
                "rate `{s}` has unknown unit `/{other}` (units: /ms, /s, /m, /h)"
            ));
        }
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("rate `{s}` does not start with a number"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("rate `{s}` must be zero or positive"));
    }
    let per_s = v * per;
    if per_s > MAX_RATE_PER_S {
        return Err(format!(
            "rate `{s}` is above 1e9/s, one event per nanosecond (the simulated clock's resolution)"
        ));
    }
    Ok(Rate { per_s })
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = SimDuration;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a duration string such as \"250ms\" (units: {DURATION_UNITS})")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<SimDuration, E> {
        parse_duration(v).map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<SimDuration, E> {
        if v == 0 {
            Ok(SimDuration::ZERO)
        } else {
            Err(E::custom(format!(
                "duration {v} has no unit: write e.g. \"{v}ms\" or \"{v}s\""
            )))
        }
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<SimDuration, E> {
        self.visit_i64(v as i64)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<SimDuration, E> {
        Err(E::custom(format!("duration {v} has no unit: write e.g. \"{v}s\"")))
    }
}

impl<'de> Deserialize<'de> for SimDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationVisitor)
    }
}

impl Serialize for SimDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Rate;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a rate string such as \"83.3/s\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Rate, E> {
                parse_rate(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}/s", self.per_s))
    }
}

/// JSON Schema of a duration: a string with a unit, or 0.
impl schemars::JsonSchema for SimDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration with a unit: \"250ms\", \"1.5s\", \"30m\", \"1h\" (units: ns, us, ms, s, m, h), or 0.",
            "oneOf": [
                { "type": "string", "pattern": "^\\s*(0|[0-9.eE+-]+\\s*(ns|us|µs|ms|s|m|min|h))\\s*$" },
                { "type": "integer", "const": 0 }
            ]
        })
    }
}

/// JSON Schema of a rate: a string such as "83.3/s".
impl schemars::JsonSchema for Rate {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Rate".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A rate: \"83.3/s\" (also /ms, /m, /h).",
            "type": "string",
            "pattern": "^\\s*[0-9.eE+]+\\s*/\\s*(ms|s|m|min|h)\\s*$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), SimDuration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), SimDuration::from_millis(1500));
        assert_eq!(parse_duration("1h").unwrap(), SimDuration::from_secs(3600));
        assert_eq!(parse_duration("30m").unwrap(), SimDuration::from_secs(1800));
        assert_eq!(parse_duration("0").unwrap(), SimDuration::ZERO);
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("3x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("-3s").unwrap_err().contains("positive"));
    }

    #[test]
    fn rates() {
        assert!((parse_rate("83.3/s").unwrap().per_s - 83.3).abs() < 1e-12);
        assert!((parse_rate("60/m").unwrap().per_s - 1.0).abs() < 1e-12);
        assert!(parse_rate("5").unwrap_err().contains("needs a unit"));
        assert!(parse_rate("-5/s").is_err());
        assert!(parse_rate("5/d").unwrap_err().contains("unknown unit"));
    }
}
