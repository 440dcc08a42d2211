//! AWS credentials, found the way AWS SDK for Go v2 finds them.
//! (Interface placeholder; the chain is being written.)

use std::sync::Arc;
use std::time::SystemTime;

use crate::config::Env;
use crate::error::{Error, Result};

/// A set of AWS credentials. `Debug` never shows the secret parts.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub expires_at: Option<SystemTime>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The resolved credential source, refreshed before expiry.
pub struct Chain {
    current: Arc<Credentials>,
    source: String,
}

impl Chain {
    pub fn resolve(env: &Env) -> Result<Chain> {
        match (
            env.get("AWS_ACCESS_KEY_ID"),
            env.get("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Some(id), Some(secret)) => Ok(Chain {
                current: Arc::new(Credentials {
                    access_key_id: id.to_string(),
                    secret_access_key: secret.to_string(),
                    session_token: env.get("AWS_SESSION_TOKEN").map(str::to_string),
                    expires_at: None,
                }),
                source: "environment".into(),
            }),
            _ => Err(Error::Config("no AWS credentials found".into())),
        }
    }

    pub fn current(&self) -> Result<Arc<Credentials>> {
        Ok(self.current.clone())
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

/// The `region` of the active profile in the shared config file.
pub fn profile_region(_env: &Env) -> Option<String> {
    None
}
