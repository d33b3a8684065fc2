//! `&'static str` names (metric names, CDF names, database roles) read
//! back from serialized results: each distinct name is leaked once and
//! shared afterwards, so a merge of many results allocates each name once.

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde::{Deserialize, Deserializer};

static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

/// The `'static` copy of `s` (the same one for every equal `s`).
pub fn intern(s: &str) -> &'static str {
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&n) = names.get(s) {
        return n;
    }
    let n: &'static str = Box::leak(s.to_owned().into_boxed_str());
    names.insert(n);
    n
}

/// Deserializes a list of (`&'static str`, value) pairs.
pub fn de_static_pairs<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<(&'static str, T)>, D::Error> {
    let v: Vec<(String, T)> = Vec::deserialize(d)?;
    Ok(v.into_iter().map(|(s, t)| (intern(&s), t)).collect())
}
