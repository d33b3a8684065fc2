//! `wscap sweep`: the grid product of `--set` values.
//!
//! `--set servers.count=10..12 --set balancer.balance=leastconn,first`
//! gives six points, the last key varying fastest. Every point is built
//! and validated before anything runs.

use super::overrides::{Assign, Base, Setting};
use super::{Point, StudyError};

/// At most this many points in one sweep.
pub const MAX_POINTS: usize = 10_000;

/// The grid of `settings` (each point also gets the `fixed` assignments
/// first), every point validated.
pub fn points(base: &Base, fixed: &[Assign], settings: &[Setting]) -> Result<Vec<Point>, StudyError> {
    let mut n: usize = 1;
    for s in settings {
        n = n.saturating_mul(s.values.len());
        if n > MAX_POINTS {
            return Err(StudyError::Arg {
                arg: s.arg.clone(),
                message: format!("the grid has more than {MAX_POINTS} points"),
            });
        }
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut assigns = fixed.to_vec();
        // Mixed radix, the last setting fastest.
        let mut rest = i;
        let mut picks = vec![0; settings.len()];
        for (k, s) in settings.iter().enumerate().rev() {
            picks[k] = rest % s.values.len();
            rest /= s.values.len();
        }
        for (s, &p) in settings.iter().zip(&picks) {
            assigns.push(Assign::new(
                format!("--set {}={}", s.key.text, s.values[p].text),
                &s.key,
                s.values[p].clone(),
            ));
        }
        let scenario = base.build(&assigns)?;
        out.push(Point { assigns, scenario });
    }
    Ok(out)
}

/// The swept settings (more than one value), in argument order.
pub fn swept(settings: &[Setting]) -> Vec<&Setting> {
    settings.iter().filter(|s| s.values.len() > 1).collect()
}

/// The key to put on the x axis of sweep charts: the first swept key whose
/// values are all numbers, else the first swept key.
pub fn x_key(settings: &[Setting]) -> Option<usize> {
    let swept: Vec<usize> = (0..settings.len()).filter(|&i| settings[i].values.len() > 1).collect();
    swept
        .iter()
        .copied()
        .find(|&i| settings[i].values.iter().all(|v| v.as_f64().is_some()))
        .or(swept.first().copied())
}
