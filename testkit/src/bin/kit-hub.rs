//! The test kit's Hub over TLS, for `make release-check`:
//!
//!     kit-hub CERT KEY TOKEN PORTFILE
//!
//! Serves the Hub (`POST /api/v1/artifacts`, checking TOKEN) and the
//! storage its signed URLs point at, each behind TLS with the PEM
//! certificate chain CERT and key KEY, on 127.0.0.1. Writes the Hub's port
//! to PORTFILE once both listen, and serves until killed.

use std::path::Path;

use testkit::hub::HubServer;
use testkit::tls::TlsProxy;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cert, key, token, port_file] = &args[..] else {
        eprintln!("usage: kit-hub CERT KEY TOKEN PORTFILE");
        std::process::exit(2);
    };
    let (cert, key) = (Path::new(cert), Path::new(key));
    let hub = HubServer::with_token(token);
    let addr = |url: String| url.trim_start_matches("http://").parse().expect("address");
    let storage = TlsProxy::with_pem(addr(hub.storage_url()), cert, key);
    hub.point_urls_at(&storage.ip_url());
    let front = TlsProxy::with_pem(addr(hub.org_url()), cert, key);
    let port = front
        .ip_url()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_string();
    let tmp = format!("{port_file}.tmp");
    std::fs::write(&tmp, port).expect("write the port file");
    std::fs::rename(&tmp, port_file).expect("write the port file");
    loop {
        std::thread::park();
    }
}
