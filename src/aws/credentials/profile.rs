//! The shared config and credentials files (`~/.aws/config`,
//! `~/.aws/credentials`), read the way aws-sdk-go-v2 reads them.
//!
//! aws-creds reads only the credentials file, never AWS_PROFILE, and reads
//! the process environment itself, so the files are parsed here, from our
//! `Env` snapshot. The rules are the SDK's (`config/shared_config.go`,
//! `internal/ini`): in the config file a profile is `[profile name]` (or
//! `[default]`; `[profile default]` wins over it) and a bare `[name]` is
//! ignored; in the credentials file it is `[name]` and `[profile name]` is
//! ignored; `[sso-session name]` lives in the config file; keys are
//! case-insensitive; `#` and `;` start comments; `key = value` or
//! `key: value`; surrounding quotes are removed; indented lines under an
//! empty key are sub-properties (ignored) and under a value continue it.
//! For a profile in both files, the credentials file's values win.
//! One difference: an inline comment must follow a space or tab (the SDK cuts
//! at any `#` or `;`, which would break a `credential_process` command line).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::Env;
use crate::error::{Error, Result};

pub type Section = BTreeMap<String, String>;

pub const ACCESS_KEY: &str = "aws_access_key_id";
pub const SECRET_KEY: &str = "aws_secret_access_key";
pub const SESSION_TOKEN: &str = "aws_session_token";

/// One profile after both files are merged.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub values: Section,
    /// Set when a file has only one of the access key pair for this profile:
    /// the file's path.
    pub partial_keys_in: Option<PathBuf>,
}

impl Profile {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Both files, parsed and merged.
#[derive(Debug, Default)]
pub struct SharedFiles {
    pub config_path: Option<PathBuf>,
    pub credentials_path: Option<PathBuf>,
    pub config_found: bool,
    pub credentials_found: bool,
    home: Option<PathBuf>,
    profiles: BTreeMap<String, Profile>,
    sso_sessions: BTreeMap<String, Section>,
}

impl SharedFiles {
    /// Reads AWS_CONFIG_FILE (else $HOME/.aws/config) and
    /// AWS_SHARED_CREDENTIALS_FILE (else $HOME/.aws/credentials). A missing
    /// file is empty; an unreadable or malformed one is an error.
    pub fn load(env: &Env) -> Result<SharedFiles> {
        let home = home_dir(env, cfg!(windows));
        let locate = |var: &str, default: &str| -> Option<PathBuf> {
            match env.get(var) {
                Some(path) => Some(expand_home(path, home.as_deref())),
                None => home.as_ref().map(|h| h.join(default)),
            }
        };
        let config_path = locate("AWS_CONFIG_FILE", ".aws/config");
        let credentials_path = locate("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
        let mut files = SharedFiles {
            home: home.clone(),
            ..SharedFiles::default()
        };
        if let Some(path) = &config_path {
            if let Some(text) = read_optional(path)? {
                files.config_found = true;
                files.add_config(path, &text)?;
            }
        }
        if let Some(path) = &credentials_path {
            if let Some(text) = read_optional(path)? {
                files.credentials_found = true;
                files.add_credentials(path, &text)?;
            }
        }
        files.config_path = config_path;
        files.credentials_path = credentials_path;
        Ok(files)
    }

    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }

    pub fn sso_session(&self, name: &str) -> Option<&Section> {
        self.sso_sessions.get(name)
    }

    pub fn home(&self) -> Option<&Path> {
        self.home.as_deref()
    }

    /// "~/.aws/credentials or ~/.aws/config", for messages.
    pub fn describe(&self) -> String {
        let mut names = Vec::new();
        for path in [&self.credentials_path, &self.config_path]
            .into_iter()
            .flatten()
        {
            names.push(self.show(path));
        }
        if names.is_empty() {
            "the shared config files (HOME is not set)".to_string()
        } else {
            names.join(" or ")
        }
    }

    /// A path with $HOME shown as `~`.
    pub fn show(&self, path: &Path) -> String {
        if let Some(rest) = self.home.as_ref().and_then(|h| path.strip_prefix(h).ok()) {
            return format!("~/{}", rest.display());
        }
        path.display().to_string()
    }

    fn add_config(&mut self, path: &Path, text: &str) -> Result<()> {
        let mut default_plain: Option<Section> = None;
        let mut default_prefixed: Option<Section> = None;
        let mut named: Vec<(String, Section)> = Vec::new();
        for (kind, name, section) in
            parse_ini(text).map_err(|line| parse_error(self, path, line))?
        {
            match (kind.as_str(), name.as_str()) {
                ("", "default") => {
                    merge_into(default_plain.get_or_insert_with(Section::new), section)
                }
                ("profile", "default") => {
                    merge_into(default_prefixed.get_or_insert_with(Section::new), section)
                }
                ("profile", _) => named.push((name, section)),
                ("sso-session", _) => {
                    merge_into(self.sso_sessions.entry(name).or_default(), section)
                }
                // `[services x]` and anything else are not profiles.
                _ => {}
            }
        }
        if let Some(section) = default_prefixed.or(default_plain) {
            named.insert(0, ("default".to_string(), section));
        }
        for (name, section) in named {
            let profile = self.profiles.entry(name).or_default();
            merge_into(&mut profile.values, section);
            profile.partial_keys_in = is_partial(&profile.values).then(|| path.to_path_buf());
        }
        Ok(())
    }

    fn add_credentials(&mut self, path: &Path, text: &str) -> Result<()> {
        let mut merged: BTreeMap<String, Section> = BTreeMap::new();
        for (kind, name, section) in
            parse_ini(text).map_err(|line| parse_error(self, path, line))?
        {
            // `[profile x]` is not a profile in the credentials file.
            if kind.is_empty() {
                merge_into(merged.entry(name).or_default(), section);
            }
        }
        for (name, mut section) in merged {
            let profile = self.profiles.entry(name).or_default();
            // A complete pair here replaces the config file's keys as a set
            // (its session token included).
            let has_key = section.contains_key(ACCESS_KEY) || section.contains_key(SECRET_KEY);
            if section.contains_key(ACCESS_KEY) && section.contains_key(SECRET_KEY) {
                profile.values.remove(SESSION_TOKEN);
            } else {
                section.remove(SESSION_TOKEN);
            }
            merge_into(&mut profile.values, section);
            if !is_partial(&profile.values) {
                profile.partial_keys_in = None;
            } else if has_key {
                profile.partial_keys_in = Some(path.to_path_buf());
            }
        }
        Ok(())
    }
}

fn parse_error(files: &SharedFiles, path: &Path, line: usize) -> Error {
    // The line itself is not quoted: it may be a pasted secret.
    Error::Config(format!(
        "cannot read {}: line {line} is neither a [section] nor a key = value line; fix or remove it",
        files.show(path)
    ))
}

fn merge_into(dst: &mut Section, src: Section) {
    dst.extend(src);
}

fn is_partial(section: &Section) -> bool {
    let has = |k: &str| section.get(k).is_some_and(|v| !v.is_empty());
    has(ACCESS_KEY) != has(SECRET_KEY)
}

/// The home directory, as the AWS SDKs find it: HOME, and on Windows
/// (where HOME is seldom set) USERPROFILE.
fn home_dir(env: &Env, windows: bool) -> Option<PathBuf> {
    env.get("HOME")
        .or_else(|| windows.then(|| env.get("USERPROFILE")).flatten())
        .map(PathBuf::from)
}

fn expand_home(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::Config(format!("{} is not UTF-8 text", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::local_io("read", path, e)),
    }
}

/// Sections of an INI text as (type, name, keys): `[profile dev]` is
/// ("profile", "dev"), `[default]` is ("", "default"). Keys before the first
/// section are ignored. `Err(line number)` for a line that is none of
/// comment, section, property, sub-property or continuation.
pub fn parse_ini(text: &str) -> std::result::Result<Vec<(String, String, Section)>, usize> {
    let mut out: Vec<(String, String, Section)> = Vec::new();
    let mut last_key: Option<String> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let indented = line.starts_with([' ', '\t']);
        if !indented {
            let head = strip_comment(line).trim_end();
            if let Some(inner) = head.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                let inner = inner.trim();
                let (kind, name) = match inner.split_once([' ', '\t']) {
                    Some((kind, name)) => (kind.to_string(), name.trim().to_string()),
                    None => (String::new(), inner.to_string()),
                };
                out.push((kind, name, Section::new()));
                last_key = None;
                continue;
            }
            let (key, value) = split_property(head).ok_or(index + 1)?;
            if let Some((_, _, section)) = out.last_mut() {
                section.insert(key.clone(), value);
                last_key = Some(key);
            }
            continue;
        }
        // An indented line: a sub-property of a key with an empty value
        // (`s3 =` then `  max_concurrent_requests = 20`), which credentials
        // never use, or the continuation of the value above.
        if let (Some(key), Some((_, _, section))) = (&last_key, out.last_mut()) {
            if let Some(value) = section.get_mut(key) {
                if !value.is_empty() {
                    value.push('\n');
                    value.push_str(trimmed);
                }
            }
        }
    }
    Ok(out)
}

/// Cuts a `#` or `;` comment that follows whitespace.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for i in 1..bytes.len() {
        if matches!(bytes[i], b'#' | b';') && matches!(bytes[i - 1], b' ' | b'\t') {
            return &line[..i];
        }
    }
    line
}

/// `key = value` or `key: value` (whichever separator comes first); the key
/// lower-cased, the value trimmed and unquoted.
fn split_property(line: &str) -> Option<(String, String)> {
    let at = line.find(['=', ':'])?;
    let key = line[..at].trim();
    if key.is_empty() {
        return None;
    }
    let value = line[at + 1..].trim();
    let unquoted = match value.as_bytes() {
        [b'"', .., b'"'] | [b'\'', .., b'\''] if value.len() > 2 => &value[1..value.len() - 1],
        _ => value,
    };
    Some((key.to_ascii_lowercase(), unquoted.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::credentials::fake_endpoints::{env_in, write};

    #[test]
    fn home_is_home_then_userprofile_on_windows() {
        let both = Env::from_pairs([("HOME", "/h"), ("USERPROFILE", r"C:\Users\u")]);
        let profile_only = Env::from_pairs([("USERPROFILE", r"C:\Users\u")]);
        assert_eq!(home_dir(&both, true), Some(PathBuf::from("/h")));
        assert_eq!(
            home_dir(&profile_only, true),
            Some(PathBuf::from(r"C:\Users\u"))
        );
        assert_eq!(home_dir(&profile_only, false), None);
        assert_eq!(home_dir(&Env::from_pairs([("HOME", "")]), true), None);
    }

    #[test]
    fn ini_syntax() {
        let text = "\
top = ignored
# a comment
; another
[default]
region = eu-west-1 ; trailing comment
Output: json
aws_access_key_id=AKID#not-a-comment
quoted = \"a value\"
s3 =
  max_concurrent_requests = 20
  addressing_style = path
credential_process = /bin/get-creds --flag
  --more
[ profile   dev ]   # comment after a section
role_arn=arn:aws:iam::1:role/x
[sso-session corp]
sso_region = us-east-1
";
        let sections = parse_ini(text).unwrap();
        assert_eq!(sections.len(), 3);
        let (kind, name, default) = &sections[0];
        assert_eq!((kind.as_str(), name.as_str()), ("", "default"));
        assert_eq!(default["region"], "eu-west-1");
        assert_eq!(default["output"], "json");
        assert_eq!(default["aws_access_key_id"], "AKID#not-a-comment");
        assert_eq!(default["quoted"], "a value");
        assert_eq!(default["s3"], "");
        assert!(!default.contains_key("max_concurrent_requests"));
        assert_eq!(
            default["credential_process"],
            "/bin/get-creds --flag\n--more"
        );
        assert_eq!(
            (sections[1].0.as_str(), sections[1].1.as_str()),
            ("profile", "dev")
        );
        assert_eq!(sections[1].2["role_arn"], "arn:aws:iam::1:role/x");
        assert_eq!(
            (sections[2].0.as_str(), sections[2].1.as_str()),
            ("sso-session", "corp")
        );
        // A stray line is an error naming its number, not its text.
        assert_eq!(
            parse_ini("[default]\nx = 1\nAKIASECRETPASTED\n").unwrap_err(),
            3
        );
    }

    fn files(config: &str, credentials: &str) -> (tempfile::TempDir, SharedFiles) {
        let home = tempfile::tempdir().unwrap();
        if !config.is_empty() {
            write(home.path(), ".aws/config", config);
        }
        if !credentials.is_empty() {
            write(home.path(), ".aws/credentials", credentials);
        }
        let files = SharedFiles::load(&env_in(home.path(), &[])).unwrap();
        (home, files)
    }

    #[test]
    fn profile_prefix_rules_differ_between_the_files() {
        let (_home, f) = files(
            "[profile dev]\nregion = eu-west-1\n[bare]\nregion = x\n[default]\nregion = us-east-2\n",
            "[dev]\naws_access_key_id = A\naws_secret_access_key = S\n[profile prod]\naws_access_key_id = P\naws_secret_access_key = Q\n",
        );
        let dev = f.profile("dev").unwrap();
        assert_eq!(dev.get("region"), Some("eu-west-1"));
        assert_eq!(dev.get(ACCESS_KEY), Some("A"));
        // `[bare]` in the config file and `[profile prod]` in the credentials
        // file are not profiles.
        assert!(f.profile("bare").is_none());
        assert!(f.profile("prod").is_none());
        assert!(f.profile("profile prod").is_none());
        assert_eq!(
            f.profile("default").unwrap().get("region"),
            Some("us-east-2")
        );
        assert!(f.config_found && f.credentials_found);
    }

    #[test]
    fn profile_default_wins_over_default() {
        let (_home, f) = files(
            "[profile default]\nregion = from-prefixed\n[default]\nregion = from-plain\noutput = json\n",
            "",
        );
        let d = f.profile("default").unwrap();
        assert_eq!(d.get("region"), Some("from-prefixed"));
        assert_eq!(d.get("output"), None);
    }

    #[test]
    fn credentials_file_wins_for_the_same_profile() {
        let (_home, f) = files(
            "[profile dev]\naws_access_key_id = CONFIG\naws_secret_access_key = CONFIGSECRET\naws_session_token = CONFIGTOKEN\nregion = eu-west-1\n",
            "[dev]\naws_access_key_id = CREDS\naws_secret_access_key = CREDSSECRET\n",
        );
        let dev = f.profile("dev").unwrap();
        assert_eq!(dev.get(ACCESS_KEY), Some("CREDS"));
        assert_eq!(dev.get(SECRET_KEY), Some("CREDSSECRET"));
        // The token belonged to the config file's keys.
        assert_eq!(dev.get(SESSION_TOKEN), None);
        assert_eq!(dev.get("region"), Some("eu-west-1"));
        assert!(dev.partial_keys_in.is_none());
    }

    #[test]
    fn half_a_key_pair_is_remembered() {
        let (_home, f) = files("", "[default]\naws_access_key_id = A\n");
        let d = f.profile("default").unwrap();
        assert!(d
            .partial_keys_in
            .as_ref()
            .unwrap()
            .ends_with(".aws/credentials"));
        // A complete pair in the credentials file clears a partial config one.
        let (_home, f) = files(
            "[default]\naws_secret_access_key = S\n",
            "[default]\naws_access_key_id = A\naws_secret_access_key = S2\n",
        );
        assert!(f.profile("default").unwrap().partial_keys_in.is_none());
    }

    #[test]
    fn file_locations_and_messages() {
        let home = tempfile::tempdir().unwrap();
        let elsewhere = write(home.path(), "elsewhere/cfg", "[profile x]\nregion = r\n");
        let env = env_in(
            home.path(),
            &[("AWS_CONFIG_FILE", elsewhere.to_str().unwrap())],
        );
        let f = SharedFiles::load(&env).unwrap();
        assert!(f.config_found && !f.credentials_found);
        assert_eq!(f.profile("x").unwrap().get("region"), Some("r"));
        assert_eq!(f.describe(), "~/.aws/credentials or ~/elsewhere/cfg");
        let env = env_in(home.path(), &[("AWS_CONFIG_FILE", "~/elsewhere/cfg")]);
        assert!(SharedFiles::load(&env).unwrap().config_found);

        write(
            home.path(),
            ".aws/credentials",
            "[default]\nnot a property\n",
        );
        let err = SharedFiles::load(&env_in(home.path(), &[])).unwrap_err();
        assert!(matches!(err, Error::Config(_)));
        assert!(
            err.to_string().contains("~/.aws/credentials: line 2"),
            "{err}"
        );
        assert!(!err.to_string().contains("not a property"), "{err}");

        let none = SharedFiles::load(&Env::from_pairs([("X", "y")])).unwrap();
        assert!(!none.config_found && none.config_path.is_none());
    }
}
