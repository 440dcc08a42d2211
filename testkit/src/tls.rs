//! HTTPS in front of a plain test server, with a private CA.
//!
//! `TlsProxy` generates a throwaway CA and a certificate for `localhost`,
//! `127.0.0.1` and `*.artifact.test` (rcgen), terminates TLS on a loopback port (rustls) and
//! relays the bytes to an upstream plain-HTTP server. Tests use it to show
//! that certificates are verified by default and that SSL_CERT_FILE /
//! AWS_CA_BUNDLE add a private CA. [`TlsProxy::with_pem`] takes a
//! certificate and key from files instead (the release checks' own CA).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct TlsProxy {
    addr: SocketAddr,
    ca_file: PathBuf,
    _dir: Option<tempfile::TempDir>,
    stop: Arc<AtomicBool>,
}

impl TlsProxy {
    /// With a throwaway CA of its own ([`TlsProxy::ca_file`]).
    pub fn start(upstream: SocketAddr) -> TlsProxy {
        let dir = tempfile::tempdir().expect("temp dir");

        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "artifact test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf_params = CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            // Names tests reach through a proxy, which resolves them.
            "*.artifact.test".to_string(),
            crate::s3::VHOST_DOMAIN.to_string(),
        ])
        .expect("leaf params");
        let leaf_cert = leaf_params
            .signed_by(&leaf_key, &issuer)
            .expect("leaf cert");

        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).expect("write CA");

        let chain = vec![leaf_cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        TlsProxy::serve(upstream, chain, key, ca_file, Some(dir))
    }

    /// With the certificate chain and key of these PEM files.
    pub fn with_pem(upstream: SocketAddr, cert: &Path, key: &Path) -> TlsProxy {
        let chain = CertificateDer::pem_file_iter(cert).expect("read the certificate");
        let chain = chain
            .collect::<Result<_, _>>()
            .expect("parse the certificate");
        let key = PrivateKeyDer::from_pem_file(key).expect("read the key");
        TlsProxy::serve(upstream, chain, key, cert.to_path_buf(), None)
    }

    fn serve(
        upstream: SocketAddr,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        ca_file: PathBuf,
        dir: Option<tempfile::TempDir>,
    ) -> TlsProxy {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .expect("server config"),
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let config = config.clone();
                thread::spawn(move || {
                    let _ = relay(client, upstream, config);
                });
            }
        });
        TlsProxy {
            addr,
            ca_file,
            _dir: dir,
            stop,
        }
    }

    /// `https://localhost:PORT`
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// `https://127.0.0.1:PORT` (the certificate names the address too).
    pub fn ip_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// The private CA's certificate, PEM.
    pub fn ca_file(&self) -> &std::path::Path {
        &self.ca_file
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Shuttles bytes between the TLS client and the plain upstream.
fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    config: Arc<rustls::ServerConfig>,
) -> io::Result<()> {
    let tick = Some(Duration::from_millis(5));
    client.set_read_timeout(tick)?;
    let conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, client);
    let mut plain: Option<TcpStream> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut idle = true;
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                idle = false;
                let up = match &mut plain {
                    Some(up) => up,
                    None => {
                        let up = TcpStream::connect(upstream)?;
                        up.set_read_timeout(tick)?;
                        plain.insert(up)
                    }
                };
                up.write_all(&buf[..n])?;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
        if let Some(up) = &mut plain {
            match up.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    idle = false;
                    tls.write_all(&buf[..n])?;
                    tls.flush()?;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(e),
            }
        }
        if idle && tls.conn.is_handshaking() && !tls.conn.wants_read() {
            break;
        }
    }
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let _ = tls.sock.shutdown(Shutdown::Both);
    Ok(())
}
