//! `wscap import`: an HAProxy configuration (and optionally a
//! docker-compose file) turned into a commented, valid scenario.
//!
//! What it reads: `global` (`maxconn`, `nbthread`), the `defaults` section
//! a proxy inherits (by position or `from`), the chosen `backend` or
//! `listen` (`balance` with its arguments, `hash-type`, `timeout connect` /
//! `queue` / `check`, `retries`, `option redispatch`, `default-server`,
//! `server` and `server-template` lines with `maxconn`, `maxqueue`,
//! `weight`, `check`, `inter`, `fastinter`, `downinter`, `fall`, `rise`,
//! `slowstart`, `backup`, `disabled`) and the frontends that route to it
//! (`bind … ssl crt` → TLS, `maxconn`). Every key written carries the cfg
//! line it came from; every directive not modelled is listed in the
//! output and returned as a [`Note`] (the CLI prints them as warnings).
//! The traffic section is a marked template: haproxy.cfg says nothing
//! about clients.

mod cfg;
mod compose;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use cfg::{Kind, Line, Section};

/// A warning about the input: a line (0 when it has none) and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub line: usize,
    pub message: String,
    /// The file it is about (filled in when known).
    pub file: Option<PathBuf>,
}

impl Note {
    fn new(line: usize, message: impl Into<String>) -> Note {
        Note {
            line,
            message: message.into(),
            file: None,
        }
    }
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(p) = &self.file {
            write!(f, "{}", p.display())?;
            if self.line > 0 {
                write!(f, ":{}", self.line)?;
            }
            write!(f, ": ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// Why a configuration could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: cannot read: {source}", file.display())]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{}:{line}: not an HAProxy configuration: {message}", file.display())]
    NotHaproxy {
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}:{line}: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Compose {
        file: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("{}: {message}", file.display())]
    Backend { file: PathBuf, message: String },
    /// The scenario written does not load: a bug in the importer.
    #[error("the imported scenario does not validate (a bug in wscap import):\n{0}")]
    Invalid(String),
}

/// The result: the scenario's text and the warnings.
#[derive(Debug)]
pub struct Imported {
    pub toml: String,
    pub notes: Vec<Note>,
    /// The backend (or listen) imported.
    pub backend: String,
}

/// Imports `cfg_path` (with `compose`), choosing `backend` or guessing it.
pub fn import(cfg_path: &Path, compose_path: Option<&Path>, backend: Option<&str>) -> Result<Imported, ImportError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| ImportError::Read {
            file: p.to_path_buf(),
            source,
        })
    };
    let src = read(cfg_path)?;
    let compose = match compose_path {
        Some(p) => Some((p, read(p)?)),
        None => None,
    };
    import_str(&src, cfg_path, compose.as_ref().map(|(p, s)| (*p, s.as_str())), backend)
}

/// [`import`] over texts already read (`file` names are for messages).
pub fn import_str(
    src: &str,
    file: &Path,
    compose: Option<(&Path, &str)>,
    backend: Option<&str>,
) -> Result<Imported, ImportError> {
    let mut cfg_notes = Vec::new();
    let mut sections = cfg::parse(src, file, &mut cfg_notes)?;
    let mut compose_notes = Vec::new();
    let services = match compose {
        Some((p, s)) => Some(compose::parse(s, p, &mut compose_notes)?),
        None => None,
    };
    let mut im = Importer {
        file_name: file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "haproxy.cfg".into()),
        notes: cfg_notes,
        unmodelled: Vec::new(),
    };
    name_nameless_backends(&mut sections, &mut im);
    let chosen = im.choose_backend(&sections, backend, file)?;
    let toml = im.build(&sections, chosen, services.as_deref(), compose.map(|c| c.0), file)?;
    im.notes.sort_by_key(|n| n.line);
    let mut notes: Vec<Note> = im
        .notes
        .into_iter()
        .map(|mut n| {
            n.file = Some(file.to_path_buf());
            n
        })
        .collect();
    for mut n in compose_notes {
        n.file = compose.map(|c| c.0.to_path_buf());
        notes.push(n);
    }
    // Validate what was written: it must load as it stands.
    let name = sections[chosen].name.clone().unwrap_or_default();
    if let Err(e) = crate::scenario::parse(&toml, Path::new("imported.toml"), "imported", Path::new(".")) {
        return Err(ImportError::Invalid(format!("{e}\n---\n{toml}")));
    }
    Ok(Imported {
        toml,
        notes,
        backend: name,
    })
}

/// Where a value came from.
#[derive(Clone, Debug)]
struct Src {
    line: usize,
    text: String,
}

impl Src {
    fn of(l: &Line) -> Src {
        Src {
            line: l.no,
            text: l.text.clone(),
        }
    }
}

type Val<T> = Option<(T, Src)>;

/// Server parameters (`server`, `server-template`, `default-server`).
#[derive(Clone, Debug, Default)]
struct ServerParams {
    maxconn: Val<u32>,
    maxqueue: Val<u32>,
    weight: Val<u32>,
    check: Val<bool>,
    inter: Val<String>,
    fastinter: Val<String>,
    downinter: Val<String>,
    fall: Val<u32>,
    rise: Val<u32>,
    slowstart: Val<String>,
    backup: Val<bool>,
    disabled: Val<bool>,
}

/// Server keywords that take no argument.
const FLAGS: &[&str] = &[
    "check",
    "no-check",
    "backup",
    "no-backup",
    "disabled",
    "enabled",
    "ssl",
    "no-ssl",
    "check-ssl",
    "no-check-ssl",
    "send-proxy",
    "no-send-proxy",
    "send-proxy-v2",
    "no-send-proxy-v2",
    "send-proxy-v2-ssl",
    "send-proxy-v2-ssl-cn",
    "check-send-proxy",
    "agent-check",
    "no-agent-check",
    "non-stick",
    "stick",
    "tfo",
    "allow-0rtt",
    "no-sslv3",
    "no-tlsv10",
    "no-tlsv11",
    "no-tlsv12",
    "no-tlsv13",
    "force-sslv3",
    "force-tlsv10",
    "force-tlsv11",
    "force-tlsv12",
    "force-tlsv13",
    "no-tls-tickets",
    "tls-tickets",
    "no-verifyhost",
    "check-via-socks4",
    "ws",
    "resolve-opts",
    "no-ssl-reuse",
    "ssl-reuse",
];

struct ServerLine {
    src: Src,
    name: String,
    host: String,
    /// 1 for `server`, NUM for `server-template`.
    slots: u32,
    template: bool,
    params: ServerParams,
}

struct Importer {
    file_name: String,
    notes: Vec<Note>,
    /// Directives read but not modelled: (line, text, why).
    unmodelled: Vec<(usize, String, String)>,
}

/// A duration as HAProxy writes it (a bare number is milliseconds) → wscap's spelling.
fn duration(s: &str) -> Option<String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "" | "ms" => {
            if n.is_multiple_of(1000) && n > 0 {
                format!("{}s", n / 1000)
            } else {
                format!("{n}ms")
            }
        }
        "us" => format!("{n}us"),
        "s" => format!("{n}s"),
        "m" => format!("{n}m"),
        "h" => format!("{n}h"),
        "d" => format!("{}h", n * 24),
        _ => return None,
    })
}

fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() { "imported".into() } else { s }
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A backend line with no name: named after the backend a frontend uses
/// but nobody defines (the seed's `use_backend all`), with a warning.
fn name_nameless_backends(sections: &mut [Section], im: &mut Importer) {
    let defined: BTreeSet<String> = sections
        .iter()
        .filter(|s| matches!(s.kind, Kind::Backend | Kind::Listen))
        .filter_map(|s| s.name.clone())
        .collect();
    let mut wanted: Vec<(String, usize)> = Vec::new();
    for s in sections.iter() {
        if matches!(s.kind, Kind::Frontend | Kind::Listen | Kind::Defaults) {
            for l in &s.body {
                if matches!(l.words[0].as_str(), "use_backend" | "default_backend")
                    && let Some(b) = l.words.get(1)
                    && !defined.contains(b)
                    && !wanted.iter().any(|(w, _)| w == b)
                {
                    wanted.push((b.clone(), l.no));
                }
            }
        }
    }
    let mut wanted = wanted.into_iter();
    for s in sections.iter_mut() {
        if s.kind == Kind::Backend && s.name.is_none() {
            let line = s.header.no;
            match wanted.next() {
                Some((b, used_at)) => {
                    im.notes.push(Note::new(
                        line,
                        format!(
                            "`backend` has no name (HAProxy refuses this); named `{b}`, the backend that line \
                             {used_at} uses and nothing defines"
                        ),
                    ));
                    s.name = Some(b);
                }
                None => {
                    let b = format!("backend-line-{line}");
                    im.notes.push(Note::new(
                        line,
                        format!("`backend` has no name (HAProxy refuses this); called `{b}` here"),
                    ));
                    s.name = Some(b);
                }
            }
        }
    }
}

fn has_servers(s: &Section) -> bool {
    matches!(s.kind, Kind::Backend | Kind::Listen)
        && s.body
            .iter()
            .any(|l| matches!(l.words[0].as_str(), "server" | "server-template"))
}

impl Importer {
    fn note(&mut self, line: usize, message: impl Into<String>) {
        self.notes.push(Note::new(line, message));
    }

    fn skip(&mut self, l: &Line, why: &str) {
        let why = reason(&l.words).unwrap_or(why);
        self.unmodelled.push((l.no, l.text.clone(), why.to_string()));
        self.notes
            .push(Note::new(l.no, format!("`{}`: not modelled ({why})", clip(&l.text))));
    }

    fn choose_backend(
        &mut self,
        sections: &[Section],
        wanted: Option<&str>,
        file: &Path,
    ) -> Result<usize, ImportError> {
        let candidates: Vec<usize> = (0..sections.len()).filter(|&i| has_servers(&sections[i])).collect();
        let names = |c: &[usize]| {
            c.iter()
                .filter_map(|&i| sections[i].name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(w) = wanted {
            return match sections
                .iter()
                .position(|s| matches!(s.kind, Kind::Backend | Kind::Listen) && s.name.as_deref() == Some(w))
            {
                Some(i) if has_servers(&sections[i]) => Ok(i),
                Some(_) => Err(ImportError::Backend {
                    file: file.to_path_buf(),
                    message: format!(
                        "backend `{w}` has no `server` line; backends with servers: {}",
                        names(&candidates)
                    ),
                }),
                None => Err(ImportError::Backend {
                    file: file.to_path_buf(),
                    message: format!(
                        "no backend or listen section `{w}`; choose one of: {}",
                        names(&candidates)
                    ),
                }),
            };
        }
        match candidates.len() {
            0 => Err(ImportError::Backend {
                file: file.to_path_buf(),
                message: "no backend or listen section has a `server` or `server-template` line: nothing to import"
                    .into(),
            }),
            1 => Ok(candidates[0]),
            _ => {
                // The first frontend's default backend, if it has servers.
                let mut pick = None;
                'f: for s in sections
                    .iter()
                    .filter(|s| matches!(s.kind, Kind::Frontend | Kind::Listen))
                {
                    for key in ["default_backend", "use_backend"] {
                        for l in s.body.iter().filter(|l| l.words[0] == key) {
                            if let Some(b) = l.words.get(1)
                                && let Some(&i) = candidates.iter().find(|&&i| sections[i].name.as_deref() == Some(b))
                            {
                                pick = Some(i);
                                break 'f;
                            }
                        }
                    }
                }
                let i = pick.unwrap_or(candidates[0]);
                self.note(
                    sections[i].header.no,
                    format!(
                        "{} backends have servers ({}); importing `{}` (the first one a frontend routes to); \
                         choose another with --backend NAME",
                        candidates.len(),
                        names(&candidates),
                        sections[i].name.clone().unwrap_or_default()
                    ),
                );
                Ok(i)
            }
        }
    }

    /// Reads server keywords from `words` into `p`; unknown ones are noted.
    fn server_params(&mut self, l: &Line, words: &[String], p: &mut ServerParams) {
        let mut i = 0;
        let src = Src::of(l);
        let mut skipped: Vec<String> = Vec::new();
        while i < words.len() {
            let k = words[i].as_str();
            let arg = words.get(i + 1).cloned();
            let num = |a: &Option<String>| a.as_deref().and_then(|a| a.parse::<u32>().ok());
            let mut took = 1;
            match k {
                "check" => p.check = Some((true, src.clone())),
                "no-check" => p.check = Some((false, src.clone())),
                "backup" => p.backup = Some((true, src.clone())),
                "no-backup" => p.backup = Some((false, src.clone())),
                "disabled" => p.disabled = Some((true, src.clone())),
                "enabled" => p.disabled = Some((false, src.clone())),
                "maxconn" | "maxqueue" | "weight" | "fall" | "rise" => {
                    took = 2;
                    match num(&arg) {
                        Some(v) => {
                            let slot = match k {
                                "maxconn" => &mut p.maxconn,
                                "maxqueue" => &mut p.maxqueue,
                                "weight" => &mut p.weight,
                                "fall" => &mut p.fall,
                                _ => &mut p.rise,
                            };
                            *slot = Some((v, src.clone()));
                        }
                        None => self.note(
                            l.no,
                            format!("`{k}` needs a whole number, got `{}`", arg.unwrap_or_default()),
                        ),
                    }
                }
                "inter" | "fastinter" | "downinter" | "slowstart" => {
                    took = 2;
                    match arg.as_deref().and_then(duration) {
                        Some(d) if k != "slowstart" && d.starts_with('0') => self.note(
                            l.no,
                            format!(
                                "`{k} {}`: a check interval must be above 0; ignored",
                                arg.unwrap_or_default()
                            ),
                        ),
                        Some(d) => {
                            let slot = match k {
                                "inter" => &mut p.inter,
                                "fastinter" => &mut p.fastinter,
                                "downinter" => &mut p.downinter,
                                _ => &mut p.slowstart,
                            };
                            *slot = Some((d, src.clone()));
                        }
                        None => self.note(
                            l.no,
                            format!("`{k}` needs a duration, got `{}`", arg.unwrap_or_default()),
                        ),
                    }
                }
                f if FLAGS.contains(&f) => skipped.push(f.to_string()),
                other => {
                    took = 2;
                    skipped.push(match &arg {
                        Some(a) => format!("{other} {a}"),
                        None => other.to_string(),
                    });
                }
            }
            i += took;
        }
        if !skipped.is_empty() {
            let why = "server parameters wscap does not model";
            let text = skipped.join(", ");
            self.unmodelled.push((l.no, text.clone(), why.into()));
            self.notes.push(Note::new(
                l.no,
                format!(
                    "`{text}` on `{} {}`: not modelled ({why})",
                    l.words[0],
                    l.words.get(1).map(String::as_str).unwrap_or("")
                ),
            ));
        }
    }

    fn build(
        &mut self,
        sections: &[Section],
        chosen: usize,
        services: Option<&[compose::Service]>,
        compose_path: Option<&Path>,
        file: &Path,
    ) -> Result<String, ImportError> {
        let be = &sections[chosen];
        let be_name = be.name.clone().unwrap_or_default();
        let f = self.file_name.clone();
        let at = |s: &Src| format!("{f}:{}: {}", s.line, clip(&s.text));

        // The defaults sections the backend inherits: `from NAME` (and that
        // section's own `from`, outermost first), else the last one before it.
        let mut chain: Vec<usize> = Vec::new();
        let mut cur = chosen;
        loop {
            let h = &sections[cur].header;
            let from = h
                .words
                .iter()
                .position(|w| w == "from")
                .and_then(|i| h.words.get(i + 1).cloned());
            let next = match from {
                Some(n) => sections
                    .iter()
                    .position(|s| s.kind == Kind::Defaults && s.name.as_deref() == Some(n.as_str())),
                None if cur == chosen => (0..chosen).rev().find(|&i| sections[i].kind == Kind::Defaults),
                None => None,
            };
            match next {
                Some(d) if !chain.contains(&d) => {
                    chain.insert(0, d);
                    cur = d;
                }
                _ => break,
            }
        }
        let defaults: Vec<&Section> = chain.iter().map(|&i| &sections[i]).collect();
        // Frontends routing to it (and the listen itself).
        let front_idx: Vec<usize> = (0..sections.len())
            .filter(|&i| {
                let s = &sections[i];
                i == chosen && s.kind == Kind::Listen
                    || matches!(s.kind, Kind::Frontend | Kind::Listen)
                        && s.body.iter().any(|l| {
                            matches!(l.words[0].as_str(), "default_backend" | "use_backend")
                                && l.words.get(1) == Some(&be_name)
                        })
            })
            .collect();
        let global_idx = sections.iter().position(|s| s.kind == Kind::Global);
        let global = global_idx.map(|i| &sections[i]);

        // Sections not imported.
        for (i, s) in sections.iter().enumerate() {
            let used = i == chosen || Some(i) == global_idx || chain.contains(&i) || front_idx.contains(&i);
            if !used {
                let why = match &s.kind {
                    Kind::Other(k) => format!("a `{k}` section"),
                    Kind::Defaults => "a defaults section the imported backend does not inherit".into(),
                    Kind::Global => "a second global section".into(),
                    _ => format!("does not route to backend `{be_name}`"),
                };
                self.unmodelled.push((
                    s.header.no,
                    s.header.text.clone(),
                    format!("section not imported: {why}"),
                ));
                self.note(s.header.no, format!("section `{}` not imported ({why})", s.header.text));
            }
        }

        // Knobs, read in order: defaults, then the backend (later wins).
        let mut balance: Val<Vec<String>> = None;
        let mut hash_type: Val<String> = None;
        let mut t_connect: Val<String> = None;
        let mut t_queue: Val<String> = None;
        let mut t_check: Val<String> = None;
        let mut retries: Val<u32> = None;
        let mut redispatch: Val<bool> = None;
        let mut fe_maxconn: Val<u32> = None;
        let mut dflt = ServerParams::default();
        let mut servers: Vec<ServerLine> = Vec::new();
        let mut mode: Val<String> = None;

        let scope: Vec<(&Section, bool)> = defaults
            .iter()
            .map(|d| (*d, false))
            .chain(std::iter::once((be, true)))
            .collect();
        for (sec, is_be) in scope {
            for l in &sec.body {
                let w = &l.words;
                let src = Src::of(l);
                match w[0].as_str() {
                    "balance" if w.len() > 1 => balance = Some((w[1..].to_vec(), src)),
                    "hash-type" if w.len() > 1 => {
                        if w.len() > 2 {
                            self.note(
                                l.no,
                                format!(
                                    "hash function/modifier `{}` not modelled (wscap hashes with SplitMix64)",
                                    w[2..].join(" ")
                                ),
                            );
                        }
                        hash_type = Some((w[1].clone(), src));
                    }
                    "timeout" | "contimeout" if w.len() > 1 => {
                        let (which, val) = if w[0] == "contimeout" {
                            ("connect", w.get(1))
                        } else {
                            (w[1].as_str(), w.get(2))
                        };
                        let d = val.and_then(|v| duration(v));
                        match (which, d) {
                            ("connect", Some(d)) => t_connect = Some((d, src)),
                            ("queue", Some(d)) => t_queue = Some((d, src)),
                            ("check", Some(d)) => t_check = Some((d, src)),
                            (_, None) if matches!(which, "connect" | "queue" | "check") => {
                                self.note(l.no, format!("`{}`: cannot read the duration", l.text))
                            }
                            _ => self.skip(l, "an inactivity or HTTP timeout: wscap models none"),
                        }
                    }
                    "retries" => match w.get(1).and_then(|v| v.parse().ok()) {
                        Some(v) => retries = Some((v, src)),
                        None => self.note(l.no, "`retries` needs a whole number"),
                    },
                    "option" if w.get(1).map(String::as_str) == Some("redispatch") => {
                        if let Some(iv) = w.get(2)
                            && iv != "-1"
                        {
                            self.note(
                                l.no,
                                format!(
                                    "`option redispatch {iv}`: wscap redispatches only on the last retry (HAProxy's -1)"
                                ),
                            );
                        }
                        redispatch = Some((w.get(2).is_none_or(|iv| iv != "0"), src));
                    }
                    "no" if w.get(1).map(String::as_str) == Some("option")
                        && w.get(2).map(String::as_str) == Some("redispatch") =>
                    {
                        redispatch = Some((false, src))
                    }
                    "maxconn" if !is_be || be.kind == Kind::Listen => match w.get(1).and_then(|v| v.parse().ok()) {
                        Some(v) => fe_maxconn = Some((v, src)),
                        None => self.note(l.no, "`maxconn` needs a whole number"),
                    },
                    "mode" => mode = w.get(1).map(|m| (m.clone(), src)),
                    "default-server" => {
                        let words = w[1..].to_vec();
                        self.server_params(l, &words, &mut dflt);
                    }
                    "server" | "server-template" if is_be => {
                        let template = w[0] == "server-template";
                        let need = if template { 4 } else { 3 };
                        if w.len() < need {
                            self.note(l.no, format!("`{}`: too few words, skipped", l.text));
                            continue;
                        }
                        let (slots, addr, rest) = if template {
                            let n = &w[2];
                            let slots = match n.split_once('-') {
                                Some((a, b)) => match (a.parse::<u32>(), b.parse::<u32>()) {
                                    (Ok(a), Ok(b)) if b >= a => b - a + 1,
                                    _ => 0,
                                },
                                None => n.parse().unwrap_or(0),
                            };
                            if slots == 0 {
                                self.note(l.no, format!("`{}`: cannot read the number of servers", l.text));
                                continue;
                            }
                            (slots, w[3].clone(), &w[4..])
                        } else {
                            (1, w[2].clone(), &w[3..])
                        };
                        let mut params = dflt.clone();
                        let rest = rest.to_vec();
                        self.server_params(l, &rest, &mut params);
                        servers.push(ServerLine {
                            src,
                            name: w[1].clone(),
                            host: host_of(&addr),
                            slots,
                            template,
                            params,
                        });
                    }
                    "bind" if be.kind == Kind::Listen && is_be => {}
                    "default_backend" | "use_backend" if be.kind == Kind::Listen && is_be => {}
                    _ => self.skip(
                        l,
                        if is_be {
                            "backend directive"
                        } else {
                            "defaults directive"
                        },
                    ),
                }
            }
        }

        // Frontends: TLS, maxconn.
        let mut tls: Option<Src> = None;
        let mut plain_bind: Option<Src> = None;
        for &fi in &front_idx {
            let fr = &sections[fi];
            if fr.kind == Kind::Frontend && fr.header.words.len() > 2 && !fr.header.words[2].starts_with("from") {
                self.note(
                    fr.header.no,
                    format!(
                        "`{}`: an address on the frontend line is refused by HAProxy 2.x (use `bind`); read as a bind",
                        fr.header.text
                    ),
                );
            }
            for l in &fr.body {
                let w = &l.words;
                match w[0].as_str() {
                    "bind" => {
                        if w.iter().any(|x| x == "ssl") && w.iter().any(|x| x == "crt" || x == "crt-list") {
                            tls.get_or_insert(Src::of(l));
                        } else if !w.iter().any(|x| x.starts_with("quic")) {
                            plain_bind.get_or_insert(Src::of(l));
                        }
                    }
                    "maxconn" => match w.get(1).and_then(|v| v.parse::<u32>().ok()) {
                        Some(v) => fe_maxconn = Some((v, Src::of(l))),
                        None => self.note(l.no, "`maxconn` needs a whole number"),
                    },
                    "default_backend" | "use_backend" | "mode" => {}
                    _ if fi == chosen => {} // the listen's own lines: read above
                    _ => self.skip(l, "frontend directive"),
                }
            }
        }
        if let (Some(t), Some(p)) = (&tls, &plain_bind) {
            self.note(
                p.line,
                format!(
                    "both a TLS bind (line {}) and a clear one: wscap models one listener, every client pays the \
                     TLS handshake",
                    t.line
                ),
            );
        }

        // Global: maxconn, nbthread.
        let mut g_maxconn: Val<u32> = None;
        let mut nbthread: Val<u32> = None;
        if let Some(g) = global {
            for l in &g.body {
                let w = &l.words;
                match w[0].as_str() {
                    "maxconn" => g_maxconn = w.get(1).and_then(|v| v.parse().ok()).map(|v| (v, Src::of(l))),
                    "nbthread" => nbthread = w.get(1).and_then(|v| v.parse().ok()).map(|v| (v, Src::of(l))),
                    "nbproc" => {
                        self.unmodelled
                            .push((l.no, l.text.clone(), "fatal since HAProxy 2.5; use nbthread".into()));
                        self.note(
                            l.no,
                            format!("`{}`: HAProxy 2.5+ refuses nbproc (use nbthread); ignored", l.text),
                        );
                    }
                    _ => self.skip(l, "global setting"),
                }
            }
        }

        // Servers, with compose.
        let by_host = services.map(compose::by_host);
        let compose_name = compose_path
            .and_then(|p| p.file_name())
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut count: u32 = 0;
        let mut weights: Vec<u32> = Vec::new();
        let mut per_line: Vec<String> = Vec::new();
        let mut used_services: BTreeSet<String> = BTreeSet::new();
        let mut live: Vec<&ServerLine> = Vec::new();
        for s in &servers {
            if s.params.backup.as_ref().is_some_and(|b| b.0) {
                self.unmodelled
                    .push((s.src.line, s.src.text.clone(), "backup server".into()));
                self.note(
                    s.src.line,
                    format!(
                        "server `{}` is a backup server: not modelled, left out of servers.count",
                        s.name
                    ),
                );
                continue;
            }
            if s.params.disabled.as_ref().is_some_and(|b| b.0) {
                self.unmodelled
                    .push((s.src.line, s.src.text.clone(), "disabled server".into()));
                self.note(
                    s.src.line,
                    format!(
                        "server `{}` is disabled (maintenance): left out of servers.count",
                        s.name
                    ),
                );
                continue;
            }
            let mut n = s.slots;
            let mut how = if s.template {
                format!("server-template `{}` of {} slots", s.name, s.slots)
            } else {
                format!("server `{}`", s.name)
            };
            if let Some(map) = &by_host {
                match map.get(s.host.as_str()) {
                    Some(svc) => {
                        used_services.insert(svc.name.clone());
                        let r = svc.replicas;
                        if s.template {
                            if r > s.slots {
                                self.note(
                                    s.src.line,
                                    format!(
                                        "service `{}` runs {r} replicas but the template has {} slots: {} get traffic",
                                        svc.name, s.slots, s.slots
                                    ),
                                );
                            }
                            n = r.min(s.slots);
                            how = format!(
                                "{how} filled by {n} replica(s) of compose service `{}` ({compose_name}:{})",
                                svc.name, svc.line
                            );
                        } else {
                            if r > 1 {
                                self.note(
                                    s.src.line,
                                    format!(
                                        "server `{}` names service `{}` of {r} replicas: counted as {r} servers \
                                         (HAProxy itself resolves a `server` line once; use server-template with \
                                         resolvers to reach every replica)",
                                        s.name, svc.name
                                    ),
                                );
                            }
                            n = r;
                            how = format!(
                                "{how} → compose service `{}` × {r} ({compose_name}:{})",
                                svc.name, svc.line
                            );
                        }
                    }
                    None => self.note(
                        s.src.line,
                        format!(
                            "server `{}` address `{}` is not a service of {compose_name}",
                            s.name, s.host
                        ),
                    ),
                }
            }
            if n == 0 {
                continue;
            }
            count += n;
            let w = s.params.weight.as_ref().map_or(1, |w| w.0);
            weights.extend(std::iter::repeat_n(w, n as usize));
            per_line.push(format!("{f}:{}: {how}", s.src.line));
            live.push(s);
        }
        if count == 0 {
            return Err(ImportError::Backend {
                file: file.to_path_buf(),
                message: format!("backend `{be_name}` has no active server (all backup, disabled or 0 replicas)"),
            });
        }
        if count > 100_000 {
            return Err(ImportError::Backend {
                file: file.to_path_buf(),
                message: format!("backend `{be_name}` has {count} servers; wscap simulates at most 100000"),
            });
        }

        // One value for all servers: the first's, with a note if they differ.
        let common = |im: &mut Importer, what: &str, get: &dyn Fn(&ServerParams) -> Option<String>| {
            let vals: Vec<(Option<String>, usize)> = live.iter().map(|s| (get(&s.params), s.src.line)).collect();
            let first = vals[0].0.clone();
            if vals.iter().any(|v| v.0 != first) {
                im.note(
                    vals[0].1,
                    format!("servers differ in `{what}`: wscap takes one value for all, the first server's"),
                );
            }
        };
        common(self, "maxconn", &|p| p.maxconn.as_ref().map(|v| v.0.to_string()));
        common(self, "maxqueue", &|p| p.maxqueue.as_ref().map(|v| v.0.to_string()));
        common(self, "check", &|p| p.check.as_ref().map(|v| v.0.to_string()));
        common(self, "inter", &|p| p.inter.as_ref().map(|v| v.0.clone()));
        common(self, "fall", &|p| p.fall.as_ref().map(|v| v.0.to_string()));
        common(self, "rise", &|p| p.rise.as_ref().map(|v| v.0.to_string()));
        common(self, "slowstart", &|p| p.slowstart.as_ref().map(|v| v.0.clone()));
        let p0 = live[0].params.clone();

        // ---- Write it. ----
        let mut o = String::new();
        let w = &mut o;
        let from_line = |s: &Src| format!("# {}", at(s));
        let _ = writeln!(
            w,
            "# Imported by `wscap import` from {f}{}: backend `{be_name}` (line {}).",
            if compose_path.is_some() {
                format!(" and {compose_name}")
            } else {
                String::new()
            },
            be.header.no
        );
        let _ = writeln!(
            w,
            "# Each key taken from the configuration names the line it came from;"
        );
        let _ = writeln!(
            w,
            "# keys marked TEMPLATE are not in the configuration: set them for your deployment."
        );
        let _ = writeln!(
            w,
            "# HAProxy semantics (2.x manual); the differences are listed in wscap's README."
        );
        if let Some((m, s)) = &mode {
            let _ = writeln!(
                w,
                "# `mode {m}` ({f}:{}): a WebSocket tunnel is modelled the same in tcp and http mode.",
                s.line
            );
        }
        let _ = writeln!(w);
        let _ = writeln!(w, "name = {}", toml_str(&sanitize(&be_name)));
        let _ = writeln!(
            w,
            "description = {}",
            toml_str(&format!("Imported from {f}, backend {be_name}"))
        );
        let _ = writeln!(w, "duration = \"10m\"       # TEMPLATE: how long to simulate");
        let _ = writeln!(w, "warmup = \"1m\"          # TEMPLATE: not counted");
        let _ = writeln!(w, "replications = 5");
        let _ = writeln!(w);
        let _ = writeln!(w, "[servers]");
        let _ = writeln!(w, "count = {count}");
        for pl in &per_line {
            let _ = writeln!(w, "#   {pl}");
        }
        let _ = writeln!(
            w,
            "max_connections = 10000  # TEMPLATE: the socket server's own connection cap is not in {f}"
        );
        let _ = writeln!(w);

        let _ = writeln!(w, "[balancer]");
        // balance
        let (strategy, bsrc) = match &balance {
            Some((words, s)) => (self.strategy(words, s.line, count), Some(s.clone())),
            None => ("roundrobin".to_string(), None),
        };
        match &bsrc {
            Some(s) => {
                let _ = writeln!(w, "balance = {}  {}", toml_str(&strategy), from_line(s));
            }
            None => {
                let _ = writeln!(
                    w,
                    "balance = \"roundrobin\"  # no `balance` line: HAProxy's default is roundrobin"
                );
            }
        }
        if let Some((h, s)) = &hash_type {
            match h.as_str() {
                "map-based" | "consistent" => {
                    let _ = writeln!(w, "hash_type = {}  {}", toml_str(h), from_line(s));
                }
                other => self.note(s.line, format!("hash-type `{other}` unknown: map-based assumed")),
            }
        }
        if let Some(&big) = weights.iter().find(|&&x| x > 256) {
            self.note(
                live[0].src.line,
                format!("weight {big} is above HAProxy's maximum of 256: weights capped at 256"),
            );
            weights.iter_mut().for_each(|x| *x = (*x).min(256));
        }
        if weights.iter().all(|&x| x == 0) {
            self.note(
                live[0].src.line,
                "every server has weight 0 (HAProxy would send them nothing): weights left out",
            );
            weights.iter_mut().for_each(|x| *x = 1);
        }
        if weights.iter().any(|&x| x != weights[0]) {
            let list: Vec<String> = weights.iter().map(|x| x.to_string()).collect();
            let _ = writeln!(w, "weights = [{}]  # `weight` on each server line", list.join(", "));
        } else if let Some((v, s)) = &p0.weight {
            let _ = writeln!(w, "# every server has weight {v} ({}): equal weights, left out", at(s));
        }
        if let Some((v, s)) = &p0.maxconn {
            if *v > 0 {
                let _ = writeln!(w, "maxconn = {v}  {}", from_line(s));
            } else {
                let _ = writeln!(w, "# maxconn 0 = unlimited ({}): the server's own cap applies", at(s));
            }
        } else {
            let _ = writeln!(
                w,
                "# no server maxconn (HAProxy: unlimited): the socket servers' max_connections applies"
            );
        }
        if let Some((v, s)) = &p0.maxqueue {
            let _ = writeln!(w, "maxqueue = {v}  {}", from_line(s));
        }
        match (&t_connect, &t_queue) {
            (_, Some((d, s))) => {
                let _ = writeln!(w, "timeout_queue = {}  {}", toml_str(d), from_line(s));
            }
            (Some((d, s)), None) => {
                let _ = writeln!(
                    w,
                    "timeout_queue = {}  # no `timeout queue`: HAProxy uses `timeout connect` ({f}:{})",
                    toml_str(d),
                    s.line
                );
            }
            (None, None) => {}
        }
        match &t_connect {
            Some((d, s)) => {
                let _ = writeln!(w, "timeout_connect = {}  {}", toml_str(d), from_line(s));
            }
            None => {
                let _ = writeln!(
                    w,
                    "# no `timeout connect` (HAProxy waits forever and warns): wscap's default 5s applies"
                );
            }
        }
        match &retries {
            Some((v, s)) => {
                let _ = writeln!(w, "retries = {}  {}", v.min(&100), from_line(s));
            }
            None => {
                let _ = writeln!(w, "retries = 3  # no `retries`: HAProxy's default");
            }
        }
        if let Some((v, s)) = &redispatch {
            let _ = writeln!(w, "redispatch = {v}  {}", from_line(s));
        }
        if let Some((d, s)) = &p0.slowstart {
            let _ = writeln!(w, "slowstart = {}  {}", toml_str(d), from_line(s));
        }
        let node_max = match (&g_maxconn, &fe_maxconn) {
            (Some(g), Some(fe)) => Some(if fe.0 < g.0 { fe } else { g }),
            (Some(g), None) => Some(g),
            (None, Some(fe)) => Some(fe),
            (None, None) => None,
        };
        if let Some((v, s)) = node_max
            && *v > 0
        {
            let _ = writeln!(
                w,
                "node_maxconn = {v}  {}  (global and frontend maxconn: the lower)",
                from_line(s)
            );
        }
        if let Some((v, s)) = &nbthread
            && *v > 0
        {
            let _ = writeln!(w, "nbthread = {v}  {}", from_line(s));
        }
        let _ = writeln!(w);
        let _ = writeln!(w, "[balancer.health_check]");
        let checked = p0.check.as_ref().is_some_and(|c| c.0);
        match &p0.check {
            Some((true, s)) => {
                let _ = writeln!(w, "enabled = true  {}", from_line(s));
            }
            _ => {
                let _ = writeln!(
                    w,
                    "enabled = false  # no `check` on the servers: HAProxy does not health-check them"
                );
            }
        }
        if checked {
            for (key, v) in [
                ("inter", &p0.inter),
                ("fastinter", &p0.fastinter),
                ("downinter", &p0.downinter),
            ] {
                if let Some((d, s)) = v {
                    let _ = writeln!(w, "{key} = {}  {}", toml_str(d), from_line(s));
                }
            }
            for (key, v) in [("fall", &p0.fall), ("rise", &p0.rise)] {
                if let Some((n, s)) = v {
                    let _ = writeln!(w, "{key} = {}  {}", (*n).max(1), from_line(s));
                }
            }
            if let Some((d, s)) = &t_check
                && !d.starts_with('0')
            {
                let _ = writeln!(w, "timeout = {}  {}", toml_str(d), from_line(s));
            }
        }
        if let Some(s) = &tls {
            let _ = writeln!(w);
            let _ = writeln!(w, "[balancer.tls]  {}", from_line(s));
            let _ = writeln!(
                w,
                "key = \"rsa-2048\"  # TEMPLATE: the certificate's key type is not in {f}; \"ecdsa-p256\" for an ECDSA key"
            );
        }

        // Compose services not behind the backend.
        if let Some(svcs) = services {
            let others: Vec<&compose::Service> = svcs.iter().filter(|s| !used_services.contains(&s.name)).collect();
            if !others.is_empty() {
                let _ = writeln!(w);
                let _ = writeln!(
                    w,
                    "# Other services of {compose_name} (not behind backend `{be_name}`):"
                );
                for s in others {
                    let img = s.image.clone().unwrap_or_default();
                    let hint = if img.starts_with("redis") {
                        " (Redis: see [cache] or relay = { kind = \"redis\" })"
                    } else if img.starts_with("haproxy") {
                        " (the balancer itself)"
                    } else if img.starts_with("mysql") || img.starts_with("mariadb") || img.starts_with("postgres") {
                        " (a database: see [database])"
                    } else {
                        ""
                    };
                    let _ = writeln!(w, "#   {compose_name}:{}: `{}` {img}{hint}", s.line, s.name);
                }
            }
        }

        // Traffic template.
        let _ = writeln!(w);
        let _ = writeln!(w, "# ====================== TRAFFIC: TEMPLATE ======================");
        let _ = writeln!(
            w,
            "# {f} says nothing about the clients: every value below is a placeholder."
        );
        let _ = writeln!(
            w,
            "# Set the arrival process, session length, RTT and reconnect policy, or"
        );
        let _ = writeln!(
            w,
            "# replay HAProxy's own log: arrival = {{ process = \"haproxy-log\", file = \"haproxy.log\" }}."
        );
        let _ = writeln!(w, "[[population]]");
        let _ = writeln!(w, "name = \"clients\"                                      # TEMPLATE");
        let _ = writeln!(w, "role = \"player\"                                       # TEMPLATE");
        let _ = writeln!(
            w,
            "arrival = {{ process = \"poisson\", rate = \"10/s\" }}       # TEMPLATE"
        );
        let _ = writeln!(
            w,
            "session = {{ dist = \"exponential\", mean = \"5m\" }}        # TEMPLATE"
        );
        let _ = writeln!(
            w,
            "rtt = {{ dist = \"lognormal\", median = \"40ms\", sigma = 0.5 }}  # TEMPLATE"
        );
        let _ = writeln!(
            w,
            "reconnect = {{ policy = \"exponential\", base = \"1s\", cap = \"30s\", jitter = \"full\", max_attempts = 10 }}  # TEMPLATE"
        );
        let _ = writeln!(w, "# ==================== END OF TRAFFIC TEMPLATE ====================");

        if !self.unmodelled.is_empty() {
            let _ = writeln!(w);
            let _ = writeln!(w, "# Not modelled by wscap (read, and left out):");
            let mut list = self.unmodelled.clone();
            list.sort_by_key(|u| u.0);
            for (line, text, why) in list {
                let _ = writeln!(w, "#   {f}:{line}: {} ({why})", clip(&text));
            }
        }
        Ok(o)
    }

    /// `balance` words → a wscap strategy.
    fn strategy(&mut self, words: &[String], line: usize, count: u32) -> String {
        let algo = words[0].as_str();
        if words.len() > 1 && algo != "uri" && !algo.starts_with("url_param") {
            self.note(line, format!("`balance {}`: arguments not modelled", words.join(" ")));
        }
        match algo {
            "roundrobin" | "static-rr" | "leastconn" | "first" | "source" | "random" => algo.to_string(),
            "uri" => {
                if words.len() > 1 {
                    self.note(
                        line,
                        format!(
                            "`balance {}`: the URI's arguments are not modelled: hashed per room (`uri` = `room`)",
                            words.join(" ")
                        ),
                    );
                }
                "uri".into()
            }
            a if a.starts_with("random(") => {
                let d = a
                    .trim_start_matches("random(")
                    .trim_end_matches(')')
                    .parse::<u32>()
                    .unwrap_or(2)
                    .max(1);
                if d > count {
                    self.note(
                        line,
                        format!("`balance {a}` draws more servers than the {count} there are: random({count})"),
                    );
                    format!("random({count})")
                } else {
                    format!("random({d})")
                }
            }
            a if a.starts_with("url_param") || a.starts_with("hdr(") || a.starts_with("rdp-cookie") || a == "hash" => {
                self.note(
                    line,
                    format!(
                        "`balance {}` hashes a request key: modelled as `source` (a key per client); use `room` if \
                         the key names a room",
                        words.join(" ")
                    ),
                );
                "source".into()
            }
            other => {
                self.note(line, format!("`balance {other}` unknown: roundrobin assumed"));
                "roundrobin".into()
            }
        }
    }
}

/// Why a directive is not modelled, for the usual ones.
fn reason(words: &[String]) -> Option<&'static str> {
    let w0 = words[0].as_str();
    let w1 = words.get(1).map(String::as_str).unwrap_or("");
    Some(match (w0, w1) {
        ("timeout", "tunnel") => {
            "idle timeout of a WebSocket tunnel: wscap's sessions end by their length, not by idleness"
        }
        ("timeout", _) => "an inactivity or HTTP timeout: wscap models none",
        ("log", _) | ("option", "httplog" | "tcplog" | "dontlognull" | "log-health-checks") | ("log-format", _) => {
            "logging"
        }
        ("option", "httpchk" | "tcp-check" | "ssl-hello-chk" | "mysql-check" | "redis-check" | "pgsql-check")
        | ("http-check" | "tcp-check", _) => {
            "what a health check sends and expects: wscap's check succeeds while the server is up"
        }
        ("cookie", _) | ("stick-table" | "stick" | "persist", _) => "session persistence (stickiness)",
        ("acl", _) | ("http-request" | "http-response" | "http-after-response" | "tcp-request" | "tcp-response", _) => {
            "request rules"
        }
        ("option", "forwardfor" | "http-server-close" | "httpclose" | "http-keep-alive" | "abortonclose") => {
            "HTTP connection handling"
        }
        ("compression" | "filter" | "cache", _) => "content processing",
        ("stats", _) | ("monitor-uri", _) => "statistics and monitoring",
        _ => return None,
    })
}

/// The host of a server address: `ws1:8080` → `ws1`; prefixes (`ipv4@`)
/// and IPv6 brackets removed; an unbracketed IPv6 address loses its port.
fn host_of(addr: &str) -> String {
    let a = addr.rsplit_once('@').map_or(addr, |(_, a)| a);
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_string();
    }
    match a.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit() || "+-".contains(c)) => h.to_string(),
        _ => a.to_string(),
    }
}

fn clip(s: &str) -> String {
    if s.chars().count() > 100 {
        let t: String = s.chars().take(97).collect();
        format!("{t}...")
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::{duration, host_of};

    /// Values HAProxy accepts (or refuses) but a scenario cannot hold are
    /// adjusted with a warning, never written invalid.
    #[test]
    fn edge_values_still_give_a_valid_scenario() {
        let cfg = "global\n  nbthread 0\n  maxconn 0\ndefaults\n  timeout check 0\n  retries 1000\n\
                   backend b\n  balance random(9)\n  server a 10.0.0.1:80 weight 300 check inter 0 fall 0 rise 0\n\
                   server c 10.0.0.2:80 weight 0 check inter 0\n";
        let im = super::import_str(cfg, std::path::Path::new("e.cfg"), None, None).unwrap_or_else(|e| panic!("{e}"));
        assert!(im.notes.iter().any(|n| n.message.contains("above HAProxy's maximum")));
        assert!(im.toml.contains("balance = \"random(2)\""), "{}", im.toml);
        let im = super::import_str(
            "backend b\n  server a h:1 weight 0\n  server c h:2 weight 0\n",
            std::path::Path::new("e.cfg"),
            None,
            None,
        )
        .unwrap();
        assert!(im.notes.iter().any(|n| n.message.contains("weight 0")));
    }

    #[test]
    fn durations_and_hosts() {
        assert_eq!(duration("5000").as_deref(), Some("5s"));
        assert_eq!(duration("250").as_deref(), Some("250ms"));
        assert_eq!(duration("4h").as_deref(), Some("4h"));
        assert_eq!(duration("1d").as_deref(), Some("24h"));
        assert_eq!(duration("x"), None);
        assert_eq!(host_of("ws1:8080"), "ws1");
        assert_eq!(host_of("ipv4@10.0.0.1:80"), "10.0.0.1");
        assert_eq!(host_of("[::1]:80"), "::1");
        assert_eq!(host_of("tbot-esp32-server"), "tbot-esp32-server");
    }
}
