//! The library behind the `artifact` binary (`src/main.rs`).
//!
//! Every module is private: the binary reaches exactly the items `app`
//! re-exports, so an item nothing uses still warns as dead code. The fuzz
//! targets in `fuzz/` reach the parsers through `fuzzing`, which exists only
//! in tests and fuzzing builds (`--cfg fuzzing`, set by cargo-fuzz).

#![forbid(unsafe_code)]

mod atomic;
mod aws;
mod backend;
mod checksum;
mod cli;
mod config;
mod error;
mod http;
mod interrupt;
mod log;
mod paths;
mod pattern;
mod progress;
mod proxy;
mod report;
mod retry;
mod time;
mod tls;
mod transfer;

#[cfg(any(test, fuzzing))]
pub mod fuzzing;

/// What `src/main.rs` names, under the same module names, and nothing
/// more. A new use in the binary adds its item here.
pub mod app {
    pub mod atomic {
        pub use crate::atomic::init;
    }
    pub mod backend {
        pub use crate::backend::{Backend, RemoteObject};
        pub mod hub {
            pub use crate::backend::hub::Hub;
        }
        pub mod local {
            pub use crate::backend::local::Local;
        }
        pub mod s3 {
            pub use crate::backend::s3::S3;
        }
    }
    pub mod cli {
        pub use crate::cli::{parse, Invocation, Op, Parsed};
    }
    pub mod config {
        pub use crate::config::{skip_unchanged, BackendKind, Env, Settings, MAX_IN_FLIGHT};
    }
    pub mod error {
        pub use crate::error::{Error, Result};
    }
    pub mod interrupt {
        pub use crate::interrupt::{install, on_signal};
    }
    pub mod log {
        pub use crate::log::{debug, info, set_verbose};
    }
    pub mod paths {
        pub use crate::paths::{PullPaths, PushPaths, Resolver};
    }
    pub mod report {
        pub use crate::report::{
            config_file_ignored, expire_in_is_obsolete, expire_in_on_own_store, failure,
            listing_line, pulled, pushed, yanked,
        };
    }
    pub mod pattern {
        pub use crate::pattern::Selection;
    }
    pub mod transfer {
        pub use crate::transfer::{catalog, pull, push, yank, Budget, Options, PushSource};
    }
}
