//! `--include` and `--exclude`: gitignore-style patterns over the paths of
//! a directory that is pushed, pulled or listed, relative to that directory
//! and written with `/` on every system.
//!
//! The rules: a pattern without `/` matches the base name at any depth; one
//! with `/` (a leading `/` allowed) is matched from the directory's top;
//! `*` and `?` never match `/`, `**` as a whole segment matches any number
//! of segments (elsewhere it is `*`); `[…]` classes take ranges and `!` or
//! `^` negation; `\` makes the next character literal; a trailing `/`
//! matches a directory, so every file under it. Matching is case-sensitive.
//! The matching itself is the `glob` crate's `Pattern`, given the pattern
//! translated into its syntax (`translate`).

use crate::error::{Error, Result};
use crate::log;

/// One pattern as the user wrote it, ready to match.
#[derive(Debug)]
struct Rule {
    text: String,
    glob: glob::Pattern,
    /// Matched against the whole relative path, not the base name.
    anchored: bool,
    /// Written with a trailing `/`: matches the directories above a file.
    directory: bool,
}

const OPTIONS: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl Rule {
    fn new(text: &str) -> Result<Rule> {
        let rest = text.strip_prefix('/');
        let anchored_by_slash = rest.is_some();
        let rest = rest.unwrap_or(text);
        let (body, directory) = match rest.strip_suffix('/') {
            Some(body) => (body, true),
            None => (rest, false),
        };
        if body.is_empty() {
            return Err(pattern_error(text, "it names no file or directory"));
        }
        let glob = glob::Pattern::new(&translate(body)).map_err(|e| pattern_error(text, e.msg))?;
        Ok(Rule {
            text: text.to_string(),
            glob,
            anchored: anchored_by_slash || body.contains('/'),
            directory,
        })
    }

    /// Whether the file at `path` (relative, `/`-separated) is matched.
    fn matches(&self, path: &str) -> bool {
        if !self.directory {
            return self.glob.matches_with(self.subject(path), OPTIONS);
        }
        // Every directory above the file: `a`, then `a/b` for `a/b/c`.
        path.match_indices('/')
            .any(|(end, _)| self.glob.matches_with(self.subject(&path[..end]), OPTIONS))
    }

    /// What the pattern is matched against: the whole path, or its base name.
    fn subject<'p>(&self, path: &'p str) -> &'p str {
        match self.anchored {
            true => path,
            false => path.rsplit('/').next().unwrap_or(path),
        }
    }
}

fn pattern_error(text: &str, why: &str) -> Error {
    Error::Usage(format!("invalid pattern '{}': {why}", text.escape_debug()))
}

/// The pattern in `glob`'s syntax: `[^` is `[!`, `\x` is `[x]` for the
/// characters `glob` gives a meaning, and `**` that is not a whole segment
/// (or three or more `*`) is `*`, as in gitignore.
fn translate(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if !in_class => {
                match chars.get(i + 1) {
                    Some(&next @ ('*' | '?' | '[' | ']')) => out.extend(['[', next, ']']),
                    Some(&next) => out.push(next),
                    None => out.push('\\'),
                }
                i += 2;
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if let Some('^' | '!') = chars.get(i + 1) {
                    out.push('!');
                    i += 1;
                }
                // A `]` right after the opening is a member, not the end.
                if chars.get(i + 1) == Some(&']') {
                    out.push(']');
                    i += 1;
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '*' if !in_class => {
                let run = chars[i..].iter().take_while(|&&c| c == '*').count();
                let starts_segment = i == 0 || chars[i - 1] == '/';
                let ends_segment = chars.get(i + run).is_none_or(|&c| c == '/');
                match run == 2 && starts_segment && ends_segment {
                    true => out.push_str("**"),
                    false => out.push('*'),
                }
                i += run;
                continue;
            }
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// The files a run takes: with includes, only those matching one; then
/// without those matching an exclude. Remembers which patterns matched a
/// file, to warn about those that matched none.
#[derive(Debug, Default)]
pub struct Selection {
    include: Vec<(Rule, bool)>,
    exclude: Vec<(Rule, bool)>,
}

impl Selection {
    /// The selection of `include` and `exclude`; a usage error names a
    /// pattern that cannot be read.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Selection> {
        let rules = |texts: &[String]| -> Result<Vec<(Rule, bool)>> {
            texts.iter().map(|t| Ok((Rule::new(t)?, false))).collect()
        };
        Ok(Selection {
            include: rules(include)?,
            exclude: rules(exclude)?,
        })
    }

    /// Whether any pattern was given: without one, every file is taken.
    pub fn is_active(&self) -> bool {
        !self.include.is_empty() || !self.exclude.is_empty()
    }

    /// Whether the file at `path` (relative to the directory, `/` between
    /// names) is taken. Every pattern is tried, so that each one that
    /// matches a file is known to.
    pub fn takes(&mut self, path: &str) -> bool {
        let try_all = |rules: &mut Vec<(Rule, bool)>| {
            rules.iter_mut().fold(false, |any, (rule, hit)| {
                let matched = rule.matches(path);
                *hit |= matched;
                any || matched
            })
        };
        let included = try_all(&mut self.include) || self.include.is_empty();
        let excluded = try_all(&mut self.exclude);
        included && !excluded
    }

    /// Warns about every pattern that matched no file.
    pub fn warn_unmatched(&self) {
        let unmatched = self.include.iter().map(|r| ("--include", r));
        let unmatched = unmatched.chain(self.exclude.iter().map(|r| ("--exclude", r)));
        for (flag, (rule, _)) in unmatched.filter(|(_, (_, hit))| !hit) {
            log::info(&format!(
                "Warning: {flag} '{}' matched no file.",
                rule.text.escape_debug()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, path: &str) -> bool {
        Rule::new(pattern).unwrap().matches(path)
    }

    #[test]
    fn the_rules_table() {
        let table: &[(&str, &str, bool)] = &[
            // No `/`: the base name, at any depth.
            ("*.map", "app.js.map", true),
            ("*.map", "dist/js/app.js.map", true),
            ("*.map", "app.js", false),
            ("app.js", "dist/app.js", true),
            ("*.map", "maps.map/x", false),
            // With `/`: from the top; a leading `/` is the same.
            ("js/*.js", "js/app.js", true),
            ("js/*.js", "dist/js/app.js", false),
            ("/app.js", "app.js", true),
            ("/app.js", "dist/app.js", false),
            // `*` and `?` stay within a name; `**` crosses.
            ("js/*", "js/a/b.js", false),
            ("a?c", "a/c", false),
            ("a?c", "abc", true),
            ("**/b.js", "b.js", true),
            ("**/b.js", "x/y/b.js", true),
            ("a/**/b.js", "a/b.js", true),
            ("a/**/b.js", "a/x/y/b.js", true),
            ("a/**", "a/x/y", true),
            ("a/**", "b/a/x", false),
            ("a**b", "axxb", true),
            ("a**b", "ax/b", false),
            ("***", "x", true),
            // Classes: ranges and both negations.
            ("[abc].txt", "b.txt", true),
            ("[a-c].txt", "d.txt", false),
            ("[!a].txt", "b.txt", true),
            ("[^a].txt", "a.txt", false),
            ("[^a].txt", "b.txt", true),
            ("[]]", "]", true),
            ("x[/]y", "x/y", false),
            // Escapes.
            ("\\*.txt", "*.txt", true),
            ("\\*.txt", "a.txt", false),
            ("\\[x]", "[x]", true),
            // A trailing `/`: a directory and everything under it.
            ("build/", "build/a.o", true),
            ("build/", "src/build/x/a.o", true),
            ("build/", "build", false),
            ("/build/", "src/build/a.o", false),
            ("src/build/", "src/build/x/a.o", true),
            ("src/build/", "build/a.o", false),
            ("b*/", "bin/x", true),
            // Case-sensitive; dot files are ordinary names.
            ("*.TXT", "a.txt", false),
            ("*", ".hidden", true),
        ];
        for &(pattern, path, expected) in table {
            assert_eq!(matches(pattern, path), expected, "{pattern:?} on {path:?}");
        }
    }

    #[test]
    fn bad_patterns_are_usage_errors() {
        for bad in ["", "/", "//", "[abc"] {
            assert!(
                matches!(Rule::new(bad), Err(Error::Usage(_))),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn include_then_exclude() {
        let s = |inc: &[&str], exc: &[&str]| {
            let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            Selection::new(&owned(inc), &owned(exc)).unwrap()
        };
        let mut all = s(&[], &[]);
        assert!(!all.is_active() && all.takes("a/b"));
        let mut js = s(&["*.js", "*.css"], &["vendor/"]);
        assert!(js.takes("app.js") && js.takes("a/b.css"));
        assert!(!js.takes("vendor/lib.js") && !js.takes("readme.md"));
        let mut maps = s(&[], &["*.map"]);
        assert!(maps.takes("app.js") && !maps.takes("app.js.map"));
    }

    #[test]
    fn remembers_which_patterns_matched() {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut s = Selection::new(&owned(&["*.js", "*.nothing"]), &owned(&["x/"])).unwrap();
        s.takes("a.js");
        let hits: Vec<bool> = s.include.iter().chain(&s.exclude).map(|r| r.1).collect();
        assert_eq!(hits, [true, false, false]);
    }
}
