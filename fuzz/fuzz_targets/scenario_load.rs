//! Fuzz target: scenario loading (parse, locate errors, validate, render).
//!
//! Any input must give a `Scenario` or a `ScenarioError` whose message
//! renders, never a panic, a hang or unbounded memory. Files a scenario
//! names are resolved against a folder that does not exist, so relative
//! paths fail at once; absolute ones go through the bounded reader.
//!
//! Run (nightly): `cargo +nightly fuzz run scenario_load` from the repo root;
//! see NOTES-issue14.md for the seed corpus and the runs made.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let base = Path::new("/nonexistent-wscap-fuzz");
    match wscap::scenario::parse(src, Path::new("fuzz.toml"), "fuzz", base) {
        Ok(sc) => {
            // A scenario that loads also serializes (summary.json does it).
            let _ = serde_json::to_string(&sc);
        }
        Err(e) => {
            let text = e.to_string();
            assert!(!text.is_empty());
            for p in e.problems() {
                // Every problem is located in the file it came from.
                if let Some(l) = p.line {
                    assert!(
                        l >= 1 && l <= src.lines().count().max(1) + 1,
                        "line {l} of {}",
                        src.lines().count()
                    );
                }
            }
        }
    }
});
