//! Statistics and queueing theory: means, Student-t confidence intervals,
//! Erlang B and C, and the power-of-d limit. Used to aggregate replications
//! and, in the tests, to hold the model to theory.

/// Mean of a sample (NaN when empty or when any value is NaN).
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Sample standard deviation (n − 1).
pub fn std_dev(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return f64::NAN;
    }
    let m = mean(xs);
    (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
}

/// Half-width of the two-sided confidence interval of the mean at `level`
/// (e.g. 0.95), by Student's t. NaN with fewer than two values.
pub fn ci_half_width(xs: &[f64], level: f64) -> f64 {
    if xs.len() < 2 {
        return f64::NAN;
    }
    let t = student_t_quantile(0.5 + level / 2.0, (xs.len() - 1) as f64);
    t * std_dev(xs) / (xs.len() as f64).sqrt()
}

#[allow(clippy::excessive_precision)] // published coefficients, kept verbatim
/// Standard normal quantile (Acklam's rational approximation, relative
/// error < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383577518672690e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let pl = 0.02425;
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    if p < pl {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - pl {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

/// Student-t quantile with `df` degrees of freedom: exact for df 1 and 2,
/// a Cornish–Fisher expansion otherwise (error < 0.3 % for df ≥ 3 at
/// the 95–99.5 % levels used here).
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    if df <= 1.0 {
        return (std::f64::consts::PI * (p - 0.5)).tan();
    }
    if df <= 2.0 {
        return (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt();
    }
    let z = normal_quantile(p);
    let (z3, z5, z7, z9) = (z.powi(3), z.powi(5), z.powi(7), z.powi(9));
    z + (z3 + z) / (4.0 * df)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * df * df)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * df.powi(3))
        + (79.0 * z9 + 776.0 * z7 + 1482.0 * z5 - 1920.0 * z3 - 945.0 * z) / (92160.0 * df.powi(4))
}

/// Erlang B: blocking probability of `servers` trunks offered `load`
/// Erlangs (λ/μ), by the stable recurrence B(k) = A·B(k−1) / (k + A·B(k−1)).
pub fn erlang_b(servers: u64, load: f64) -> f64 {
    let mut b = 1.0;
    for k in 1..=servers {
        b = load * b / (k as f64 + load * b);
    }
    b
}

/// Erlang C: probability that an arrival waits in an M/M/c queue with
/// offered load `load` = λ/μ < c.
pub fn erlang_c(servers: u64, load: f64) -> f64 {
    let c = servers as f64;
    if load >= c {
        return 1.0;
    }
    let b = erlang_b(servers, load);
    b / (1.0 - (load / c) * (1.0 - b))
}

/// Mean wait in queue of M/M/c (same time unit as `mean_service`).
pub fn mmc_mean_wait(servers: u64, lambda: f64, mean_service: f64) -> f64 {
    let a = lambda * mean_service;
    erlang_c(servers, a) * mean_service / (servers as f64 - a)
}

/// Supermarket-model limit of the mean time in system (in units of the
/// mean service time) for d choices at per-server load λ < 1:
/// Σ_{i≥1} λ^((dⁱ − d)/(d − 1)).
pub fn power_of_d_sojourn(lambda: f64, d: u32) -> f64 {
    let d = d as f64;
    let mut sum = 0.0;
    for i in 1..64 {
        let e = (d.powi(i) - d) / (d - 1.0);
        let term = lambda.powf(e);
        sum += term;
        if term < 1e-15 {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_tables() {
        let cases = [
            (1.0, 12.706),
            (2.0, 4.303),
            (4.0, 2.776),
            (9.0, 2.262),
            (29.0, 2.045),
            (1000.0, 1.962),
        ];
        for (df, t) in cases {
            let q = student_t_quantile(0.975, df);
            assert!((q - t).abs() / t < 3e-3, "df {df}: {q} vs {t}");
        }
        assert!((student_t_quantile(0.995, 9.0) - 3.250).abs() < 0.01);
    }

    #[test]
    fn erlang_known_values() {
        // Classic table values.
        assert!((erlang_b(10, 5.0) - 0.018384).abs() < 1e-5);
        assert!((erlang_b(1, 1.0) - 0.5).abs() < 1e-12);
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
        // M/M/1: Wq = ρ/(μ−λ)
        assert!((mmc_mean_wait(1, 0.5, 1.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn power_of_two_limit() {
        // λ = 0.5, d = 2: exponents 2^i − 2 = 0, 2, 6, 14, 30, ...
        let v = power_of_d_sojourn(0.5, 2);
        let want: f64 = [0, 2, 6, 14, 30].iter().map(|&e| 0.5f64.powi(e)).sum();
        assert!((v - want).abs() < 1e-9, "{v} vs {want}");
        // d = 1 would be M/M/1: 1/(1−λ); the d = 2 sum is far smaller.
        assert!(v < 1.0 / (1.0 - 0.5));
    }

    #[test]
    fn ci_of_constant_is_zero() {
        assert_eq!(ci_half_width(&[2.0, 2.0, 2.0], 0.95), 0.0);
        assert!(ci_half_width(&[2.0], 0.95).is_nan());
    }
}
