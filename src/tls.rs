//! Which certificate authorities HTTPS connections trust.
//!
//! The base is the machine's CA store when it has one (Linux), else the
//! Mozilla roots compiled into the binary (always on macOS and Windows) (`webpki-root-certs`), so the program works
//! in `FROM scratch` images. `SSL_CERT_FILE` and `SSL_CERT_DIR` add their
//! certificates to that base for every connection; `AWS_CA_BUNDLE` adds its
//! own for S3 and the AWS credential endpoints. A private CA therefore works
//! without losing the public ones. Verification is never switched off.
//! The store is read only when a connection is about to be made, once.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use crate::error::{Error, Result};
use crate::log;

/// Where the machine's CA bundle lives on common Linux distributions (the
/// list Go's crypto/x509 uses).
#[cfg(not(any(windows, target_os = "macos")))]
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// macOS and Windows keep their roots in the Keychain and the certificate
/// store, which only Security.framework and crypt32 read: the base there is
/// always the compiled-in roots (plus SSL_CERT_FILE and SSL_CERT_DIR).
#[cfg(any(windows, target_os = "macos"))]
const SYSTEM_BUNDLES: &[&str] = &[];

/// The user's additions to the trusted roots, from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Trust {
    /// SSL_CERT_FILE
    pub cert_file: Option<PathBuf>,
    /// SSL_CERT_DIR: directories separated by `:`
    pub cert_dirs: Vec<PathBuf>,
    /// AWS_CA_BUNDLE, used only where `aws` is set.
    pub aws_bundle: Option<PathBuf>,
    /// Whether these connections go to AWS (S3, credential endpoints).
    pub aws: bool,
}

impl Trust {
    /// The same trust, for S3 and AWS endpoints (adds AWS_CA_BUNDLE).
    pub fn for_aws(&self) -> Trust {
        Trust {
            aws: true,
            ..self.clone()
        }
    }

    /// The TLS configuration for these roots, built once per process.
    pub fn tls_config(&self) -> Result<TlsConfig> {
        static BUILT: OnceLock<Mutex<HashMap<Trust, TlsConfig>>> = OnceLock::new();
        let cache = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
        let mut cache = cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(config) = cache.get(self) {
            return Ok(config.clone());
        }
        let config = TlsConfig::builder().root_certs(self.roots()?).build();
        cache.insert(self.clone(), config.clone());
        Ok(config)
    }

    fn roots(&self) -> Result<RootCerts> {
        let mut certs: Vec<Certificate<'static>> = match system_bundle() {
            Some(path) => {
                let certs = read_pem(&path).unwrap_or_default();
                log::debug(|| {
                    format!(
                        "trusting {} certificates from {}",
                        certs.len(),
                        path.display()
                    )
                });
                certs
            }
            None => Vec::new(),
        };
        if certs.is_empty() {
            log::debug(|| {
                "no CA store on this machine: trusting the compiled-in Mozilla roots".to_string()
            });
            certs.extend(
                webpki_root_certs::TLS_SERVER_ROOT_CERTS
                    .iter()
                    .map(|der| Certificate::from_der(der.as_ref()).to_owned()),
            );
        }
        if let Some(file) = &self.cert_file {
            certs.extend(required_pem(file, "SSL_CERT_FILE")?);
        }
        for dir in &self.cert_dirs {
            certs.extend(pem_files_in(dir)?);
        }
        if self.aws {
            if let Some(bundle) = &self.aws_bundle {
                certs.extend(required_pem(bundle, "AWS_CA_BUNDLE")?);
            }
        }
        Ok(RootCerts::new_with_certs(&certs))
    }
}

fn system_bundle() -> Option<PathBuf> {
    SYSTEM_BUNDLES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// The certificates of a PEM file the user named; an error names the variable.
fn required_pem(path: &Path, variable: &str) -> Result<Vec<Certificate<'static>>> {
    let certs = read_pem(path).map_err(|why| {
        Error::Config(format!(
            "{variable}='{}' cannot be used: {why}; point it at a PEM file of CA certificates",
            path.display()
        ))
    })?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "{variable}='{}' holds no PEM certificate; point it at a PEM file of CA certificates",
            path.display()
        )));
    }
    Ok(certs)
}

fn pem_files_in(dir: &Path) -> Result<Vec<Certificate<'static>>> {
    let entries = fs::read_dir(dir).map_err(|e| {
        Error::Config(format!(
            "SSL_CERT_DIR entry '{}' cannot be read: {e}",
            dir.display()
        ))
    })?;
    let mut certs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_file() {
            // Hash links, .pem and .crt files alike; what is not PEM is skipped.
            certs.extend(read_pem(&path).unwrap_or_default());
        }
    }
    Ok(certs)
}

fn read_pem(path: &Path) -> std::result::Result<Vec<Certificate<'static>>, String> {
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&bytes) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => return Err(format!("it is not valid PEM ({e})")),
        }
    }
    Ok(certs)
}

/// Makes ring the process's TLS crypto provider (the one provider we ship).
pub fn install_crypto_provider() {
    // Fails only when a provider is already installed, which is just as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_roots_are_there() {
        assert!(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() > 100);
    }

    #[test]
    fn named_files_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        fs::write(&empty, b"not a certificate").unwrap();
        let trust = Trust {
            cert_file: Some(empty),
            ..Trust::default()
        };
        let err = trust.roots().unwrap_err().to_string();
        assert!(err.contains("SSL_CERT_FILE"), "{err}");
        let missing = Trust {
            aws_bundle: Some(dir.path().join("missing.pem")),
            aws: true,
            ..Trust::default()
        };
        assert!(missing
            .roots()
            .unwrap_err()
            .to_string()
            .contains("AWS_CA_BUNDLE"));
        // Without `aws`, AWS_CA_BUNDLE is not read at all.
        let ignored = Trust {
            aws_bundle: Some(dir.path().join("missing.pem")),
            ..Trust::default()
        };
        assert!(ignored.roots().is_ok());
    }
}
