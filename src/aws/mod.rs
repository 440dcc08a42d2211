//! AWS's protocols, shared by the S3 backend and the credential sources:
//! request signing (`sigv4`), the XML answers of S3 and STS (`xml`), and
//! finding credentials (`credentials`). Nothing here knows about artifacts
//! or the backends that use it.

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
