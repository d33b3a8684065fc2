//! Replaying an HAProxy log: connect times from each line's accept date,
//! optionally session lengths from its total time `Tt` and client
//! addresses for `source` hashing.
//!
//! Reads HAProxy's default TCP log format (`option tcplog`: `client:port
//! [accept_date] frontend backend/server Tw/Tc/Tt bytes …`) and HTTP log
//! format (`option httplog`: `… TR/Tw/Tc/Tr/Ta status bytes …`, where `Ta`
//! is the total time; the HTTPS variant's extra fields are ignored), with or
//! without a syslog prefix: the fields are found by the first `addr:port`
//! followed by a bracketed accept date. The file is streamed line by line,
//! never read whole.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use crate::time::SimDuration;

/// What a log gives a population, in arrival order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogReplay {
    /// Arrival offsets, sorted: (accept date − the first one) × time_scale + start.
    pub times: Vec<SimDuration>,
    /// With `sessions = true`: each arrival's session length (its `Tt`).
    pub sessions: Vec<SimDuration>,
    /// With `sources = true`: each arrival's client address, numbered in
    /// order of first appearance.
    pub sources: Vec<u32>,
    /// Lines read (blank lines aside).
    pub lines: u64,
    /// Malformed lines skipped (`lenient = true`), and the first of them.
    pub skipped: u64,
    pub first_skipped: Option<usize>,
    /// Distinct client addresses.
    pub addresses: u32,
}

/// How to read a log.
#[derive(Clone, Copy, Debug)]
pub struct ReadOptions {
    pub time_scale: f64,
    pub start: SimDuration,
    pub sessions: bool,
    pub sources: bool,
    pub lenient: bool,
}

/// One parsed line.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Accept date, ms since 1970-01-01 (the log's local time).
    pub accept_ms: i64,
    /// The client address without its port.
    pub client: String,
    /// Total time (`Tt` in TCP logs, `Ta` in HTTP logs), as logged: `None`
    /// when it is `-1` or logged early (`+N`, `option logasap`).
    pub total_ms: Option<u64>,
    pub http: bool,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `[06/Feb/2009:12:14:14.655]` → ms since the epoch.
fn accept_date(w: &str) -> Option<i64> {
    let t = w.strip_prefix('[')?.strip_suffix(']')?;
    let mut it = t.splitn(3, '/');
    let d: i64 = it.next()?.parse().ok()?;
    let mon = it.next()?;
    let m = MONTHS.iter().position(|x| *x == mon)? as i64 + 1;
    let rest = it.next()?;
    let mut p = rest.splitn(4, ':');
    let y: i64 = p.next()?.parse().ok()?;
    let hh: i64 = p.next()?.parse().ok()?;
    let mm: i64 = p.next()?.parse().ok()?;
    let ss = p.next()?;
    let (s, frac) = ss.split_once('.').unwrap_or((ss, "0"));
    let s: i64 = s.parse().ok()?;
    let ms: i64 = format!("{frac:0<3}")[..3].parse().ok()?;
    if !(1..=31).contains(&d) || hh > 23 || mm > 59 || s > 60 {
        return None;
    }
    Some(((days_from_civil(y, m, d) * 24 + hh) * 60 + mm) * 60_000 + s * 1000 + ms)
}

fn client_addr(w: &str) -> Option<&str> {
    let (ip, port) = w.rsplit_once(':')?;
    (!ip.is_empty() && !port.is_empty() && port.chars().all(|c| c.is_ascii_digit())).then_some(ip)
}

/// Parses one log line; `Err` says why it is not an HAProxy TCP or HTTP log line.
pub fn parse_line(line: &str) -> Result<Entry, String> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let Some(i) = (0..w.len().saturating_sub(1))
        .find(|&i| w[i + 1].starts_with('[') && client_addr(w[i]).is_some() && accept_date(w[i + 1]).is_some())
    else {
        return Err("no `client:port [dd/Mon/yyyy:hh:mm:ss.ms]` (an HAProxy TCP or HTTP log line starts so)".into());
    };
    let accept_ms = accept_date(w[i + 1]).expect("checked");
    let client = client_addr(w[i]).expect("checked").to_string();
    let timers = w
        .get(i + 4)
        .ok_or("the line ends before its timers (Tw/Tc/Tt or TR/Tw/Tc/Tr/Ta)")?;
    let parts: Vec<&str> = timers.split('/').collect();
    let http = match parts.len() {
        3 => false,
        5 => true,
        _ => {
            return Err(format!(
                "`{timers}` is not a timer field (Tw/Tc/Tt for tcplog, TR/Tw/Tc/Tr/Ta for httplog)"
            ));
        }
    };
    for p in &parts {
        if p.trim_start_matches('+').parse::<i64>().is_err() {
            return Err(format!("`{timers}`: timer `{p}` is not a number"));
        }
    }
    let last = parts[parts.len() - 1];
    let total_ms = if last.starts_with('+') {
        None
    } else {
        last.parse::<i64>().ok().filter(|&v| v >= 0).map(|v| v as u64)
    };
    Ok(Entry {
        accept_ms,
        client,
        total_ms,
        http,
    })
}

/// Reads a whole log (streamed). Errors are `file:line: message`.
pub fn read(path: &Path, o: ReadOptions) -> Result<LogReplay, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let reader = std::io::BufReader::new(f);
    let mut rows: Vec<(i64, u64, u32)> = Vec::new();
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut out = LogReplay::default();
    for (n, line) in reader.lines().enumerate() {
        let no = n + 1;
        let line = line.map_err(|e| format!("`{}` line {no}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        out.lines += 1;
        let parsed = parse_line(&line).and_then(|e| {
            if o.sessions && e.total_ms.is_none() {
                Err(
                    "the total time is -1 or logged before the session ended (`+`, option logasap): no session length"
                        .into(),
                )
            } else {
                Ok(e)
            }
        });
        match parsed {
            Ok(e) => {
                let next = ids.len() as u32;
                let id = if o.sources {
                    *ids.entry(e.client).or_insert(next)
                } else {
                    0
                };
                rows.push((e.accept_ms, e.total_ms.unwrap_or(0), id));
                if rows.len() > 50_000_000 {
                    return Err(format!("`{}`: more than 50 000 000 connections", path.display()));
                }
            }
            Err(m) if o.lenient => {
                out.skipped += 1;
                out.first_skipped.get_or_insert(no);
                let _ = m;
            }
            Err(m) => {
                return Err(format!(
                    "`{}` line {no}: {m} (set `lenient = true` on the arrival to skip and count such lines)",
                    path.display()
                ));
            }
        }
    }
    if rows.is_empty() {
        return Err(format!("`{}` has no HAProxy log line", path.display()));
    }
    // Logged at the end of each session: sort by accept date (stable).
    rows.sort_by_key(|r| r.0);
    let t0 = rows[0].0;
    for (t, tt, id) in &rows {
        // Whole nanoseconds, exact when time_scale is 1.
        let offset_ns = ((t - t0) as f64 * o.time_scale * 1e6).round() as u64;
        out.times.push(o.start + SimDuration(offset_ns));
        if o.sessions {
            out.sessions.push(SimDuration::from_millis(*tt));
        }
        if o.sources {
            out.sources.push(*id);
        }
    }
    out.addresses = ids.len() as u32;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_and_http_lines_with_and_without_syslog() {
        let tcp = "Feb  6 12:12:56 localhost haproxy[14387]: 10.0.1.2:33313 [06/Feb/2009:12:12:51.443] fnt bck/srv1 0/0/5007 212 -- 0/0/0/0/3 0/0";
        let e = parse_line(tcp).unwrap();
        assert_eq!(e.client, "10.0.1.2");
        assert_eq!(e.total_ms, Some(5007));
        assert!(!e.http);
        let bare = parse_line(tcp.split_once("]: ").unwrap().1).unwrap();
        assert_eq!(bare, e);
        let http = "10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 {1wt.eu} {} \"GET /index.html HTTP/1.1\"";
        let h = parse_line(http).unwrap();
        assert!(h.http);
        assert_eq!(h.total_ms, Some(109));
        assert_eq!(h.accept_ms - e.accept_ms, 83_212);
        // 2009-02-06 12:12:51.443 UTC
        assert_eq!(e.accept_ms, 1_233_922_371_443);
        let early = parse_line("1.2.3.4:5 [01/Jan/2026:00:00:00.000] f b/s 0/0/+0 +0 -- 0/0/0/0/0 0/0").unwrap();
        assert_eq!(early.total_ms, None);
        assert!(parse_line("GET / HTTP/1.1 200").is_err());
        assert!(parse_line("1.2.3.4:5 [01/Jan/2026:00:00:00.000] f b/s 0/x/1").is_err());
    }
}
