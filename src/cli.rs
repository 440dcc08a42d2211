//! The command line, parsed with lexopt into a typed request.
//!
//! Parsing is pure: it reads the arguments it is given and nothing else (no
//! environment, no files), so `--help` never costs a credential lookup and
//! every form of every flag is tested right here. The accepted language is
//! the Go CLI's: `artifact [-v] push|pull|yank|delete job|workflow|project PATH
//! [flags]`, flags before or after PATH, in `-d x`, `-dx`, `--destination x`
//! and `--destination=x` forms; and our own `list` (alias `ls`), whose PATH
//! is optional, with `--include`/`--exclude` on push, pull and list.

use std::ffi::OsString;

use lexopt::prelude::*;

use crate::error::Error;
use crate::paths::Level;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Push,
    Pull,
    Yank,
    List,
}

impl Op {
    fn parse(word: &str) -> Option<Op> {
        match word {
            "push" => Some(Op::Push),
            "pull" => Some(Op::Pull),
            "yank" | "delete" => Some(Op::Yank),
            "list" | "ls" => Some(Op::List),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Op::Push => "push",
            Op::Pull => "pull",
            Op::Yank => "yank",
            Op::List => "list",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Op::Push => PUSH_HELP,
            Op::Pull => PULL_HELP,
            Op::Yank => YANK_HELP,
            Op::List => LIST_HELP,
        }
    }
}

/// One transfer command, as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    pub op: Option<Op>,
    pub level: Option<Level>,
    pub path: String,
    pub destination: Option<String>,
    pub force: bool,
    /// --skip-unchanged, when given (true or false): it wins over
    /// ARTIFACT_SKIP_UNCHANGED.
    pub skip_unchanged: Option<bool>,
    pub expire_in: Option<String>,
    pub job_id: Option<String>,
    pub workflow_id: Option<String>,
    pub project_id: Option<String>,
    pub parallel: Option<usize>,
    pub verbose: bool,
    pub config_file: Option<String>,
    /// --include and --exclude, in the order given (`crate::pattern`).
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// list --json: one JSON object per line.
    pub json: bool,
}

impl Invocation {
    /// The ID flag given for the invocation's own level, if any.
    pub fn id_flag(&self, level: Level) -> Option<&str> {
        match level {
            Level::Job => self.job_id.as_deref(),
            Level::Workflow => self.workflow_id.as_deref(),
            Level::Project => self.project_id.as_deref(),
        }
    }

    /// Whether PATH means standard input.
    pub fn reads_stdin(&self) -> bool {
        self.op == Some(Op::Push) && (self.path == "-" || self.path == "/dev/stdin")
    }
}

/// The outcome of parsing: a screen to print or a command to run.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Help(&'static str),
    Version,
    Run(Box<Invocation>),
}

pub fn parse<I>(args: I) -> Result<Parsed, Error>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut parser = lexopt::Parser::from_iter(
        std::iter::once(OsString::from("artifact")).chain(args.into_iter().map(Into::into)),
    );
    let mut inv = Invocation::default();
    let mut help = false;
    let mut positionals = 0;

    while let Some(arg) = parser.next().map_err(usage(inv.op))? {
        match arg {
            Short('h') | Long("help") => help = true,
            Long("version") if inv.op.is_none() => return Ok(Parsed::Version),
            Short('v') => inv.verbose = true,
            Long("verbose") => inv.verbose = bool_value(&mut parser, "verbose", inv.op)?,
            Long("config") => inv.config_file = Some(string(&mut parser, inv.op)?),
            Short('j') | Long("job-id") if inv.op.is_some() => {
                inv.job_id = Some(string(&mut parser, inv.op)?)
            }
            Short('w') | Long("workflow-id") if inv.op.is_some() => {
                inv.workflow_id = Some(string(&mut parser, inv.op)?)
            }
            Short('p') | Long("project-id") if inv.op.is_some() => {
                inv.project_id = Some(string(&mut parser, inv.op)?)
            }
            Short('d') | Long("destination") if matches!(inv.op, Some(Op::Push | Op::Pull)) => {
                inv.destination = Some(string(&mut parser, inv.op)?)
            }
            Short('f') if matches!(inv.op, Some(Op::Push | Op::Pull)) => inv.force = true,
            Long("force") if matches!(inv.op, Some(Op::Push | Op::Pull)) => {
                inv.force = bool_value(&mut parser, "force", inv.op)?
            }
            Long("skip-unchanged") if matches!(inv.op, Some(Op::Push | Op::Pull)) => {
                inv.skip_unchanged = Some(bool_value(&mut parser, "skip-unchanged", inv.op)?)
            }
            Short('e') | Long("expire-in") if inv.op == Some(Op::Push) => {
                inv.expire_in = Some(string(&mut parser, inv.op)?)
            }
            Long("include") if matches!(inv.op, Some(Op::Push | Op::Pull | Op::List)) => {
                inv.include.push(string(&mut parser, inv.op)?)
            }
            Long("exclude") if matches!(inv.op, Some(Op::Push | Op::Pull | Op::List)) => {
                inv.exclude.push(string(&mut parser, inv.op)?)
            }
            Long("json") if inv.op == Some(Op::List) => {
                inv.json = bool_value(&mut parser, "json", inv.op)?
            }
            Long("parallel") if matches!(inv.op, Some(Op::Push | Op::Pull)) => {
                let text = string(&mut parser, inv.op)?;
                inv.parallel = Some(parse_parallel(&text).map_err(|e| usage_error(inv.op, e))?);
            }
            Value(value) => {
                let word = value.into_string().map_err(|v| {
                    usage_error(
                        inv.op,
                        format!("argument '{}' is not valid UTF-8", v.to_string_lossy()),
                    )
                })?;
                match (inv.op, inv.level, positionals) {
                    (None, _, _) if word == "help" => help = true,
                    (None, _, _) if help => return Ok(Parsed::Help(Op::parse(&word).map_or(GENERAL_HELP, Op::help))),
                    (None, _, _) => {
                        inv.op = Some(Op::parse(&word).ok_or_else(|| {
                            usage_error(None, format!("unknown command \"{word}\" for \"artifact\""))
                        })?)
                    }
                    (Some(op), None, _) => {
                        inv.level = Some(Level::parse(&word).ok_or_else(|| {
                            usage_error(
                                inv.op,
                                format!(
                                    "unknown level \"{word}\" for \"artifact {}\": use job, workflow or project",
                                    op.name()
                                ),
                            )
                        })?)
                    }
                    (Some(_), Some(_), 0) => {
                        inv.path = word;
                        positionals = 1;
                    }
                    (Some(_), Some(_), _) => {
                        return Err(usage_error(
                            inv.op,
                            format!("unexpected argument '{word}': give exactly one PATH"),
                        ))
                    }
                }
            }
            other => return Err(usage_error(inv.op, other.unexpected().to_string())),
        }
    }

    if help {
        return Ok(Parsed::Help(inv.op.map_or(GENERAL_HELP, Op::help)));
    }
    let Some(op) = inv.op else {
        return Err(usage_error(
            None,
            "missing command: push, pull, yank or list".into(),
        ));
    };
    if inv.level.is_none() {
        return Err(usage_error(
            inv.op,
            format!(
                "missing level for \"artifact {}\": job, workflow or project",
                op.name()
            ),
        ));
    }
    if positionals == 0 && op != Op::List {
        return Err(usage_error(inv.op, "missing PATH".into()));
    }
    if inv.reads_stdin() && inv.destination.as_deref().unwrap_or("").is_empty() {
        return Err(usage_error(
            inv.op,
            format!(
                "pushing standard input ('{}') needs a name for the artifact: add --destination NAME (-d NAME)",
                inv.path
            ),
        ));
    }
    if inv.reads_stdin() && !(inv.include.is_empty() && inv.exclude.is_empty()) {
        return Err(usage_error(
            inv.op,
            "--include and --exclude choose files of a directory, not parts of standard input"
                .into(),
        ));
    }
    Ok(Parsed::Run(Box::new(inv)))
}

fn parse_parallel(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid --parallel '{text}': expected a whole number from 1 to 1024"
        )),
    }
}

/// A long boolean flag: bare is true; cobra's `--force=false` is accepted.
fn bool_value(parser: &mut lexopt::Parser, name: &str, op: Option<Op>) -> Result<bool, Error> {
    match parser.optional_value() {
        None => Ok(true),
        Some(v) => match v.to_str() {
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            _ => Err(usage_error(
                op,
                format!(
                    "invalid value '{}' for --{name}: use true or false",
                    v.to_string_lossy()
                ),
            )),
        },
    }
}

fn string(parser: &mut lexopt::Parser, op: Option<Op>) -> Result<String, Error> {
    let value = parser.value().map_err(usage(op))?;
    value.into_string().map_err(|v| {
        usage_error(
            op,
            format!("value '{}' is not valid UTF-8", v.to_string_lossy()),
        )
    })
}

fn usage(op: Option<Op>) -> impl Fn(lexopt::Error) -> Error {
    move |e| usage_error(op, e.to_string())
}

/// A usage error: the complaint, the short usage, and where to read more.
fn usage_error(op: Option<Op>, complaint: String) -> Error {
    let (line, more) = match op {
        Some(Op::List) => (
            "artifact list job|workflow|project [PATH] [flags]".to_string(),
            "artifact list --help".to_string(),
        ),
        Some(op) => (
            format!("artifact {} job|workflow|project PATH [flags]", op.name()),
            format!("artifact {} --help", op.name()),
        ),
        None => (
            "artifact push|pull|yank|list job|workflow|project PATH [flags]".to_string(),
            "artifact --help".to_string(),
        ),
    };
    Error::Usage(format!(
        "{complaint}\nUsage: {line}\nRun '{more}' for more."
    ))
}

/// The rules of --include and --exclude, in the help of each command that takes them.
macro_rules! patterns_help {
    () => {
        "
Patterns (gitignore-style, case-sensitive, '/' on every system) apply to a
directory's files, relative to it: without '/' a pattern matches the base name
at any depth ('*.map'); with '/' it is anchored at the directory ('js/*.js',
'/top.txt'); '*' and '?' stay within a name, '**' crosses '/'; '[a-z]',
'[!x]' and '[^x]' are classes; a trailing '/' takes a directory and all under
it ('vendor/'). A pattern that matches nothing is warned about. Not for a
single file.
"
    };
}

pub const GENERAL_HELP: &str = "\
Semaphore artifact CLI: keep files between jobs, workflows and releases.

Usage:
  artifact push job|workflow|project PATH [flags]   store a file, a directory or stdin
  artifact pull job|workflow|project PATH [flags]   download what was pushed
  artifact yank job|workflow|project PATH [flags]   delete it (alias: delete)
  artifact list job|workflow|project [PATH] [flags] show what is stored (alias: ls)

Levels:
  job        artifacts/jobs/$SEMAPHORE_JOB_ID/PATH
  workflow   artifacts/workflows/$SEMAPHORE_WORKFLOW_ID/PATH
  project    artifacts/projects/$SEMAPHORE_PROJECT_ID/PATH

Global flags:
  -v, --verbose        explain every step and request (secrets are redacted)
      --config FILE    accepted for compatibility; ignored
  -h, --help           show help (also: artifact push --help)
      --version        show version, commit and target

Backend (ARTIFACT_BACKEND):
  hub (default)  through Semaphore's artifact Hub: SEMAPHORE_ARTIFACT_TOKEN,
                 SEMAPHORE_ORGANIZATION_URL
  s3             straight to an S3-compatible bucket: ARTIFACT_S3_BUCKET, ...
  local          a directory, e.g. a shared volume: ARTIFACT_LOCAL_DIR

Exit codes: 0 ok, 1 failure, 2 usage, 3 configuration, 4 not found,
5 already exists, 6 permission denied, 7 integrity, 8 local I/O (also: a push
whose --include/--exclude select no file).
See README.md for every variable.
";

/// The flag rows every command's help ends with: the level's ID and the
/// common flags.
macro_rules! level_flags_help {
    () => {
        "  -j, --job-id ID          instead of SEMAPHORE_JOB_ID
  -w, --workflow-id ID     instead of SEMAPHORE_WORKFLOW_ID
  -p, --project-id ID      instead of SEMAPHORE_PROJECT_ID
  -v, --verbose            explain every step and request
  -h, --help               show this help
"
    };
}

/// The flag rows of the commands that take patterns.
macro_rules! selection_flags_help {
    () => {
        "      --include GLOB       only files matching GLOB (repeatable; see below)
      --exclude GLOB       not files matching GLOB (repeatable; after --include)
"
    };
}

const PUSH_HELP: &str = concat!(
    "\
Store a file or a directory (recursively) for later jobs.

Usage:
  artifact push job|workflow|project PATH [flags]
  artifact push job - -d NAME < data      (PATH '-' or /dev/stdin reads stdin)

Flags:
  -d, --destination NAME   remote name (default: the base name of PATH)
  -f, --force              overwrite what is already stored
      --skip-unchanged     with -f: send nothing for a file the store already
                           holds unchanged, mode included (ARTIFACT_SKIP_UNCHANGED;
                           S3 and local backends; the Hub sends everything)
  -e, --expire-in TIME     obsolete, has no effect (use retention policies)
      --parallel N         requests in flight, fixed (ARTIFACT_PARALLELISM; default: adapts, 1-128)
",
    selection_flags_help!(),
    level_flags_help!(),
    patterns_help!(),
    "No file selected: exit 8.
"
);

const PULL_HELP: &str = concat!(
    "\
Download a file or a directory that was pushed earlier.

Usage:
  artifact pull job|workflow|project PATH [flags]

Flags:
  -d, --destination PATH   local path (default: the base name of PATH)
  -f, --force              overwrite local files that already exist
      --skip-unchanged     with -f: leave local files that already match
                           (ARTIFACT_SKIP_UNCHANGED; S3 and local backends)
      --parallel N         requests in flight, fixed (ARTIFACT_PARALLELISM; default: adapts, 1-128)
",
    selection_flags_help!(),
    level_flags_help!(),
    patterns_help!(),
    "Only the selected objects are fetched; none selected: exit 4.
"
);

const YANK_HELP: &str = concat!(
    "\
Delete a file or a directory that was pushed earlier. Alias: delete.

Usage:
  artifact yank job|workflow|project PATH [flags]

Flags:
",
    level_flags_help!()
);

const LIST_HELP: &str = concat!(
    "\
Show what is stored at a level, or under PATH in it; downloads nothing.
Alias: ls.

Usage:
  artifact list job|workflow|project [PATH] [flags]

Prints one line per stored file, in the byte order of its key:
  SIZE<TAB>TIME<TAB>PATH
SIZE in bytes, TIME in RFC 3339 UTC, PATH relative to the level (control
characters escaped). On the Hub backend the list comes from the same Hub
request a pull makes, which gives names only: SIZE and TIME are '-', and the
names are sorted in memory. Nothing stored: exit 4.

Flags:
      --json               one JSON object per line: path, and size and
                           modified where known
",
    selection_flags_help!(),
    level_flags_help!(),
    patterns_help!()
);

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Invocation {
        match parse(args.iter().copied()) {
            Ok(Parsed::Run(inv)) => *inv,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    fn usage_err(args: &[&str]) -> String {
        match parse(args.iter().copied()) {
            Err(Error::Usage(msg)) => msg,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    #[test]
    fn every_destination_form_before_and_after_path() {
        for args in [
            &["push", "job", "a", "-d", "x"][..],
            &["push", "job", "a", "-dx"],
            &["push", "job", "a", "--destination", "x"],
            &["push", "job", "a", "--destination=x"],
            &["push", "job", "-d", "x", "a"],
            &["push", "-dx", "job", "a"],
            &["push", "job", "--destination=x", "a"],
        ] {
            let inv = run(args);
            assert_eq!(inv.destination.as_deref(), Some("x"), "{args:?}");
            assert_eq!(inv.path, "a", "{args:?}");
            assert_eq!(inv.op, Some(Op::Push));
            assert_eq!(inv.level, Some(Level::Job));
        }
    }

    #[test]
    fn commands_levels_and_alias() {
        assert_eq!(run(&["pull", "workflow", "a"]).op, Some(Op::Pull));
        assert_eq!(run(&["yank", "project", "a"]).op, Some(Op::Yank));
        assert_eq!(run(&["delete", "project", "a"]).op, Some(Op::Yank));
        assert_eq!(run(&["pull", "workflow", "a"]).level, Some(Level::Workflow));
    }

    #[test]
    fn flags_per_command() {
        let inv = run(&[
            "push", "job", "a", "-f", "-e", "1w", "-j", "J", "-w", "W", "-p", "P", "-v",
        ]);
        assert!(inv.force && inv.verbose);
        assert_eq!(inv.expire_in.as_deref(), Some("1w"));
        assert_eq!(
            (
                inv.job_id.as_deref(),
                inv.workflow_id.as_deref(),
                inv.project_id.as_deref()
            ),
            (Some("J"), Some("W"), Some("P"))
        );
        assert!(run(&["push", "job", "a", "-fv"]).verbose);
        assert!(!run(&["push", "job", "a", "--force=false"]).force);
        assert_eq!(
            run(&["pull", "job", "a", "--parallel", "3"]).parallel,
            Some(3)
        );
        assert_eq!(
            run(&["pull", "job", "a", "--job-id=9"]).job_id.as_deref(),
            Some("9")
        );
        // --skip-unchanged: push and pull, bare or with a value.
        assert_eq!(run(&["push", "job", "a"]).skip_unchanged, None);
        let skip = |args: &[&str]| run(args).skip_unchanged;
        assert_eq!(
            skip(&["push", "job", "a", "-f", "--skip-unchanged"]),
            Some(true)
        );
        assert_eq!(skip(&["pull", "--skip-unchanged", "job", "a"]), Some(true));
        assert_eq!(
            skip(&["pull", "job", "a", "--skip-unchanged=false"]),
            Some(false)
        );
        assert!(
            usage_err(&["push", "job", "a", "--skip-unchanged=maybe"]).contains("--skip-unchanged")
        );
        usage_err(&["yank", "job", "a", "--skip-unchanged"]);
        // -e is push-only, -d and -f are not for yank.
        usage_err(&["pull", "job", "a", "-e", "1d"]);
        usage_err(&["yank", "job", "a", "-d", "x"]);
        usage_err(&["yank", "job", "a", "-f"]);
        usage_err(&["push", "job", "a", "--parallel", "0"]);
        usage_err(&["push", "job", "a", "--parallel", "many"]);
    }

    #[test]
    fn globals_before_the_command() {
        let inv = run(&["-v", "--config", "c.yml", "push", "job", "a"]);
        assert!(inv.verbose);
        assert_eq!(inv.config_file.as_deref(), Some("c.yml"));
    }

    #[test]
    fn usage_errors() {
        assert!(usage_err(&[]).contains("missing command"));
        assert!(usage_err(&["fetch", "job", "a"]).contains("unknown command \"fetch\""));
        assert!(usage_err(&["push"]).contains("missing level"));
        assert!(usage_err(&["push", "team", "a"]).contains("unknown level \"team\""));
        assert!(usage_err(&["push", "job"]).contains("missing PATH"));
        assert!(usage_err(&["push", "job", "a", "b"]).contains("unexpected argument 'b'"));
        assert!(usage_err(&["push", "job", "a", "--bogus"]).contains("--bogus"));
        assert!(usage_err(&["push", "job", "a", "-d"]).contains("missing argument"));
    }

    #[test]
    fn list_and_patterns() {
        let inv = run(&["list", "workflow"]);
        assert_eq!((inv.op, inv.path.as_str()), (Some(Op::List), ""));
        let inv = run(&["ls", "job", "dist", "--json", "-j", "7", "-v"]);
        assert!(inv.json && inv.verbose);
        assert_eq!(
            (inv.path.as_str(), inv.job_id.as_deref()),
            ("dist", Some("7"))
        );
        let inv = run(&[
            "pull",
            "job",
            "d",
            "--include",
            "*.js",
            "--include=*.css",
            "--exclude",
            "x/",
        ]);
        assert_eq!(inv.include, ["*.js", "*.css"]);
        assert_eq!(inv.exclude, ["x/"]);
        assert_eq!(
            run(&["push", "job", "d", "--exclude=*.map"]).exclude,
            ["*.map"]
        );
        assert_eq!(run(&["list", "job", "--include", "a"]).include, ["a"]);
        // Not on yank, nor on standard input; --json is list's alone.
        usage_err(&["yank", "job", "d", "--include", "*.js"]);
        usage_err(&["delete", "job", "d", "--exclude", "*.js"]);
        assert!(
            usage_err(&["push", "job", "-", "-d", "x", "--include", "a"])
                .contains("standard input")
        );
        usage_err(&["pull", "job", "d", "--json"]);
        assert!(usage_err(&["list", "job", "a", "b"]).contains("[PATH]"));
        assert!(usage_err(&["list"]).contains("missing level"));
    }

    #[test]
    fn stdin_needs_a_destination() {
        assert!(usage_err(&["push", "job", "-"]).contains("--destination"));
        assert!(usage_err(&["push", "job", "/dev/stdin"]).contains("--destination"));
        let inv = run(&["push", "job", "-", "-d", "out.bin"]);
        assert!(inv.reads_stdin());
        // Pulling into "-" is just a file name.
        assert!(!run(&["pull", "job", "-"]).reads_stdin());
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse(["--help"]).unwrap(), Parsed::Help(GENERAL_HELP));
        assert_eq!(parse(["help"]).unwrap(), Parsed::Help(GENERAL_HELP));
        assert_eq!(parse(["push", "--help"]).unwrap(), Parsed::Help(PUSH_HELP));
        assert_eq!(
            parse(["push", "job", "x", "-h"]).unwrap(),
            Parsed::Help(PUSH_HELP)
        );
        assert_eq!(parse(["help", "pull"]).unwrap(), Parsed::Help(PULL_HELP));
        assert_eq!(parse(["delete", "-h"]).unwrap(), Parsed::Help(YANK_HELP));
        assert_eq!(parse(["ls", "--help"]).unwrap(), Parsed::Help(LIST_HELP));
        for help in [PUSH_HELP, PULL_HELP, LIST_HELP] {
            assert!(help.contains("--include GLOB") && help.contains("'**' crosses '/'"));
        }
        assert!(LIST_HELP.contains("same Hub\nrequest a pull makes"));
        assert_eq!(parse(["--version"]).unwrap(), Parsed::Version);
    }
}
