//! What the bench binaries share: small helpers for arguments. The Hub and
//! the S3 server are the test kit's, so the bench measures what the tests
//! prove.

use std::process::exit;
use std::time::Duration;

/// `--name VALUE` or `--name=VALUE` pairs and bare `--flag`s, nothing clever.
pub struct Args {
    pairs: Vec<(String, Option<String>)>,
    usage: &'static str,
}

impl Args {
    /// Parses the process's arguments; `flags` are the names that take no value.
    pub fn parse(usage: &'static str, flags: &[&str]) -> Args {
        let mut pairs = Vec::new();
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            if arg == "-h" || arg == "--help" {
                println!("{usage}");
                exit(0);
            }
            let Some(name) = arg.strip_prefix("--") else {
                die(usage, &format!("unexpected argument {arg:?}"));
            };
            if let Some((n, v)) = name.split_once('=') {
                pairs.push((n.to_string(), Some(v.to_string())));
            } else if flags.contains(&name) {
                pairs.push((name.to_string(), None));
            } else {
                let Some(v) = it.next() else {
                    die(usage, &format!("--{name} needs a value"));
                };
                pairs.push((name.to_string(), Some(v)));
            }
        }
        Args { pairs, usage }
    }

    pub fn flag(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }

    pub fn opt(&self, name: &str) -> Option<String> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.clone())
    }

    pub fn req(&self, name: &str) -> String {
        self.opt(name)
            .unwrap_or_else(|| die(self.usage, &format!("--{name} is required")))
    }

    pub fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        match self.opt(name) {
            None => default,
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| die(self.usage, &format!("--{name}: not a number: {v:?}"))),
        }
    }

    /// `--delay-ms N` as a duration (`default` ms when absent): what a store
    /// farther away than loopback adds to every request.
    pub fn delay(&self, default: u64) -> Duration {
        Duration::from_millis(self.num("delay-ms", default))
    }

    /// Fails on any name not in `known`.
    pub fn only(&self, known: &[&str]) {
        for (n, _) in &self.pairs {
            if !known.contains(&n.as_str()) {
                die(self.usage, &format!("unknown option --{n}"));
            }
        }
    }
}

pub fn die(usage: &str, msg: &str) -> ! {
    eprintln!("error: {msg}\n\n{usage}");
    exit(2)
}

/// Writes `text` to `path` atomically (write + rename), so a script polling
/// for the file never reads half of it.
pub fn write_file_atomic(path: &str, text: &str) -> std::io::Result<()> {
    let tmp = format!("{path}.tmp{}", std::process::id());
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
