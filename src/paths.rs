//! Where things go: the Go CLI's path rules, ported exactly.
//!
//! `artifact push job dist/app.tar -d releases/app.tar` must name the same
//! remote object as the Go CLI does, or a job that pushes with one tool and
//! pulls with the other breaks. This module holds those rules as pure
//! functions (no file system, no environment), unit-tested over the whole table:
//! - push: remote = prefix + (destination made relative, else basename(source));
//!   local = cleaned source;
//! - pull: remote = prefix + source made relative; local = cleaned destination,
//!   else basename of the relative source;
//! - yank: remote = prefix + source made relative;
//! - prefix = `artifacts/{jobs|workflows|projects}/{id}/`.
//!
//! Where the Go CLI would leave the prefix, we refuse: an ID that is not one
//! plain path segment (`Level::id_in_effect`), a push whose base name is
//! `..` or `/` without `-d`, and, last, any key not under the prefix
//! (`Resolver::prefixed`).
//!
//! It also decides whether a key handed back by a server may be written under
//! a local directory (`local_path_for`).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The scope an artifact lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Job,
    Workflow,
    Project,
}

impl Level {
    pub fn parse(word: &str) -> Option<Level> {
        match word {
            "job" => Some(Level::Job),
            "workflow" => Some(Level::Workflow),
            "project" => Some(Level::Project),
            _ => None,
        }
    }

    /// `job`, `workflow`, `project`: as in "current job".
    pub fn name(self) -> &'static str {
        match self {
            Level::Job => "job",
            Level::Workflow => "workflow",
            Level::Project => "project",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Level::Job => "jobs",
            Level::Workflow => "workflows",
            Level::Project => "projects",
        }
    }

    /// The variable that holds this level's ID.
    pub fn env_var(self) -> &'static str {
        match self {
            Level::Job => "SEMAPHORE_JOB_ID",
            Level::Workflow => "SEMAPHORE_WORKFLOW_ID",
            Level::Project => "SEMAPHORE_PROJECT_ID",
        }
    }

    /// The flag that overrides this level's ID.
    pub fn flag(self) -> &'static str {
        match self {
            Level::Job => "--job-id",
            Level::Workflow => "--workflow-id",
            Level::Project => "--project-id",
        }
    }

    /// The error the Go CLI gives when no ID is known, word for word.
    pub fn missing_id(self) -> Error {
        Error::Config(format!(
            "{} ID is not set. Please use the {} environment variable or the {} parameter to configure it",
            self.name(),
            self.env_var(),
            self.flag()
        ))
    }
}

/// Why `id` cannot name a level, if it cannot: it becomes one segment of
/// every key (`artifacts/jobs/{id}/…`) and, on the local backend, of every
/// path, so a `/`, a `\`, a `.` or `..`, or a control character would
/// move the artifacts elsewhere. Semaphore's IDs are UUIDs.
fn id_problem(id: &str) -> Option<&'static str> {
    if id.contains(['/', '\\']) {
        Some("an ID cannot contain '/' or '\\'")
    } else if id == "." || id == ".." {
        Some("an ID cannot be '.' or '..'")
    } else if id.chars().any(char::is_control) {
        Some("an ID cannot contain a control character")
    } else {
        None
    }
}

impl Level {
    /// The ID in effect: the flag's when it is given and not empty (as in
    /// the Go CLI), else the variable's; an error names whichever gave a
    /// bad one.
    pub fn id_in_effect<'a>(
        self,
        flag: Option<&'a str>,
        variable: Option<&'a str>,
    ) -> Result<&'a str> {
        let (id, source) = match (flag.filter(|id| !id.is_empty()), variable) {
            (Some(id), _) => (id, self.flag()),
            (None, Some(id)) => (id, self.env_var()),
            (None, None) => return Err(self.missing_id()),
        };
        match id_problem(id) {
            None => Ok(id),
            Some(problem) => Err(Error::Config(format!(
                "{source}='{}' is not a {} ID: {problem}; Semaphore's IDs are UUIDs such as 3f6d2a9c-0b1e-4c7a-9d85-6e2f4b1a7c03",
                id.escape_debug(),
                self.name()
            ))),
        }
    }
}

/// Maps user paths to remote keys for one level and ID.
#[derive(Debug, Clone)]
pub struct Resolver {
    level: Level,
    id: String,
}

/// A resolved push: the local file or directory and the remote key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushPaths {
    pub local: String,
    pub remote: String,
}

/// A resolved pull: the remote key and the local file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullPaths {
    pub remote: String,
    pub local: String,
}

impl Resolver {
    /// The resolver for `id`, which must pass `Level::id_in_effect`'s
    /// check (checked again here, so no key can leave its level).
    pub fn new(level: Level, id: &str) -> Result<Resolver> {
        if let Some(problem) = id_problem(id) {
            return Err(Error::Config(format!(
                "'{}' is not a {} ID: {problem}",
                id.escape_debug(),
                level.name()
            )));
        }
        Ok(Resolver {
            level,
            id: id.to_string(),
        })
    }

    /// `artifacts/{jobs|workflows|projects}/{id}`: every key is this or
    /// under it.
    fn root(&self) -> String {
        join(&["artifacts", self.level.plural(), &self.id])
    }

    /// `artifacts/{jobs|workflows|projects}/{id}/{path}`, cleaned; an error
    /// when `path` would leave the level's directory (no caller makes such
    /// a path: this is the last check before a key is used).
    pub fn prefixed(&self, path: &str) -> Result<String> {
        let root = self.root();
        let key = join(&[&root, path]);
        let inside = key
            .strip_prefix(root.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if !inside {
            return Err(Error::Usage(format!(
                "'{}' would name '{}', outside the {}'s artifacts ({root}/)",
                path.escape_debug(),
                key.escape_debug(),
                self.level.name()
            )));
        }
        Ok(key)
    }

    /// A push of `source`. Without a destination the key is the source's
    /// base name, as in the Go CLI; a source whose base name is `..` or `/`
    /// (or an empty one) has none that stays in the level's directory, so
    /// it is refused unless `-d` names the artifact.
    pub fn push(&self, source: &str, destination: Option<&str>) -> Result<PushPaths> {
        let source = to_slash(source);
        if source.is_empty() {
            return Err(Error::Usage(
                "cannot push '': the path is empty (an unset variable?); name a file or directory"
                    .into(),
            ));
        }
        let dest = to_relative(&to_slash(destination.unwrap_or("")));
        let name = if dest.is_empty() { base(&source) } else { dest };
        if name == ".." || name == "/" {
            return Err(Error::Usage(format!(
                "cannot push '{}' without a name: its base name '{name}' would put the files outside the {}'s artifacts; add -d NAME",
                source.escape_debug(),
                self.level.name()
            )));
        }
        Ok(PushPaths {
            local: clean(&source),
            remote: self.prefixed(&name)?,
        })
    }

    pub fn pull(&self, source: &str, destination: Option<&str>) -> Result<PullPaths> {
        let remote = to_relative(&to_slash(source));
        let local = match destination.map(to_slash) {
            Some(d) if !d.is_empty() => d,
            _ => base(&remote),
        };
        Ok(PullPaths {
            remote: self.prefixed(&remote)?,
            local: clean(&local),
        })
    }

    pub fn yank(&self, source: &str) -> Result<String> {
        self.prefixed(&to_relative(&to_slash(source)))
    }

    /// What `list` shows: the name `source`, or the level's whole prefix
    /// when it is empty.
    pub fn list(&self, source: &str) -> Result<String> {
        self.yank(source)
    }

    /// `key` as `list` prints it: relative to the level's prefix.
    pub fn level_relative<'k>(&self, key: &'k str) -> &'k str {
        key.strip_prefix(self.root().as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(key)
    }
}

fn to_slash(p: &str) -> String {
    to_slash_on(p, cfg!(windows))
}

/// Go's `filepath.ToSlash`: the identity on Unix; on Windows `\` is a
/// separator, and keys use `/`.
fn to_slash_on(p: &str, windows: bool) -> String {
    if windows {
        p.replace('\\', "/")
    } else {
        p.to_string()
    }
}

/// Go's `path.Clean`: the shortest path with the same meaning, lexically.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if matches!(parts.last(), Some(p) if *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's `path.Base`: the last element, `.` for an empty path, `/` for root.
pub fn base(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".to_string();
    }
    match trimmed.rfind('/') {
        Some(i) => trimmed[i + 1..].to_string(),
        None => trimmed.to_string(),
    }
}

/// Go's `path.Join`: the non-empty elements joined with `/`, cleaned.
pub fn join(parts: &[&str]) -> String {
    let kept: Vec<&str> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    if kept.is_empty() {
        return String::new();
    }
    clean(&kept.join("/"))
}

/// The Go CLI's `ToRelative`: removes leading `/`, `./` and `../` from a
/// cleaned path, so every destination lands under the prefix.
pub fn to_relative(path: &str) -> String {
    let cleaned = clean(path);
    if cleaned.chars().all(|c| c == '.') {
        return String::new();
    }
    let trimmed = cleaned.trim_start_matches(['.', '/']);
    let left = &cleaned[..cleaned.len() - trimmed.len()];
    // Dots that start the name itself (".hidden") stay with it.
    let far_left = left.trim_end_matches('.');
    cleaned[far_left.len()..].to_string()
}

/// Why no pull, on any system, could write a file whose key has the path
/// segment `segment`, if none could: a control character (a newline, a
/// tab, an escape), or an empty, `.` or `..` segment, which names another
/// directory. A push refuses such names before it sends anything, so that
/// what a push accepts, a pull gives back.
pub fn unwritable_segment(segment: &str) -> Option<&'static str> {
    if segment.chars().any(char::is_control) {
        return Some("a control character (a newline, a tab…)");
    }
    match segment {
        "" => Some("an empty path segment"),
        "." | ".." => Some("a '.' or '..' segment"),
        _ => None,
    }
}

/// The local path for `key`, an object found under the remote path `root`,
/// when pulling `root` to `local_root`. `None` when the key is not under
/// `root` at all (a sibling such as `dirx/` when pulling `dir`). An error when
/// the key would escape `local_root` or no pull could write it: `..`
/// segments, an absolute part, a control character (`unwritable_segment`);
/// on Windows also a backslash, a separator there, and a name that Windows
/// cannot hold (`windows_name_problem`). On Unix a backslash is an ordinary
/// character of a file name.
pub fn local_path_for(root: &str, key: &str, local_root: &Path) -> Result<Option<PathBuf>> {
    local_path_on(root, key, local_root, cfg!(windows))
}

pub(crate) fn local_path_on(
    root: &str,
    key: &str,
    local_root: &Path,
    windows: bool,
) -> Result<Option<PathBuf>> {
    let rest = if key == root {
        ""
    } else if let Some(rest) = key.strip_prefix(root).and_then(|r| r.strip_prefix('/')) {
        rest
    } else if root.is_empty() {
        key
    } else {
        return Ok(None);
    };
    let unsafe_key = || {
        Error::Protocol(format!(
            "refusing remote object '{}': its name would place it outside the destination",
            key.escape_debug()
        ))
    };
    let mut path = local_root.to_path_buf();
    if rest.is_empty() {
        return Ok(Some(path));
    }
    if windows && rest.contains('\\') {
        return Err(unsafe_key());
    }
    for segment in rest.split('/') {
        if unwritable_segment(segment).is_some() {
            return Err(unsafe_key());
        }
        if let Some(problem) = windows.then(|| windows_name_problem(segment)).flatten() {
            return Err(Error::Protocol(format!(
                "refusing remote object '{}': Windows cannot hold the name '{}' ({problem}); pull it on Linux or macOS, or rename the object",
                key.escape_debug(),
                segment.escape_debug()
            )));
        }
        path.push(segment)
    }
    Ok(Some(path))
}

/// Why `name` (one path segment) cannot be a file name on Windows, if it
/// cannot: `:` would be a drive letter or an NTFS stream (`a:b`), the
/// characters `<>"|?*` are forbidden, Windows drops a trailing dot or space
/// (two keys would land on one file), and device names such as `CON`,
/// `NUL` or `COM1` are reserved with any extension (`nul.txt`).
pub fn windows_name_problem(name: &str) -> Option<&'static str> {
    const RESERVED: [&str; 6] = ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"];
    if name.contains(':') {
        return Some("a ':' names a drive or an NTFS stream");
    }
    if name.contains(['<', '>', '"', '|', '?', '*']) {
        return Some("the characters < > \" | ? * are not allowed");
    }
    if name.ends_with(['.', ' ']) {
        return Some("a name cannot end with a dot or a space");
    }
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    let upper = stem.to_ascii_uppercase();
    let numbered = ["COM", "LPT"].iter().any(|device| {
        upper.strip_prefix(device).is_some_and(|n| {
            matches!(
                n,
                "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³"
            )
        })
    });
    if numbered || RESERVED.contains(&upper.as_str()) {
        return Some("it is a device name Windows reserves, with any extension");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_names_that_cannot_be_files() {
        for bad in [
            "C:",
            "a:b",
            "file.txt:stream",
            "a<b",
            "a>b",
            "a\"b",
            "a|b",
            "a?b",
            "a*b",
            "trailing.",
            "trailing ",
            "...",
            "CON",
            "con",
            "Nul.txt",
            "nul .txt",
            "aux.tar.gz",
            "PRN",
            "COM1",
            "com9.log",
            "LPT1",
            "lpt0",
            "COM²",
            "CONIN$",
            "conout$.x",
        ] {
            assert!(windows_name_problem(bad).is_some(), "{bad:?} passed");
        }
        for good in [
            "a.txt",
            "CONSOLE",
            "con-fig",
            "COM10",
            "LPT",
            "nul_",
            ".hidden",
            "a b",
            "ünïcode",
            "x.con",
        ] {
            assert_eq!(windows_name_problem(good), None, "{good:?} refused");
        }
    }

    #[test]
    fn keys_windows_cannot_hold_are_refused_there_only() {
        let root = Path::new("dest");
        for key in [
            "r/CON",
            "r/d/nul.txt",
            "r/a:b",
            "r/x/C:",
            "r/what?",
            "r/dot./f",
        ] {
            let err = local_path_on("r", key, root, true).unwrap_err();
            assert!(
                err.to_string().contains("Windows cannot hold"),
                "{key}: {err}"
            );
            assert!(
                local_path_on("r", key, root, false).unwrap().is_some(),
                "{key}"
            );
        }
        assert_eq!(
            local_path_on("r", "r/d/f.txt", root, true).unwrap(),
            Some(root.join("d").join("f.txt"))
        );
    }

    #[test]
    fn backslashes_are_separators_on_windows_only() {
        assert_eq!(to_slash_on(r"dist\app\x.tar", true), "dist/app/x.tar");
        assert_eq!(to_slash_on(r"dist\x", false), r"dist\x");
    }

    #[test]
    fn clean_matches_go() {
        let cases = [
            ("", "."),
            (".", "."),
            ("/", "/"),
            ("a/b", "a/b"),
            ("a//b", "a/b"),
            ("a/./b", "a/b"),
            ("a/../b", "b"),
            ("../a", "../a"),
            ("../../a/b/..", "../../a"),
            ("/../a", "/a"),
            ("./a/", "a"),
            ("a/b/", "a/b"),
            ("/long/path/to/x", "/long/path/to/x"),
            (".hidden", ".hidden"),
            ("./.hidden/", ".hidden"),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
    }

    #[test]
    fn base_matches_go() {
        let cases = [
            ("", "."),
            ("/", "/"),
            ("x", "x"),
            ("/x", "x"),
            ("a/b/", "b"),
            ("./x", "x"),
            ("../x", "x"),
            (".", "."),
            ("..", ".."),
        ];
        for (input, want) in cases {
            assert_eq!(base(input), want, "base({input:?})");
        }
    }

    #[test]
    fn to_relative_matches_go() {
        let cases = [
            ("", ""),
            (".", ""),
            ("..", ""),
            ("/", ""),
            ("x", "x"),
            ("/x", "x"),
            ("./x", "x"),
            ("../x", "x"),
            ("../../x", "x"),
            ("long/path/to/x", "long/path/to/x"),
            ("/long/path/to/x", "long/path/to/x"),
            ("./long/path/to/x", "long/path/to/x"),
            ("../long/path/to/x", "long/path/to/x"),
            (".x", ".x"),
            ("/.x", ".x"),
            ("./.x", ".x"),
            ("../.x", ".x"),
            ("..x", "..x"),
            ("./..x", "..x"),
            ("x/../../y", "y"),
        ];
        for (input, want) in cases {
            assert_eq!(to_relative(input), want, "to_relative({input:?})");
        }
    }

    fn job() -> Resolver {
        Resolver::new(Level::Job, "1").unwrap()
    }

    #[test]
    fn ids_that_would_leave_their_level_are_refused() {
        for bad in [
            "..", ".", "../../x", "a/b", "/", "a\\b", "x\0", "x\ny", "\u{7f}",
        ] {
            assert!(id_problem(bad).is_some(), "{bad:?} passed");
            assert!(Resolver::new(Level::Job, bad).is_err(), "{bad:?}");
        }
        for good in [
            "3f6d2a9c-0b1e-4c7a-9d85-6e2f4b1a7c03",
            "job-1",
            "...",
            ".x",
            "a..b",
            "ünï",
        ] {
            assert_eq!(id_problem(good), None, "{good:?} refused");
        }
    }

    #[test]
    fn the_id_in_effect_names_its_source() {
        let level = Level::Job;
        assert_eq!(level.id_in_effect(Some("f"), Some("v")).unwrap(), "f");
        assert_eq!(level.id_in_effect(Some(""), Some("v")).unwrap(), "v");
        assert_eq!(level.id_in_effect(None, Some("v")).unwrap(), "v");
        let missing = level.id_in_effect(Some(""), None).unwrap_err();
        assert_eq!(missing.to_string(), level.missing_id().to_string());
        let from_flag = level.id_in_effect(Some("../x"), Some("ok")).unwrap_err();
        assert_eq!(from_flag.exit_code(), 3);
        assert!(
            from_flag.to_string().starts_with("--job-id='../x'"),
            "{from_flag}"
        );
        let from_variable = Level::Workflow
            .id_in_effect(Some(""), Some(".."))
            .unwrap_err();
        assert_eq!(from_variable.exit_code(), 3);
        assert!(
            from_variable
                .to_string()
                .starts_with("SEMAPHORE_WORKFLOW_ID='..'"),
            "{from_variable}"
        );
    }

    #[test]
    fn keys_outside_the_level_are_refused() {
        for path in ["..", "../x", "../../1/x", "a/../../x"] {
            let err = job().prefixed(path).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{path}: {err}");
        }
        assert_eq!(job().prefixed("a/../b").unwrap(), "artifacts/jobs/1/b");
        assert_eq!(job().prefixed("..x").unwrap(), "artifacts/jobs/1/..x");
    }

    #[test]
    fn push_sources_without_a_name_in_the_level_are_refused() {
        for source in ["..", "../..", "a/..", "/", "//", ""] {
            let err = job().push(source, None).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{source:?}: {err}");
            assert!(err.to_string().contains(&format!("'{source}'")), "{err}");
            for empty in ["", ".", "/", ".."] {
                assert!(
                    job().push(source, Some(empty)).is_err(),
                    "{source:?} -d {empty:?}"
                );
            }
        }
        // A name given with -d is under the level whatever the source.
        for source in ["..", "/"] {
            assert_eq!(
                job().push(source, Some("up")).unwrap().remote,
                "artifacts/jobs/1/up"
            );
        }
        // An empty source stays refused: it is an unset variable far more
        // often than the current directory.
        assert!(job().push("", Some("up")).is_err());
        // `.` (from inside a directory) pushes to the level's root, as in Go.
        assert_eq!(
            job().push(".", None).unwrap(),
            PushPaths {
                local: ".".into(),
                remote: "artifacts/jobs/1".into()
            }
        );
    }

    #[test]
    fn prefixes_per_level() {
        assert_eq!(job().prefixed("x").unwrap(), "artifacts/jobs/1/x");
        assert_eq!(
            Resolver::new(Level::Workflow, "w")
                .unwrap()
                .prefixed("x")
                .unwrap(),
            "artifacts/workflows/w/x"
        );
        assert_eq!(
            Resolver::new(Level::Project, "p")
                .unwrap()
                .prefixed("x")
                .unwrap(),
            "artifacts/projects/p/x"
        );
        assert_eq!(job().prefixed("").unwrap(), "artifacts/jobs/1");
    }

    #[test]
    fn push_table() {
        // (source, destination, local, remote)
        let cases = [
            ("x", None, "x", "artifacts/jobs/1/x"),
            ("/x", None, "/x", "artifacts/jobs/1/x"),
            ("./x", None, "x", "artifacts/jobs/1/x"),
            ("../x", None, "../x", "artifacts/jobs/1/x"),
            (
                "long/path/to/x",
                None,
                "long/path/to/x",
                "artifacts/jobs/1/x",
            ),
            (
                "/long/path/to/x",
                None,
                "/long/path/to/x",
                "artifacts/jobs/1/x",
            ),
            (
                "./long/path/to/x",
                None,
                "long/path/to/x",
                "artifacts/jobs/1/x",
            ),
            ("dir/", None, "dir", "artifacts/jobs/1/dir"),
            (".hidden", None, ".hidden", "artifacts/jobs/1/.hidden"),
            ("./.hidden", None, ".hidden", "artifacts/jobs/1/.hidden"),
            ("x", Some("y"), "x", "artifacts/jobs/1/y"),
            ("x", Some("/y"), "x", "artifacts/jobs/1/y"),
            ("x", Some("./y"), "x", "artifacts/jobs/1/y"),
            ("x", Some("../y"), "x", "artifacts/jobs/1/y"),
            (
                "x",
                Some("long/path/to/y"),
                "x",
                "artifacts/jobs/1/long/path/to/y",
            ),
            (
                "x",
                Some("/long/path/to/y"),
                "x",
                "artifacts/jobs/1/long/path/to/y",
            ),
            (
                "x",
                Some("./long/path/to/y"),
                "x",
                "artifacts/jobs/1/long/path/to/y",
            ),
            (
                "x",
                Some("../long/path/to/y"),
                "x",
                "artifacts/jobs/1/long/path/to/y",
            ),
            ("x", Some(".y"), "x", "artifacts/jobs/1/.y"),
            ("x", Some(""), "x", "artifacts/jobs/1/x"),
            ("x", Some("."), "x", "artifacts/jobs/1/x"),
            ("/long/x", Some("/"), "/long/x", "artifacts/jobs/1/x"),
        ];
        for (src, dest, local, remote) in cases {
            let got = job().push(src, dest).unwrap();
            assert_eq!(
                got,
                PushPaths {
                    local: local.into(),
                    remote: remote.into()
                },
                "push({src:?}, {dest:?})"
            );
        }
    }

    #[test]
    fn pull_table() {
        // (source, destination, remote, local)
        let cases = [
            ("x", None, "artifacts/jobs/1/x", "x"),
            ("/x", None, "artifacts/jobs/1/x", "x"),
            ("./x", None, "artifacts/jobs/1/x", "x"),
            ("../x", None, "artifacts/jobs/1/x", "x"),
            (
                "long/path/to/x",
                None,
                "artifacts/jobs/1/long/path/to/x",
                "x",
            ),
            (
                "/long/path/to/x",
                None,
                "artifacts/jobs/1/long/path/to/x",
                "x",
            ),
            (
                "./long/path/to/x",
                None,
                "artifacts/jobs/1/long/path/to/x",
                "x",
            ),
            (".hidden", None, "artifacts/jobs/1/.hidden", ".hidden"),
            ("x", Some("y"), "artifacts/jobs/1/x", "y"),
            ("x", Some("/y"), "artifacts/jobs/1/x", "/y"),
            ("x", Some("./y"), "artifacts/jobs/1/x", "y"),
            ("x", Some("../y"), "artifacts/jobs/1/x", "../y"),
            (
                "x",
                Some("long/path/to/y"),
                "artifacts/jobs/1/x",
                "long/path/to/y",
            ),
            (
                "x",
                Some("/long/path/to/y/"),
                "artifacts/jobs/1/x",
                "/long/path/to/y",
            ),
            (
                "x",
                Some("./long/path/to/y"),
                "artifacts/jobs/1/x",
                "long/path/to/y",
            ),
            ("dir/", None, "artifacts/jobs/1/dir", "dir"),
            ("x", Some(""), "artifacts/jobs/1/x", "x"),
        ];
        for (src, dest, remote, local) in cases {
            let got = job().pull(src, dest).unwrap();
            assert_eq!(
                got,
                PullPaths {
                    remote: remote.into(),
                    local: local.into()
                },
                "pull({src:?}, {dest:?})"
            );
        }
    }

    #[test]
    fn yank_table() {
        let cases = [
            ("x", "artifacts/jobs/1/x"),
            ("/x", "artifacts/jobs/1/x"),
            ("./x", "artifacts/jobs/1/x"),
            ("../x", "artifacts/jobs/1/x"),
            ("long/path/to/x", "artifacts/jobs/1/long/path/to/x"),
            ("/long/path/to/x", "artifacts/jobs/1/long/path/to/x"),
            ("./long/path/to/x", "artifacts/jobs/1/long/path/to/x"),
            (".x", "artifacts/jobs/1/.x"),
            ("dir/", "artifacts/jobs/1/dir"),
        ];
        for (src, remote) in cases {
            assert_eq!(job().yank(src).unwrap(), remote, "yank({src:?})");
        }
    }

    #[test]
    fn missing_id_names_variable_and_flag() {
        let msg = Level::Job.missing_id().to_string();
        assert_eq!(
            msg,
            "job ID is not set. Please use the SEMAPHORE_JOB_ID environment variable or the --job-id parameter to configure it"
        );
    }

    #[test]
    fn local_paths_stay_under_the_destination() {
        let root = Path::new("/dest");
        let ok = |key: &str| local_path_for("r/d", key, root).unwrap();
        assert_eq!(ok("r/d"), Some(PathBuf::from("/dest")));
        assert_eq!(ok("r/d/a/b"), Some(PathBuf::from("/dest/a/b")));
        assert_eq!(ok("r/dx/a"), None);
        assert_eq!(ok("other"), None);
        for bad in [
            "r/d/../x",
            "r/d/a/../../x",
            "r/d//abs",
            "r/d/a\0b",
            "r/d/a\nb",
            "r/d/./a",
            "r/d/a/",
        ] {
            assert!(local_path_for("r/d", bad, root).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_backslash_is_a_separator_on_windows_only() {
        let root = Path::new("dest");
        assert_eq!(
            local_path_on("r", "r/back\\slash.txt", root, false).unwrap(),
            Some(root.join("back\\slash.txt"))
        );
        for key in ["r/back\\slash.txt", "r/..\\..\\x", "r/a\\"] {
            assert!(local_path_on("r", key, root, true).is_err(), "{key:?}");
        }
        // On Unix, `..\..` is one odd name inside the destination.
        assert_eq!(
            local_path_on("r", "r/..\\..", root, false).unwrap(),
            Some(root.join("..\\.."))
        );
    }

    #[test]
    fn names_no_pull_could_write() {
        for bad in ["a\nb", "tab\there", "\u{7f}", "\u{1b}[31m", "", ".", ".."] {
            assert!(unwritable_segment(bad).is_some(), "{bad:?}");
        }
        for good in [
            "a.txt",
            "back\\slash.txt",
            "...",
            ".hidden",
            "a b",
            "ünïcode",
            "CON",
        ] {
            assert_eq!(unwritable_segment(good), None, "{good:?}");
        }
    }
}

/// Generated hostile keys: whatever a store lists, nothing maps outside.
#[cfg(test)]
pub(crate) mod hostile {
    use proptest::prelude::*;
    use proptest::test_runner::RngSeed;

    use super::*;

    /// One path segment of a remote key, hostile more often than not.
    pub(crate) fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "",
                ".",
                "..",
                "...",
                "a",
                "b",
                "link",
                "real",
                "\\",
                "..\\..",
                "a\\b",
                "\0",
                "a\0b",
                "\r\n",
                "\u{7f}",
                "\u{202e}txt",
                "C:",
                "~",
                " ",
                ".hidden",
            ])
            .prop_map(str::to_string),
            "[ab]{1,2}",
            "\\PC{1,12}",
            any::<char>().prop_map(String::from),
            // 1,000 bytes and more.
            (500usize..700).prop_map(|n| "é".repeat(n)),
        ]
    }

    /// A key: a few segments joined with `/`, leading or trailing ones
    /// included.
    pub(crate) fn key() -> impl Strategy<Value = String> {
        prop::collection::vec(segment(), 1..6).prop_map(|s| s.join("/"))
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(11),
            ..ProptestConfig::with_cases(512)
        })]

        #[test]
        fn no_key_maps_outside_the_destination(
            rest in key(),
            root in prop::sample::select(vec!["", "r/d", "r"]),
            under in any::<bool>(),
        ) {
            let key = if under && !root.is_empty() { format!("{root}/{rest}") } else { rest };
            for windows in [false, true] {
                crate::fuzzing::local_path_promises(root, &key, windows);
            }
        }

        #[test]
        fn user_paths_stay_under_the_prefix(
            source in key(),
            destination in prop::option::of(key()),
        ) {
            let resolver = Resolver::new(Level::Job, "job-1").unwrap();
            let prefix = "artifacts/jobs/job-1";
            let destination = destination.as_deref();
            let pushed = resolver.push(&source, destination).map(|p| p.remote);
            let pulled = resolver.pull(&source, destination).map(|p| p.remote);
            let yanked = resolver.yank(&source);
            for remote in [pushed, pulled, yanked].into_iter().flatten() {
                let rest = remote.strip_prefix(prefix);
                prop_assert!(
                    rest.is_some_and(|r| r.is_empty() || r.starts_with('/')),
                    "{remote:?}"
                );
                prop_assert!(!remote.split('/').any(|s| s == ".."), "{remote:?}");
            }
        }
    }
}
