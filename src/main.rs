//! `artifact`: keep files between CI jobs, workflows and releases.
//!
//! The flow of every command, top to bottom:
//! `cli` parses the arguments (pure) → `config` reads the environment →
//! `paths` turns PATH into remote keys → `backend` picks the store (Hub, S3,
//! local) → `transfer` plans and runs the work on parallel workers →
//! `report` prints the Go CLI's lines. Errors travel as one `error::Error`
//! and become an exit code here, in one place.

#![forbid(unsafe_code)]

use artifact_cli::app::{
    atomic, backend, cli, config, error, interrupt, log, paths, pattern, report, transfer,
};

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use backend::Backend;
use cli::{Invocation, Op, Parsed};
use config::{BackendKind, Env, Settings};
use error::{Error, Result};
use paths::{PullPaths, PushPaths, Resolver};
use pattern::Selection;
use transfer::{Budget, Options, PushSource};

fn main() -> ExitCode {
    atomic::init();
    let parsed = cli::parse(std::env::args_os().skip(1));
    let (op, result) = match parsed {
        Ok(Parsed::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            println!("{}", version());
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Run(inv)) => (inv.op, run_command(&inv)),
        Err(e) => (None, Err(e)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report::failure(op, &err);
            ExitCode::from(err.exit_code())
        }
    }
}

fn version() -> String {
    format!(
        "artifact {} (commit {}, {})",
        env!("CARGO_PKG_VERSION"),
        env!("ARTIFACT_COMMIT"),
        env!("ARTIFACT_TARGET")
    )
}

/// The backend that ARTIFACT_BACKEND names, configured from the environment.
fn backend_for(settings: &Settings, env: &Env) -> Result<Arc<dyn Backend>> {
    Ok(match settings.backend {
        BackendKind::Hub => Arc::new(backend::hub::Hub::from_env(env, settings)?),
        BackendKind::Local => Arc::new(backend::local::Local::from_env(env)?),
        BackendKind::S3 => Arc::new(backend::s3::S3::from_env(env, settings)?),
    })
}

/// What a command's PATH (and `-d`) name, locally and in the store.
enum Resolved {
    Push(PushPaths),
    Pull(PullPaths),
    Yank(String),
    List(String),
}

fn resolve(resolver: &Resolver, op: Op, inv: &Invocation) -> Result<Resolved> {
    let destination = inv.destination.as_deref();
    Ok(match op {
        Op::Push => Resolved::Push(resolver.push(&inv.path, destination)?),
        Op::Pull => Resolved::Pull(resolver.pull(&inv.path, destination)?),
        Op::Yank => Resolved::Yank(resolver.yank(&inv.path)?),
        Op::List => Resolved::List(resolver.list(&inv.path)?),
    })
}

/// Runs one parsed command.
fn run_command(inv: &Invocation) -> Result<()> {
    log::set_verbose(inv.verbose);
    if let Some(file) = &inv.config_file {
        report::config_file_ignored(file);
    }
    if inv.expire_in.is_some() {
        report::expire_in_is_obsolete();
    }
    let (Some(op), Some(level)) = (inv.op, inv.level) else {
        return Err(Error::Usage("missing command or level".into()));
    };
    interrupt::install();
    let env = Env::from_process();
    let id = level.id_in_effect(inv.id_flag(level), env.get(level.env_var()))?;
    // Paths and patterns first: a bad one is refused before any store is asked.
    let resolver = Resolver::new(level, id)?;
    let resolved = resolve(&resolver, op, inv)?;
    let mut selection = Selection::new(&inv.include, &inv.exclude)?;
    let settings = Settings::from_env(&env, inv.parallel)?;
    if inv.expire_in.is_some() && settings.backend != BackendKind::Hub {
        report::expire_in_on_own_store();
    }
    let backend = backend_for(&settings, &env)?;
    let cancel = Arc::clone(&backend);
    interrupt::on_signal(Box::new(move || cancel.cancel()));
    let mut skip_unchanged = config::skip_unchanged(&env, inv.skip_unchanged)?;
    if skip_unchanged && settings.backend == BackendKind::Hub && matches!(op, Op::Push | Op::Pull) {
        log::info("Warning: --skip-unchanged is not offered with the Hub backend: the Hub hands out only signed URLs to send or fetch files, nothing to compare them with, so every file is transferred.");
        skip_unchanged = false;
    }
    let options = Options {
        force: inv.force,
        skip_unchanged,
        budget: match settings.parallelism {
            Some(n) => Budget::fixed(n),
            None => Budget::adaptive(config::MAX_IN_FLIGHT),
        },
        retry: settings.http.retry_policy(),
    };

    match resolved {
        Resolved::Push(paths) => {
            let source = if inv.reads_stdin() {
                PushSource::Stdin
            } else {
                PushSource::Path(Path::new(&paths.local))
            };
            log::debug(|| {
                format!(
                    "pushing '{}' to '{}' (force: {}, skip unchanged: {})",
                    paths.local, paths.remote, inv.force, options.skip_unchanged
                )
            });
            let totals = transfer::push(
                backend.as_ref(),
                source,
                &paths.remote,
                &options,
                &mut selection,
            )?;
            report::pushed(level, &paths.local, &paths.remote, totals);
        }
        Resolved::Pull(paths) => {
            log::debug(|| {
                format!(
                    "pulling '{}' to '{}' (force: {}, skip unchanged: {})",
                    paths.remote, paths.local, inv.force, options.skip_unchanged
                )
            });
            let totals = transfer::pull(
                backend.as_ref(),
                &paths.remote,
                Path::new(&paths.local),
                &options,
                &mut selection,
            )?;
            report::pulled(level, &paths.remote, &paths.local, totals);
        }
        Resolved::Yank(remote) => {
            transfer::yank(backend.as_ref(), &remote, &options)?;
            report::yanked(level, &remote);
        }
        Resolved::List(remote) => list(
            backend.as_ref(),
            &remote,
            &resolver,
            &options,
            &mut selection,
            inv.json,
        )?,
    }
    Ok(())
}

/// Prints what is stored at `remote`, a line per file, page by page. A
/// reader that went away (`artifact list … | head`) ends the listing
/// quietly.
fn list(
    backend: &dyn Backend,
    remote: &str,
    resolver: &Resolver,
    options: &transfer::Options,
    selection: &mut Selection,
    json: bool,
) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut gone = false;
    let mut show = |object: &backend::RemoteObject| {
        let line = report::listing_line(object, resolver.level_relative(&object.key), json);
        match writeln!(out, "{line}") {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                gone = true;
                Ok(false)
            }
            Err(e) => Err(Error::local_io(
                "write the listing to",
                Path::new("standard output"),
                e,
            )),
        }
    };
    transfer::catalog(backend, remote, selection, options, &mut show)?;
    match out.flush() {
        Err(e) if !gone && e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::local_io(
            "write the listing to",
            Path::new("standard output"),
            e,
        )),
        _ => Ok(()),
    }
}
