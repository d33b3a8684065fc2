//! Reading a docker-compose file: its services, the names they answer to,
//! and how many replicas each runs (`deploy.replicas`, or the older `scale`).

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml_ng::Value;

use super::{ImportError, Note};

#[derive(Clone, Debug)]
pub struct Service {
    pub name: String,
    /// Names other containers reach it by: the service name, its
    /// `container_name`, `hostname` and network aliases.
    pub hosts: Vec<String>,
    pub replicas: u32,
    /// Line of the service's key in the file (for comments).
    pub line: usize,
    pub image: Option<String>,
}

/// Parses a compose file. Tabs in indentation are an error naming the line
/// (YAML forbids them).
pub fn parse(src: &str, file: &Path, notes: &mut Vec<Note>) -> Result<Vec<Service>, ImportError> {
    for (i, l) in src.lines().enumerate() {
        let indent: String = l.chars().take_while(|c| c.is_whitespace()).collect();
        if indent.contains('\t') && !l.trim().is_empty() {
            return Err(ImportError::Compose {
                file: file.to_path_buf(),
                line: Some(i + 1),
                message: "this line is indented with a tab, which YAML forbids: indent with spaces".into(),
            });
        }
    }
    let mut v: Value = serde_yaml_ng::from_str(src).map_err(|e| ImportError::Compose {
        file: file.to_path_buf(),
        line: e.location().map(|l| l.line()),
        message: e.to_string(),
    })?;
    v.apply_merge().map_err(|e| ImportError::Compose {
        file: file.to_path_buf(),
        line: e.location().map(|l| l.line()),
        message: e.to_string(),
    })?;
    let Some(services) = v.get("services").and_then(Value::as_mapping) else {
        return Err(ImportError::Compose {
            file: file.to_path_buf(),
            line: None,
            message: "no `services:` mapping: not a docker-compose file".into(),
        });
    };
    let mut out = Vec::new();
    for (k, s) in services {
        let Some(name) = k.as_str() else { continue };
        let line = find_key_line(src, name);
        let mut hosts = vec![name.to_string()];
        for key in ["container_name", "hostname"] {
            if let Some(h) = s.get(key).and_then(Value::as_str) {
                hosts.push(h.to_string());
            }
        }
        if let Some(nets) = s.get("networks").and_then(Value::as_mapping) {
            for (_, n) in nets {
                if let Some(aliases) = n.get("aliases").and_then(Value::as_sequence) {
                    hosts.extend(aliases.iter().filter_map(Value::as_str).map(str::to_string));
                }
            }
        }
        let replicas_v = s
            .get("deploy")
            .and_then(|d| d.get("replicas"))
            .or_else(|| s.get("scale"));
        let replicas = match replicas_v {
            None => 1,
            Some(Value::Number(n)) => n.as_u64().map(|n| n.min(100_000) as u32).unwrap_or(1),
            Some(Value::String(t)) => match interpolate_default(t) {
                Some(n) => {
                    notes.push(Note::new(
                        line,
                        format!("service `{name}`: replicas `{t}` read as its default, {n}"),
                    ));
                    n
                }
                None => {
                    notes.push(Note::new(
                        line,
                        format!("service `{name}`: replicas `{t}` cannot be read: 1 assumed"),
                    ));
                    1
                }
            },
            Some(_) => 1,
        };
        let image = s.get("image").and_then(Value::as_str).map(str::to_string);
        out.push(Service {
            name: name.to_string(),
            hosts,
            replicas,
            line,
            image,
        });
    }
    Ok(out)
}

/// `${VAR:-2}`, `${VAR-2}` or a plain number: the number.
fn interpolate_default(t: &str) -> Option<u32> {
    let t = t.trim();
    if let Ok(n) = t.parse() {
        return Some(n);
    }
    let inner = t.strip_prefix("${")?.strip_suffix('}')?;
    let (_, d) = inner.split_once(":-").or_else(|| inner.split_once('-'))?;
    d.trim().parse().ok()
}

/// The line of `name:` as a key (first match indented under `services`).
fn find_key_line(src: &str, name: &str) -> usize {
    let key = format!("{name}:");
    let mut in_services = false;
    for (i, l) in src.lines().enumerate() {
        let t = l.trim_start();
        if l.starts_with("services:") {
            in_services = true;
            continue;
        }
        if in_services && l.len() > t.len() && (t.starts_with(&key) || t.starts_with(&format!("\"{name}\":"))) {
            return i + 1;
        }
    }
    0
}

/// Services by every name they answer to.
pub fn by_host(services: &[Service]) -> BTreeMap<&str, &Service> {
    let mut m = BTreeMap::new();
    for s in services {
        for h in &s.hosts {
            m.entry(h.as_str()).or_insert(s);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::interpolate_default;

    #[test]
    fn replica_defaults() {
        assert_eq!(interpolate_default("3"), Some(3));
        assert_eq!(interpolate_default("${R:-2}"), Some(2));
        assert_eq!(interpolate_default("${R-4}"), Some(4));
        assert_eq!(interpolate_default("${R}"), None);
    }
}
