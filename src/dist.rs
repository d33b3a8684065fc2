//! Probability distributions of durations (session length, RTT, service cost…).
//!
//! A [`Dist`] samples seconds as `f64` and converts to integer simulated time
//! at the last moment. Scenario files write them as a duration string
//! (a constant) or a table `{ dist = "exponential", mean = "30m" }`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rand::RngExt;
use rand_distr::{Distribution, Exp, LogNormal, Normal, Pareto};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::rng::SimRng;
use crate::time::SimDuration;

/// The valid `dist = ...` choices, for error messages.
pub const DIST_CHOICES: &str = "constant, exponential, uniform, normal, lognormal, pareto, empirical";

/// A distribution of durations.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "dist", rename_all = "lowercase")]
pub enum Dist {
    Constant {
        value: SimDuration,
    },
    Exponential {
        mean: SimDuration,
    },
    Uniform {
        min: SimDuration,
        max: SimDuration,
    },
    /// Normal, truncated at zero (negative draws become zero).
    Normal {
        mean: SimDuration,
        sd: SimDuration,
    },
    /// Log-normal given by its median and the sigma of the underlying normal.
    /// Build it with [`Dist::lognormal`], which fills in `mu`.
    Lognormal {
        median: SimDuration,
        sigma: f64,
        /// `ln(median in seconds)`, the underlying normal's mean: computed
        /// once, not per draw (a 150k-player hour draws 25 M of them).
        #[serde(skip)]
        mu: f64,
    },
    /// Pareto (type I) with minimum `scale` and tail index `shape`.
    Pareto {
        scale: SimDuration,
        shape: f64,
    },
    /// Resamples the values of one CSV column (bootstrap).
    Empirical {
        file: PathBuf,
        column: String,
        /// Unit of the numbers in the column: "ns", "us", "ms", "s".
        #[serde(default = "default_unit")]
        unit: String,
        /// Filled in by the scenario loader (values in seconds, sorted).
        #[serde(skip)]
        values_s: Arc<Vec<f64>>,
    },
}

fn default_unit() -> String {
    "ms".to_string()
}

impl Dist {
    pub fn constant(d: SimDuration) -> Dist {
        Dist::Constant { value: d }
    }

    /// A log-normal of this median and sigma.
    pub fn lognormal(median: SimDuration, sigma: f64) -> Dist {
        Dist::Lognormal {
            median,
            sigma,
            mu: median.as_secs_f64().max(1e-12).ln(),
        }
    }

    /// Draws one value in seconds.
    pub fn sample_secs(&self, rng: &mut SimRng) -> f64 {
        match self {
            Dist::Constant { value } => value.as_secs_f64(),
            Dist::Exponential { mean } => {
                let m = mean.as_secs_f64();
                if m <= 0.0 {
                    0.0
                } else {
                    Exp::new(1.0 / m).map(|e| e.sample(rng)).unwrap_or(0.0)
                }
            }
            Dist::Uniform { min, max } => {
                let (a, b) = (min.as_secs_f64(), max.as_secs_f64());
                if b > a { rng.random_range(a..b) } else { a }
            }
            Dist::Normal { mean, sd } => Normal::new(mean.as_secs_f64(), sd.as_secs_f64())
                .map(|n| n.sample(rng).max(0.0))
                .unwrap_or(0.0),
            Dist::Lognormal { sigma, mu, .. } => LogNormal::new(*mu, *sigma).map(|l| l.sample(rng)).unwrap_or(0.0),
            Dist::Pareto { scale, shape } => Pareto::new(scale.as_secs_f64().max(1e-12), *shape)
                .map(|p| p.sample(rng))
                .unwrap_or(0.0),
            Dist::Empirical { values_s, .. } => {
                if values_s.is_empty() {
                    0.0
                } else {
                    values_s[rng.random_range(0..values_s.len())]
                }
            }
        }
    }

    /// Draws one duration.
    #[inline]
    pub fn sample(&self, rng: &mut SimRng) -> SimDuration {
        match self {
            Dist::Constant { value } => *value,
            _ => SimDuration::from_secs_f64(self.sample_secs(rng)),
        }
    }

    /// The mean in seconds (infinite for a Pareto with shape <= 1).
    pub fn mean_secs(&self) -> f64 {
        match self {
            Dist::Constant { value } => value.as_secs_f64(),
            Dist::Exponential { mean } => mean.as_secs_f64(),
            Dist::Uniform { min, max } => (min.as_secs_f64() + max.as_secs_f64()) / 2.0,
            Dist::Normal { mean, .. } => mean.as_secs_f64(),
            Dist::Lognormal { median, sigma, .. } => median.as_secs_f64() * (sigma * sigma / 2.0).exp(),
            Dist::Pareto { scale, shape } => {
                if *shape <= 1.0 {
                    f64::INFINITY
                } else {
                    shape * scale.as_secs_f64() / (shape - 1.0)
                }
            }
            Dist::Empirical { values_s, .. } => values_s.iter().sum::<f64>() / values_s.len().max(1) as f64,
        }
    }

    /// Checks parameters; returns the name of the bad parameter and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        match self {
            Dist::Uniform { min, max } if max < min => Err(("max", format!("uniform max {max} is below min {min}"))),
            Dist::Lognormal { sigma, .. } if !(sigma.is_finite() && *sigma >= 0.0) => {
                Err(("sigma", format!("lognormal sigma must be >= 0, got {sigma}")))
            }
            Dist::Lognormal { median, .. } if median.0 == 0 => {
                Err(("median", "lognormal median must be positive".into()))
            }
            Dist::Pareto { shape, .. } if !(shape.is_finite() && *shape > 0.0) => {
                Err(("shape", format!("pareto shape must be > 0, got {shape}")))
            }
            Dist::Pareto { scale, .. } if scale.0 == 0 => Err(("scale", "pareto scale must be positive".into())),
            Dist::Empirical { unit, .. } if unit_scale(unit).is_none() => {
                Err(("unit", format!("unknown unit `{unit}`, expected one of ns, us, ms, s")))
            }
            _ => Ok(()),
        }
    }
}

/// Seconds per unit of an empirical column.
pub fn unit_scale(unit: &str) -> Option<f64> {
    match unit {
        "ns" => Some(1e-9),
        "us" => Some(1e-6),
        "ms" => Some(1e-3),
        "s" => Some(1.0),
        _ => None,
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(tag = "dist", rename_all = "lowercase", deny_unknown_fields)]
enum DistTable {
    Constant {
        value: SimDuration,
    },
    Exponential {
        mean: SimDuration,
    },
    Uniform {
        min: SimDuration,
        max: SimDuration,
    },
    Normal {
        mean: SimDuration,
        sd: SimDuration,
    },
    Lognormal {
        median: SimDuration,
        sigma: f64,
    },
    Pareto {
        scale: SimDuration,
        shape: f64,
    },
    Empirical {
        file: PathBuf,
        column: String,
        #[serde(default = "default_unit")]
        unit: String,
    },
}

impl From<DistTable> for Dist {
    fn from(t: DistTable) -> Dist {
        match t {
            DistTable::Constant { value } => Dist::Constant { value },
            DistTable::Exponential { mean } => Dist::Exponential { mean },
            DistTable::Uniform { min, max } => Dist::Uniform { min, max },
            DistTable::Normal { mean, sd } => Dist::Normal { mean, sd },
            DistTable::Lognormal { median, sigma } => Dist::lognormal(median, sigma),
            DistTable::Pareto { scale, shape } => Dist::Pareto { scale, shape },
            DistTable::Empirical { file, column, unit } => Dist::Empirical {
                file,
                column,
                unit,
                values_s: Arc::new(Vec::new()),
            },
        }
    }
}

/// JSON Schema: a duration (a constant) or a `{ dist = … }` table.
impl schemars::JsonSchema for Dist {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Dist".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let duration = g.subschema_for::<SimDuration>();
        let table = g.subschema_for::<DistTable>();
        schemars::json_schema!({
            "description": "A distribution of durations: a duration (a constant) or a table such as { dist = \"exponential\", mean = \"30m\" }.",
            "anyOf": [duration, table]
        })
    }
}

impl<'de> Deserialize<'de> for Dist {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Dist;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(
                    f,
                    "a duration such as \"50ms\" or a table such as {{ dist = \"exponential\", mean = \"30m\" }} (dist: {DIST_CHOICES})"
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dist, E> {
                crate::units::parse_duration(v).map(Dist::constant).map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Dist, A::Error> {
                DistTable::deserialize(de::value::MapAccessDeserializer::new(map)).map(Dist::from)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn mean_of(d: &Dist, n: usize) -> f64 {
        let mut r = SimRng::seed_from_u64(1);
        (0..n).map(|_| d.sample_secs(&mut r)).sum::<f64>() / n as f64
    }

    #[test]
    fn sample_means_match() {
        let e = Dist::Exponential {
            mean: SimDuration::from_secs(2),
        };
        assert!((mean_of(&e, 200_000) - 2.0).abs() < 0.03);
        let l = Dist::lognormal(SimDuration::from_secs(1), 0.5);
        assert!((mean_of(&l, 200_000) - l.mean_secs()).abs() < 0.01);
        let u = Dist::Uniform {
            min: SimDuration::from_secs(1),
            max: SimDuration::from_secs(3),
        };
        assert!((mean_of(&u, 200_000) - 2.0).abs() < 0.01);
    }
}

/// A distribution of whole numbers (moves per game). Written as a number
/// (a constant) or `{ dist = "uniform", min, max }`, `{ dist = "normal",
/// mean, sd }` (rounded, at least 1) or `{ dist = "geometric", mean }`.
#[derive(Clone, Debug, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(untagged)]
pub enum CountDist {
    Constant(u32),
    Table(CountTable),
}

/// Not derived (`untagged` would say only "data did not match any
/// variant"): a number is a constant, a table says its own errors.
impl<'de> Deserialize<'de> for CountDist {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CountDist;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(
                    f,
                    "a whole number such as 80 or a table such as {{ dist = \"uniform\", min = 40, max = 120 }} (dist: uniform, normal, geometric)"
                )
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<CountDist, E> {
                u32::try_from(v)
                    .map(CountDist::Constant)
                    .map_err(|_| E::custom(format!("{v} is above {}", u32::MAX)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<CountDist, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("{v} is negative: a count is a whole number of at least 1")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<CountDist, A::Error> {
                CountTable::deserialize(de::value::MapAccessDeserializer::new(map)).map(CountDist::Table)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(tag = "dist", rename_all = "lowercase", deny_unknown_fields)]
pub enum CountTable {
    Uniform { min: u32, max: u32 },
    Normal { mean: f64, sd: f64 },
    Geometric { mean: f64 },
}

impl CountDist {
    /// Draws a count of at least 1.
    pub fn sample(&self, rng: &mut SimRng) -> u32 {
        let v = match self {
            CountDist::Constant(n) => *n,
            CountDist::Table(CountTable::Uniform { min, max }) => rng.random_range(*min..=(*max).max(*min)),
            CountDist::Table(CountTable::Normal { mean, sd }) => Normal::new(*mean, *sd)
                .map(|n| n.sample(rng).round().clamp(1.0, u32::MAX as f64) as u32)
                .unwrap_or(1),
            CountDist::Table(CountTable::Geometric { mean }) => {
                // Number of trials to the first success with p = 1/mean.
                let p = (1.0 / mean.max(1.0)).clamp(1e-9, 1.0);
                let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
                (u.ln() / (1.0 - p).ln()).ceil().clamp(1.0, u32::MAX as f64) as u32
            }
        };
        v.max(1)
    }

    pub fn mean(&self) -> f64 {
        match self {
            CountDist::Constant(n) => *n as f64,
            CountDist::Table(CountTable::Uniform { min, max }) => (*min as f64 + *max as f64) / 2.0,
            CountDist::Table(CountTable::Normal { mean, .. }) => *mean,
            CountDist::Table(CountTable::Geometric { mean }) => *mean,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        match self {
            CountDist::Constant(0) => Err("must be at least 1".into()),
            CountDist::Table(CountTable::Uniform { min, max }) if min > max || *min == 0 => {
                Err(format!("uniform needs 1 <= min <= max, got min {min}, max {max}"))
            }
            CountDist::Table(CountTable::Normal { mean, sd })
                if !(mean.is_finite() && *mean >= 1.0 && sd.is_finite() && *sd >= 0.0) =>
            {
                Err("normal needs mean >= 1 and sd >= 0".into())
            }
            CountDist::Table(CountTable::Geometric { mean }) if !(mean.is_finite() && *mean >= 1.0) => {
                Err("geometric needs mean >= 1".into())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod count_tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn count_means() {
        let mut r = SimRng::seed_from_u64(3);
        for d in [
            CountDist::Constant(80),
            CountDist::Table(CountTable::Uniform { min: 40, max: 120 }),
            CountDist::Table(CountTable::Normal { mean: 80.0, sd: 20.0 }),
            CountDist::Table(CountTable::Geometric { mean: 80.0 }),
        ] {
            let n = 100_000;
            let m = (0..n).map(|_| d.sample(&mut r) as f64).sum::<f64>() / n as f64;
            assert!((m - d.mean()).abs() / d.mean() < 0.02, "{d:?}: {m}");
        }
    }
}
