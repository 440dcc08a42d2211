//! A forward proxy that behaves as Squid's default configuration does, for
//! the points clients get wrong:
//!
//! * an absolute-form request (`GET http://host:port/path`) is forwarded
//!   in origin form to 127.0.0.1 at the URL's port (every name resolves to
//!   loopback, so `*.artifact.test` names need no DNS), the Host header as
//!   sent, the hop-by-hop headers dropped;
//! * `CONNECT host:443` is tunnelled to the one TLS upstream given at
//!   start; `CONNECT` to any other port gets 403 (Squid's
//!   `http_access deny CONNECT !SSL_ports`);
//! * an origin-form request (`GET /path`) gets 400: it is no proxy request;
//! * with credentials set, a request without the matching
//!   `Proxy-Authorization: Basic …` gets 407 and `Proxy-Authenticate`.
//!
//! Refusals close the connection. Every request is logged with its
//! `Proxy-Authorization` and the status answered.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::prelude::{Engine, BASE64_STANDARD};

use crate::http::{self, lock, Body, Cut, Handler, Reply, Request, Server};

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    /// As received: an absolute URL, `host:port` for a CONNECT, or a path.
    pub target: String,
    pub proxy_authorization: Option<String>,
    /// The status the proxy answered or relayed.
    pub status: u16,
}

struct Policy {
    tls_upstream: Option<SocketAddr>,
    /// The `Proxy-Authorization` value required, if any.
    required: Option<String>,
    log: Mutex<Vec<Logged>>,
}

/// The running proxy; dropping it stops it.
pub struct Squid {
    policy: Arc<Policy>,
    server: Server,
}

impl Squid {
    /// A proxy without authentication; `CONNECT host:443` goes to
    /// `tls_upstream`.
    pub fn start(tls_upstream: Option<SocketAddr>) -> Squid {
        Squid::launch(tls_upstream, None)
    }

    /// A proxy that demands `user:password` (Basic) on every request.
    pub fn with_auth(tls_upstream: Option<SocketAddr>, user: &str, password: &str) -> Squid {
        let token = BASE64_STANDARD.encode(format!("{user}:{password}"));
        Squid::launch(tls_upstream, Some(format!("Basic {token}")))
    }

    fn launch(tls_upstream: Option<SocketAddr>, required: Option<String>) -> Squid {
        let policy = Arc::new(Policy {
            tls_upstream,
            required,
            log: Mutex::default(),
        });
        Squid {
            server: Server::start(policy.clone()),
            policy,
        }
    }

    /// `http://127.0.0.1:PORT`, for `HTTP_PROXY`/`HTTPS_PROXY`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// `http://user:password@127.0.0.1:PORT`.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@{}", self.server.addr())
    }

    /// How many client connections were accepted.
    pub fn connections(&self) -> usize {
        self.server.connections()
    }

    /// Every request so far, in arrival order.
    pub fn log(&self) -> Vec<Logged> {
        lock(&self.policy.log).clone()
    }
}

impl Policy {
    fn answer(&self, req: &mut Request, body: Body<'_>) -> Reply {
        let refuse = |status| Reply::status(status, "").cut(Cut::Close);
        let connect = req.method == "CONNECT";
        if connect && !req.target.ends_with(":443") {
            return refuse(403);
        }
        if !connect && !req.target.starts_with("http://") {
            return refuse(400);
        }
        if self.required.is_some() && req.header("proxy-authorization") != self.required.as_deref()
        {
            let challenge = ("Proxy-Authenticate".into(), "Basic realm=\"squid\"".into());
            return Reply {
                headers: vec![challenge],
                ..refuse(407)
            };
        }
        if connect {
            return self
                .tls_upstream
                .map_or_else(|| refuse(503), |to| Reply::default().cut(Cut::Tunnel(to)));
        }
        if let Err(e) = body.read(req) {
            return Reply::status(400, &e.to_string()).cut(Cut::Close);
        }
        let port = url::Url::parse(&req.target)
            .ok()
            .and_then(|u| u.port_or_known_default());
        port.and_then(|p| http::forward(SocketAddr::from(([127, 0, 0, 1], p)), req).ok())
            .unwrap_or_else(|| refuse(502))
    }
}

impl Handler for Policy {
    fn call(&self, mut req: Request, body: Body<'_>) -> Reply {
        let reply = self.answer(&mut req, body);
        lock(&self.log).push(Logged {
            proxy_authorization: req.header("proxy-authorization").map(str::to_string),
            method: req.method,
            target: req.target,
            status: reply.status,
        });
        reply
    }
}
