//! AWS's protocols, under the S3 backend: request signing (`sigv4`), S3's
//! and STS's XML (`xml`), and finding credentials (`credentials`).
//!
//! Nothing here knows about artifacts or backends. Outside `aws`, `sigv4`
//! and `xml` use only `time` and `error`, so `http` may read error bodies
//! with `xml`; `credentials` calls its endpoints through `http`.

pub mod credentials;
pub mod sigv4;
pub mod xml;

use std::time::SystemTime;

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
