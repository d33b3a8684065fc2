//! Scenario overrides from the command line: `--set key=value`.
//!
//! Overrides are applied to the scenario's TOML document *before* it is
//! deserialized, so any key the scenario format knows works, and the
//! scenario's own validation judges the result: a misspelt key is an
//! "unknown field … expected one of …" error, a bad value the same message a
//! scenario file would get. Keys are dotted paths; arrays of tables are
//! indexed with a number (`population.0.arrival.rate` or
//! `population[0].arrival.rate`; `populations`/`faults` are accepted for
//! `population`/`fault`). Values are TOML when they parse as TOML (`12`,
//! `0.5`, `true`, `"text"`, `{ dist = "exponential", mean = "30m" }`) and
//! strings otherwise (`leastconn`, `250ms`, `83.3/s`, `random(2)`). Several
//! values are separated by commas outside parentheses, brackets, braces and
//! quotes; `10..20` is an inclusive integer range and `10..20:2` one with a
//! step.

use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, TableLike, Value};

use super::StudyError;
use crate::scenario::{self, Scenario, ScenarioError};

/// At most this many values in one `--set` (after expanding ranges).
pub const MAX_VALUES: usize = 10_000;

/// One segment of a dotted key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A dotted scenario key such as `servers.count` or `population.0.session`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub text: String,
    pub segs: Vec<Seg>,
}

impl Key {
    /// Parses `a.b[2].c` or `a.b.2.c`.
    pub fn parse(text: &str) -> Result<Key, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("the key is empty".into());
        }
        let mut segs = vec![];
        for part in text.split('.') {
            let (name, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if name.is_empty() && rest.is_empty() {
                return Err(format!("`{text}` has an empty segment"));
            }
            if !name.is_empty() {
                if name.chars().all(|c| c.is_ascii_digit()) {
                    let i = name.parse().map_err(|_| format!("`{name}` is not an index"))?;
                    segs.push(Seg::Index(i));
                } else if name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
                    segs.push(Seg::Key(name.to_string()));
                } else {
                    return Err(format!("`{name}` is not a key (letters, digits, `_` and `-`)"));
                }
            }
            while let Some(r) = rest.strip_prefix('[') {
                let Some(end) = r.find(']') else {
                    return Err(format!("`{part}`: `[` without `]`"));
                };
                let i = r[..end]
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{}` is not an index", &r[..end]))?;
                segs.push(Seg::Index(i));
                rest = &r[end + 1..];
            }
            if !rest.is_empty() {
                return Err(format!("`{part}`: unexpected `{rest}`"));
            }
        }
        if matches!(segs.first(), Some(Seg::Index(_))) {
            return Err(format!("`{text}` starts with an index"));
        }
        Ok(Key {
            text: text.to_string(),
            segs,
        })
    }
}

/// One value of an override: the TOML value and how to show it.
#[derive(Clone, Debug)]
pub struct OValue {
    pub value: Value,
    pub text: String,
}

impl OValue {
    /// The value as a number, when it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match &self.value {
            Value::Integer(i) => Some(*i.value() as f64),
            Value::Float(f) => Some(*f.value()),
            _ => None,
        }
    }
}

/// A `--set key=v1,v2,…` argument.
#[derive(Clone, Debug)]
pub struct Setting {
    /// The argument as given, for messages (`--set servers.count=0`).
    pub arg: String,
    pub key: Key,
    pub values: Vec<OValue>,
}

impl Setting {
    /// Parses `key=values` (`flag` names the option in messages).
    pub fn parse(flag: &str, text: &str) -> Result<Setting, StudyError> {
        let arg = format!("{flag} {text}");
        let bad = |message: String| StudyError::Arg {
            arg: arg.clone(),
            message,
        };
        let Some((k, v)) = text.split_once('=') else {
            return Err(bad(
                "expected key=value, e.g. servers.count=12 or servers.count=10..20".into()
            ));
        };
        let key = Key::parse(k).map_err(bad)?;
        let values = parse_values(v).map_err(bad)?;
        Ok(Setting { arg, key, values })
    }
}

/// Splits on `sep` outside parentheses, brackets, braces and quotes.
pub fn split_top(s: &str, sep: char) -> Vec<&str> {
    let mut out = vec![];
    let (mut depth, mut quote, mut start) = (0i32, None::<char>, 0);
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth -= 1,
            (None, c) if c == sep && depth == 0 => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Parses a comma list of values and ranges.
pub fn parse_values(s: &str) -> Result<Vec<OValue>, String> {
    let mut out = vec![];
    for part in split_top(s, ',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!("empty value in `{s}`"));
        }
        // An inline table or array must be valid TOML: `{ dist = "exponential"`
        // would otherwise be taken as text, and judged as a duration.
        if part.starts_with(['{', '['])
            && let Err(e) = part.parse::<Value>()
        {
            let what = if part.starts_with('{') {
                "an inline table"
            } else {
                "an array"
            };
            return Err(format!("`{part}` is not valid TOML for {what}: {}", e.message().trim()));
        }
        match parse_range(part)? {
            Some(range) => out.extend(range),
            None => out.push(parse_scalar(part)),
        }
        if out.len() > MAX_VALUES {
            return Err(format!("more than {MAX_VALUES} values"));
        }
    }
    Ok(out)
}

/// `a..b` or `a..b:step` (inclusive, integers); `None` if `s` is no range.
fn parse_range(s: &str) -> Result<Option<Vec<OValue>>, String> {
    let Some((a, rest)) = s.split_once("..") else {
        return Ok(None);
    };
    let (b, step) = match rest.split_once(':') {
        Some((b, st)) => (b, Some(st)),
        None => (rest, None),
    };
    let int = |t: &str| {
        t.trim()
            .parse::<i64>()
            .map_err(|_| format!("`{s}`: ranges are of whole numbers, like 10..20 or 10..20:2"))
    };
    let (a, b) = (int(a)?, int(b)?);
    let step = match step {
        Some(st) => int(st)?,
        None => 1,
    };
    if step <= 0 {
        return Err(format!("`{s}`: the step must be at least 1"));
    }
    if b < a {
        return Err(format!("`{s}`: the range is empty ({b} < {a})"));
    }
    if (b - a) / step >= MAX_VALUES as i64 {
        return Err(format!("`{s}`: more than {MAX_VALUES} values"));
    }
    let mut v = vec![];
    let mut x = a;
    while x <= b {
        v.push(int_value(x));
        x += step;
    }
    Ok(Some(v))
}

pub fn int_value(x: i64) -> OValue {
    OValue {
        value: Value::from(x),
        text: x.to_string(),
    }
}

/// A TOML value if `s` parses as one, a string otherwise.
pub fn parse_scalar(s: &str) -> OValue {
    let s = s.trim();
    match s.parse::<Value>() {
        // Dates and times are not scenario values: `2024-01-01` stays text.
        Ok(v) if !matches!(v, Value::Datetime(_)) => {
            let text = match &v {
                Value::String(t) => t.value().clone(),
                _ => s.to_string(),
            };
            OValue {
                value: v.decorated(" ", ""),
                text,
            }
        }
        _ => OValue {
            value: Value::from(s),
            text: s.to_string(),
        },
    }
}

/// An assignment of one value to one key, with the argument it came from.
#[derive(Clone, Debug)]
pub struct Assign {
    pub arg: String,
    pub key: Key,
    pub value: OValue,
}

impl Assign {
    pub fn new(arg: impl Into<String>, key: &Key, value: OValue) -> Assign {
        Assign {
            arg: arg.into(),
            key: key.clone(),
            value,
        }
    }
    /// `key=value`, as shown in tables and labels.
    pub fn label(&self) -> String {
        format!("{}={}", self.key.text, self.value.text)
    }
}

/// A scenario file, read once, from which variants are built.
pub struct Base {
    pub file: PathBuf,
    doc: DocumentMut,
    /// The file as it is (no overrides), validated.
    pub scenario: Scenario,
}

impl Base {
    /// Reads and validates the scenario file.
    pub fn load(file: &Path) -> Result<Base, StudyError> {
        let scenario = scenario::load(file)?;
        let src = scenario::read_source(file)?;
        Base::with_scenario(file, &src, scenario)
    }

    /// Like [`Base::load`], over the file's text already read (and perhaps
    /// edited, e.g. by `--lenient`); `file` names it and locates relative paths.
    pub fn from_text(file: &Path, src: &str) -> Result<Base, StudyError> {
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into());
        let base = file.parent().unwrap_or(Path::new("."));
        let scenario = scenario::parse(src, file, &stem, base)?;
        Base::with_scenario(file, src, scenario)
    }

    fn with_scenario(file: &Path, src: &str, scenario: Scenario) -> Result<Base, StudyError> {
        // It loaded, so it is valid TOML.
        let doc = src.parse::<DocumentMut>().map_err(|e| StudyError::Arg {
            arg: file.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Base {
            file: file.to_path_buf(),
            doc,
            scenario,
        })
    }

    /// The scenario with `assigns` applied in order, validated. Errors name
    /// the argument responsible.
    pub fn build(&self, assigns: &[Assign]) -> Result<Scenario, StudyError> {
        if assigns.is_empty() {
            return Ok(self.scenario.clone());
        }
        let mut doc = self.doc.clone();
        for a in assigns {
            set_in(doc.as_table_mut(), &a.key.segs, a.value.value.clone(), "").map_err(|message| StudyError::Arg {
                arg: a.arg.clone(),
                message,
            })?;
        }
        let text = doc.to_string();
        let stem = self
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into());
        let base = self.file.parent().unwrap_or(Path::new("."));
        scenario::parse(&text, &self.file, &stem, base).map_err(|error| {
            let args: Vec<&str> = assigns.iter().map(|a| a.arg.as_str()).collect();
            // Blame the argument whose key the problem names, else all.
            let blamed = match &error {
                ScenarioError::Invalid { problems, .. } => assigns
                    .iter()
                    .filter(|a| problems.iter().any(|p| related(&p.field, &a.key)))
                    .map(|a| a.arg.clone())
                    .collect::<Vec<_>>(),
                ScenarioError::Read { .. } | ScenarioError::Unreadable { .. } => vec![],
            };
            let arg = if blamed.is_empty() {
                args.join(" ")
            } else {
                blamed.join(" ")
            };
            StudyError::Rejected { arg, error }
        })
    }

    /// The current value of `key` in the scenario (defaults included), as
    /// JSON.
    pub fn current(&self, key: &Key) -> Option<serde_json::Value> {
        let mut v = serde_json::to_value(&self.scenario).ok()?;
        for seg in &key.segs {
            v = match seg {
                Seg::Key(k) => {
                    let obj = v.as_object()?;
                    let k = alias(|x| obj.contains_key(x), k);
                    obj.get(&k)?.clone()
                }
                Seg::Index(i) => v.as_array()?.get(*i)?.clone(),
            };
        }
        Some(v)
    }
}

/// Does a problem's field (`population[0].arrival.rate`) concern `key`?
fn related(field: &str, key: &Key) -> bool {
    let norm = |s: &str| {
        s.replace('[', ".")
            .replace(']', "")
            .replace("populations", "population")
    };
    let (f, k) = (norm(field), norm(&key.text));
    !f.is_empty() && (f.starts_with(&k) || k.starts_with(&f))
}

/// `population` for `populations` and `fault` for `faults` when only the
/// former exists.
fn alias(has: impl Fn(&str) -> bool, k: &str) -> String {
    if !has(k)
        && let Some(s) = k.strip_suffix('s')
        && has(s)
    {
        return s.to_string();
    }
    k.to_string()
}

fn describe(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) | Item::Value(Value::InlineTable(_)) => "a table",
        Item::ArrayOfTables(_) | Item::Value(Value::Array(_)) => "a list",
        Item::Value(_) => "a value",
    }
}

/// Sets `segs` (starting with a key) under `table` to `value`; `path` is
/// the path of `table`, for messages.
fn set_in(table: &mut dyn TableLike, segs: &[Seg], value: Value, path: &str) -> Result<(), String> {
    let Some((Seg::Key(k), rest)) = segs.split_first() else {
        return Err(format!("`{path}`: an index must follow a list"));
    };
    let k = alias(|x| table.contains_key(x), k);
    let here = if path.is_empty() {
        k.clone()
    } else {
        format!("{path}.{k}")
    };
    if rest.is_empty() {
        if let Some(old) = table.get(&k)
            && matches!(old, Item::Table(_) | Item::ArrayOfTables(_))
            && !matches!(value, Value::InlineTable(_) | Value::Array(_))
        {
            return Err(format!("`{here}` is {}: set one of its keys instead", describe(old)));
        }
        table.insert(&k, Item::Value(value));
        return Ok(());
    }
    if !table.contains_key(&k) {
        if let Seg::Index(_) = rest[0] {
            return Err(format!("`{here}` is not in the scenario: there is no list to index"));
        }
        table.insert(&k, Item::Value(Value::InlineTable(Default::default())));
    }
    let item = table.get_mut(&k).expect("just checked or inserted");
    match &rest[0] {
        Seg::Index(i) => {
            let i = *i;
            let at = format!("{here}.{i}");
            let rest = &rest[1..];
            match item {
                Item::ArrayOfTables(a) => {
                    let n = a.len();
                    let t = a.get_mut(i).ok_or_else(|| out_of_range(&here, i, n))?;
                    if rest.is_empty() {
                        return Err(format!("`{at}` is a table: set one of its keys instead"));
                    }
                    set_in(t, rest, value, &at)
                }
                Item::Value(Value::Array(a)) => {
                    let n = a.len();
                    if i >= n {
                        return Err(out_of_range(&here, i, n));
                    }
                    if rest.is_empty() {
                        a.replace(i, value);
                        return Ok(());
                    }
                    match a.get_mut(i) {
                        Some(Value::InlineTable(t)) => set_in(t, rest, value, &at),
                        _ => Err(format!("`{at}` is a value, not a table")),
                    }
                }
                other => Err(format!("`{here}` is {}, not a list", describe(other))),
            }
        }
        Seg::Key(_) => {
            let kind = describe(item);
            match item.as_table_like_mut() {
                Some(t) => set_in(t, rest, value, &here),
                None => Err(format!("`{here}` is {kind}, not a table")),
            }
        }
    }
}

fn out_of_range(here: &str, i: usize, n: usize) -> String {
    match n {
        0 => format!("`{here}` is empty: there is no entry {i}"),
        _ => format!(
            "`{here}` has {n} entries, numbered 0..={}: there is no entry {i}",
            n - 1
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let k = Key::parse("population[1].arrival.rate").unwrap();
        assert_eq!(
            k.segs,
            vec![
                Seg::Key("population".into()),
                Seg::Index(1),
                Seg::Key("arrival".into()),
                Seg::Key("rate".into())
            ]
        );
        assert_eq!(Key::parse("population.1.arrival.rate").unwrap().segs, k.segs);
        assert!(Key::parse("").is_err());
        assert!(Key::parse("a..b").is_err());
        assert!(Key::parse("0.a").is_err());
        assert!(Key::parse("a[x]").is_err());
    }

    #[test]
    fn values_and_ranges() {
        let t = |s: &str| -> Vec<String> { parse_values(s).unwrap().into_iter().map(|v| v.text).collect() };
        assert_eq!(t("10..13"), ["10", "11", "12", "13"]);
        assert_eq!(t("10..20:5"), ["10", "15", "20"]);
        assert_eq!(t("leastconn,random(2),first"), ["leastconn", "random(2)", "first"]);
        assert_eq!(t("250ms"), ["250ms"]);
        let v = parse_values("12,0.5,true,\"x,y\",250ms").unwrap();
        assert!(matches!(v[0].value, Value::Integer(_)));
        assert!(matches!(v[1].value, Value::Float(_)));
        assert!(matches!(v[2].value, Value::Boolean(_)));
        assert_eq!(v[3].text, "x,y");
        assert!(matches!(v[4].value, Value::String(_)));
        assert!(parse_values("20..10").is_err());
        assert!(parse_values("1..5:0").is_err());
        assert!(parse_values("1.5..3").is_err());
        assert!(parse_values("a,,b").is_err());
        assert!(parse_values("0..100000000").is_err());
        let v = parse_values("{ dist = \"exponential\", mean = \"30m\" }").unwrap();
        assert!(matches!(v[0].value, Value::InlineTable(_)));
    }

    #[test]
    fn split_respects_nesting() {
        assert_eq!(
            split_top("a,random(2),{x=1,y=2},'p,q'", ','),
            ["a", "random(2)", "{x=1,y=2}", "'p,q'"]
        );
    }

    fn set(src: &str, key: &str, value: &str) -> Result<String, String> {
        let mut doc = src.parse::<DocumentMut>().unwrap();
        let k = Key::parse(key).unwrap();
        set_in(doc.as_table_mut(), &k.segs, parse_scalar(value).value, "")?;
        Ok(doc.to_string())
    }

    #[test]
    fn set_paths() {
        let src = "a = 1\n[servers]\ncount = 2\n[[population]]\narrival = { process = \"poisson\", rate = \"1/s\" }\n[[population]]\nname = \"x\"\n";
        let out = set(src, "servers.count", "12").unwrap();
        assert!(out.contains("count = 12"), "{out}");
        let out = set(src, "populations.0.arrival.rate", "5/s").unwrap();
        assert!(out.contains("rate = \"5/s\""), "{out}");
        let out = set(src, "population[1].name", "y").unwrap();
        assert!(out.contains("name = \"y\""), "{out}");
        let out = set(src, "balancer.health_check.inter", "1s").unwrap();
        assert!(out.contains("inter = \"1s\""), "{out}");
        let out = set(src, "servers.weights", "[1, 2]").unwrap();
        assert!(out.contains("weights = [1, 2]"), "{out}");
        let e = set(src, "population.5.name", "z").unwrap_err();
        assert!(e.contains("numbered 0..=1"), "{e}");
        let e = set(src, "a.b", "z").unwrap_err();
        assert!(e.contains("`a` is a value"), "{e}");
        let e = set(src, "servers", "3").unwrap_err();
        assert!(e.contains("is a table"), "{e}");
        let e = set(src, "nothing.0.x", "3").unwrap_err();
        assert!(e.contains("no list"), "{e}");
    }
}
