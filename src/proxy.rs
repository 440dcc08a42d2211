//! Which proxy a request goes through: HTTP(S)_PROXY, ALL_PROXY, NO_PROXY.
//!
//! The usual rules, as Go's `http.ProxyFromEnvironment` applies them (our
//! users come from the Go CLI): `HTTPS_PROXY` for https URLs, `HTTP_PROXY`
//! for http, `ALL_PROXY` for either when the specific one is unset, upper
//! or lower case; hosts matching `NO_PROXY` go direct; and so do `localhost`,
//! loopback and link-local addresses (metadata services such as IMDS are
//! never behind a proxy).
//!
//! A `NO_PROXY` entry, as curl and Go read it, is one of:
//! - `*`: every host;
//! - a host name, with or without a leading `.` or `*.`: that host and every
//!   name under it (`example.com` and `.example.com` both match
//!   `a.example.com` and `example.com`);
//! - an IP address, IPv6 bare or in brackets (`::1`, `[fe80::1]`);
//! - either of the two with a port (`minio:9000`, `10.0.0.1:8080`,
//!   `[fe80::1]:8080`): then only for that port (80 and 443 are the ports of
//!   URLs that name none);
//! - a CIDR range (`10.0.0.0/8`, `fd00::/8`): every IP address in it.
//!
//! Entries that are none of these are ignored.
//!
//! Through a proxy, https URLs are tunnelled with `CONNECT` (ureq's own
//! proxy support); plain http URLs are sent to the proxy in absolute form
//! by `absolute_form_agent`, as RFC 9112 has it and as proxies that refuse
//! `CONNECT` to ports other than 443 (Squid's default) require.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use base64::prelude::{Engine, BASE64_STANDARD};
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ChainedConnector, ConnectionDetails, Connector, NextTimeout, RustlsConnector,
    TcpConnector, Transport,
};
use ureq::{Agent, Proxy, ProxyProtocol};
use url::{Host, Url};

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Proxies {
    pub http: Option<String>,
    pub https: Option<String>,
    no_proxy: Vec<NoProxy>,
}

/// One `NO_PROXY` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum NoProxy {
    All,
    /// A host name (lowercase, no leading dot) and the names under it.
    Domain(String, Option<u16>),
    Ip(IpAddr, Option<u16>),
    /// A network address and its prefix length.
    Range(IpAddr, u8),
}

impl Proxies {
    /// The proxies that `lookup` (an environment variable's non-empty value
    /// by name) configures.
    pub fn from_lookup<'a>(lookup: impl Fn(&str) -> Option<&'a str>) -> Proxies {
        let first = |names: &[&str]| names.iter().find_map(|n| lookup(n)).map(str::to_string);
        let all = first(&["ALL_PROXY", "all_proxy"]);
        let no_proxy = first(&["NO_PROXY", "no_proxy"]).unwrap_or_default();
        Proxies {
            http: first(&["HTTP_PROXY", "http_proxy"]).or_else(|| all.clone()),
            https: first(&["HTTPS_PROXY", "https_proxy"]).or(all),
            no_proxy: no_proxy.split(',').filter_map(NoProxy::parse).collect(),
        }
    }

    /// The proxy for `url`, or `None` to connect directly.
    pub fn for_url(&self, url: &str) -> Option<&str> {
        let url = Url::parse(url).ok()?;
        let proxy = match url.scheme() {
            "https" => self.https.as_deref()?,
            "http" => self.http.as_deref()?,
            _ => return None,
        };
        let host = url.host()?;
        let port = url.port_or_known_default()?;
        let ip = match &host {
            Host::Domain(_) => None,
            Host::Ipv4(v4) => Some(IpAddr::V4(*v4)),
            Host::Ipv6(v6) => Some(IpAddr::V6(*v6)),
        };
        let direct = match (&host, ip) {
            (Host::Domain(name), _) => {
                is_localhost(name) || self.no_proxy.iter().any(|e| e.matches_name(name, port))
            }
            (_, Some(ip)) => {
                always_direct(ip) || self.no_proxy.iter().any(|e| e.matches_ip(ip, port))
            }
            (_, None) => false,
        };
        (!direct).then_some(proxy)
    }
}

impl NoProxy {
    fn parse(entry: &str) -> Option<NoProxy> {
        let entry = entry.trim().to_ascii_lowercase();
        if entry.is_empty() {
            return None;
        }
        if entry == "*" {
            return Some(NoProxy::All);
        }
        if let Some((net, bits)) = entry.split_once('/') {
            let net: IpAddr = unbracket(net).parse().ok()?;
            let bits: u8 = bits.parse().ok()?;
            let max = if net.is_ipv4() { 32 } else { 128 };
            return (bits <= max).then_some(NoProxy::Range(net, bits));
        }
        if let Ok(ip) = unbracket(&entry).parse() {
            return Some(NoProxy::Ip(ip, None));
        }
        let (host, port) = match entry.rsplit_once(':') {
            Some((host, port)) => (host, Some(port.parse::<u16>().ok()?)),
            None => (entry.as_str(), None),
        };
        if let Ok(ip) = unbracket(host).parse() {
            return Some(NoProxy::Ip(ip, port));
        }
        let name = host.strip_prefix("*.").unwrap_or(host);
        let name = name.strip_prefix('.').unwrap_or(name);
        if name.is_empty() || name.contains([':', '[', ']', '/']) {
            return None;
        }
        Some(NoProxy::Domain(name.to_string(), port))
    }

    fn matches_name(&self, name: &str, port: u16) -> bool {
        match self {
            NoProxy::All => true,
            NoProxy::Domain(domain, want) => {
                let under = name
                    .strip_suffix(domain.as_str())
                    .is_some_and(|head| head.is_empty() || head.ends_with('.'));
                under && want.is_none_or(|p| p == port)
            }
            NoProxy::Ip(..) | NoProxy::Range(..) => false,
        }
    }

    fn matches_ip(&self, ip: IpAddr, port: u16) -> bool {
        match self {
            NoProxy::All => true,
            NoProxy::Domain(..) => false,
            NoProxy::Ip(entry, want) => *entry == ip && want.is_none_or(|p| p == port),
            NoProxy::Range(net, bits) => in_range(ip, *net, *bits),
        }
    }
}

fn unbracket(s: &str) -> &str {
    s.strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s)
}

/// Whether `ip` lies in `net`/`bits` (both of one family).
fn in_range(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(a.to_bits()), u128::from(b.to_bits()), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (a.to_bits(), b.to_bits(), 128),
        _ => return false,
    };
    let shift = width - u32::from(bits);
    shift >= width || (ip >> shift) == (net >> shift)
}

fn is_localhost(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}

fn always_direct(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => ip.is_loopback() || ip.is_link_local(),
        IpAddr::V6(ip) => {
            ip.is_loopback() || (ip.segments()[0] & 0xffc0) == 0xfe80 || ip.segments()[0] == 0xfd00
        }
    }
}

/// Refuses a proxy URL that a URL parser reads differently from ureq: a
/// password with an unencoded `/`, `?` or `#` ends the host early, so
/// ureq would send requests (and the password) to a host named after the
/// user. A URL without a scheme is `http://`, as ureq reads it.
pub fn check_url(url: &str) -> Result<(), String> {
    let full = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let parsed = Url::parse(&full).map_err(|e| {
        format!("{e} (percent-encode a '/', '?', '#', '@' or ':' in the user or password)")
    })?;
    match parsed.host_str() {
        Some(host) if !host.is_empty() => Ok(()),
        _ => Err("it names no host".to_string()),
    }
}

/// The scheme of `proxy`: we speak to HTTP proxies only (SOCKS is not built in).
pub fn http_scheme(proxy: &Proxy) -> Result<&'static str, String> {
    match proxy.protocol() {
        ProxyProtocol::Http => Ok("http"),
        ProxyProtocol::Https => Ok("https"),
        _ => Err("only http:// and https:// proxies are supported".to_string()),
    }
}

/// An agent for plain-http URLs through the HTTP proxy `proxy` (an http or
/// https URL): every request goes to the proxy in absolute form.
pub fn absolute_form_agent(config: Config, proxy: &Proxy) -> Result<Agent, String> {
    let authority = proxy.uri().authority().map_or("", |a| a.as_str());
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let scheme = http_scheme(proxy)?;
    let uri: Uri = format!("{scheme}://{host_port}/")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let authorization = (proxy.username().is_some() || proxy.password().is_some()).then(|| {
        let pair = format!(
            "{}:{}",
            proxy.username().unwrap_or(""),
            proxy.password().unwrap_or("")
        );
        Arc::from(format!("Basic {}", BASE64_STANDARD.encode(pair)))
    });
    let connector = AbsoluteForm {
        proxy: uri.clone(),
        authorization,
        to_proxy: TcpConnector::default().chain(RustlsConnector::default()),
    };
    Ok(Agent::with_parts(config, connector, AtProxy(uri)))
}

/// The connector of `absolute_form_agent`.
///
/// ureq sends every proxied request through a `CONNECT host:port` tunnel;
/// proxies rightly refuse that for plain http (Squid's default allows
/// CONNECT to port 443 only). For an http URL, RFC 9112 §3.2.2 has the
/// client send its request to the proxy with the absolute URL as the target:
/// `GET http://host:port/path HTTP/1.1`. This connector opens the connection
/// to the proxy (TLS when the proxy's URL is https), whatever host the
/// request names, and its transport turns each request line ureq writes into
/// that form, adding `Proxy-Authorization` when the proxy URL has
/// credentials. Everything else stays ureq's: connections are pooled per
/// target, timeouts, bodies and answers are handled as for any request.
struct AbsoluteForm {
    /// `scheme://host:port/` of the proxy, without credentials.
    proxy: Uri,
    /// `Basic …`, from the proxy URL's user and password.
    authorization: Option<Arc<str>>,
    to_proxy: ChainedConnector<(), TcpConnector, RustlsConnector>,
}

impl Connector for AbsoluteForm {
    type Out = AbsoluteFormTransport;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<AbsoluteFormTransport>, ureq::Error> {
        let target = details.uri;
        let authority = target.authority().map_or("", |a| a.as_str());
        let origin = format!(
            "{}://{}",
            target.scheme_str().unwrap_or("http"),
            authority.rsplit('@').next().unwrap_or(authority)
        );
        // `details.addrs` are the proxy's: `AtProxy` resolved them.
        let to_proxy = ConnectionDetails {
            uri: &self.proxy,
            addrs: details.addrs.clone(),
            config: details.config,
            request_level: details.request_level,
            resolver: details.resolver,
            now: details.now,
            timeout: details.timeout,
            current_time: details.current_time.clone(),
            run_connector: details.run_connector.clone(),
            register_shutdown: details.register_shutdown.clone(),
        };
        let inner = self
            .to_proxy
            .connect(&to_proxy, None)?
            .ok_or(ureq::Error::ConnectionFailed)?;
        Ok(Some(AbsoluteFormTransport {
            inner: Box::new(inner),
            origin,
            authorization: self.authorization.clone(),
            at_head: true,
        }))
    }
}

impl fmt::Debug for AbsoluteForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the credentials.
        f.debug_struct("AbsoluteForm")
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

/// Resolves every URL to the proxy's addresses: through a forward proxy,
/// target names are the proxy's to resolve.
#[derive(Debug)]
struct AtProxy(Uri);

impl Resolver for AtProxy {
    fn resolve(
        &self,
        _uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        DefaultResolver::default().resolve(&self.0, config, timeout)
    }
}

/// A connection to the proxy on which ureq's requests leave in absolute form.
///
/// ureq writes a request's head (its first write holds at least the whole
/// request line), then its body, then reads the answer; the next write after
/// a read is the next request's head. Only that first write is rewritten;
/// the rest pass through untouched. (ureq reads before a body only for
/// `Expect: 100-continue`, which no request of ours sends; a write that is
/// not an origin-form request line where one is due is an error, never sent.)
struct AbsoluteFormTransport {
    inner: Box<dyn Transport>,
    /// `http://host[:port]` of the target.
    origin: String,
    authorization: Option<Arc<str>>,
    /// The next write starts a request.
    at_head: bool,
}

impl Transport for AbsoluteFormTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if !std::mem::take(&mut self.at_head) {
            return self.inner.transmit_output(amount, timeout);
        }
        let written = self
            .inner
            .buffers()
            .output()
            .get(..amount)
            .unwrap_or_default();
        let head = absolute_form(written, &self.origin, self.authorization.as_deref()).ok_or_else(
            || {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a request to the proxy does not start with a request line",
                )
            },
        )?;
        let mut rest = head.as_slice();
        while !rest.is_empty() {
            let out = self.inner.buffers().output();
            let n = out.len().min(rest.len());
            if n == 0 {
                return Err(io::Error::other("no output buffer to write to the proxy").into());
            }
            out[..n].copy_from_slice(&rest[..n]);
            self.inner.transmit_output(n, timeout)?;
            rest = &rest[n..];
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.at_head = true;
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }
}

impl fmt::Debug for AbsoluteFormTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbsoluteFormTransport")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// `head` (the start of a request as ureq writes it: `GET /p?q HTTP/1.1`,
/// CRLF, headers) with the target in absolute form (`GET http://h:1/p?q
/// HTTP/1.1`) and a `Proxy-Authorization` line after the request line when
/// given; `None` when `head` does not start with an origin-form request line.
fn absolute_form(head: &[u8], origin: &str, authorization: Option<&str>) -> Option<Vec<u8>> {
    let space = head.iter().position(|&b| b == b' ')?;
    let line_end = head.windows(2).position(|w| w == b"\r\n")?;
    let method = &head[..space];
    if method.is_empty()
        || !method.iter().all(u8::is_ascii_uppercase)
        || head.get(space + 1) != Some(&b'/')
        || line_end < space
    {
        return None;
    }
    let mut out = Vec::with_capacity(head.len() + origin.len() + 80);
    out.extend_from_slice(&head[..=space]);
    out.extend_from_slice(origin.as_bytes());
    out.extend_from_slice(&head[space + 1..line_end + 2]);
    if let Some(value) = authorization {
        out.extend_from_slice(b"Proxy-Authorization: ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(&head[line_end + 2..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(pairs: &[(&str, &str)]) -> Proxies {
        Proxies::from_lookup(|name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v))
    }

    #[test]
    fn proxy_urls_that_parsers_read_differently_are_refused() {
        for good in [
            "http://u:p@proxy:3128",
            "proxy:3128",
            "https://proxy",
            "http://u:p%2Fq@p:1",
        ] {
            assert_eq!(check_url(good), Ok(()), "{good}");
        }
        for bad in [
            "http://u:se/cret@proxy:3128",
            "http://u:se?cret@p:1",
            "http://u:se#cret@p:1",
            "http://",
        ] {
            let why = check_url(bad).unwrap_err();
            assert!(!why.contains("cret"), "{why}");
        }
    }

    #[test]
    fn per_scheme_with_all_proxy_as_fallback() {
        let p = proxies(&[("HTTPS_PROXY", "http://s:1"), ("http_proxy", "http://h:2")]);
        assert_eq!(
            p.for_url("https://bucket.s3.amazonaws.com/k"),
            Some("http://s:1")
        );
        assert_eq!(p.for_url("http://minio:9000/b/k"), Some("http://h:2"));
        let all = proxies(&[("ALL_PROXY", "http://a:3"), ("HTTP_PROXY", "http://h:2")]);
        assert_eq!(all.for_url("https://x/"), Some("http://a:3"));
        assert_eq!(all.for_url("http://x/"), Some("http://h:2"));
        assert_eq!(proxies(&[]).for_url("https://x/"), None);
    }

    #[test]
    fn local_addresses_go_direct() {
        let p = proxies(&[("HTTPS_PROXY", "http://s:1"), ("HTTP_PROXY", "http://s:1")]);
        for local in [
            "http://127.0.0.1:9/x",
            "http://localhost/x",
            "http://a.localhost:8/x",
            "http://169.254.169.254/latest",
            "http://[::1]:8/x",
            "http://[fe80::1]/x",
        ] {
            assert_eq!(p.for_url(local), None, "{local}");
        }
    }

    /// (NO_PROXY, URL, proxied?), as curl and Go decide.
    #[test]
    fn no_proxy_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("", "http://example.com/", true),
            ("*", "https://anything/x", false),
            ("*", "http://10.1.2.3:9000/x", false),
            // Host suffixes, with or without a leading dot or "*.".
            ("example.com", "http://example.com/", false),
            ("example.com", "http://a.example.com/", false),
            ("example.com", "https://a.b.EXAMPLE.com:8443/", false),
            ("example.com", "http://notexample.com/", true),
            ("example.com", "http://example.com.evil/", true),
            (".example.com", "http://a.example.com/", false),
            (".example.com", "http://example.com/", false),
            ("*.example.com", "http://a.example.com/", false),
            (" internal.corp , .svc", "http://api.svc/", false),
            ("internal.corp,.svc", "https://notinternal.corp/", true),
            ("EXAMPLE.COM", "http://example.com/", false),
            // Entries with ports: only that port (80/443 when the URL has none).
            ("minio:9000", "http://minio:9000/b", false),
            ("minio:9000", "http://minio:9001/b", true),
            ("minio:9000", "http://minio/b", true),
            ("example.com:443", "https://example.com/", false),
            ("example.com:443", "http://example.com/", true),
            (".svc:8080", "http://a.svc:8080/", false),
            ("minio:notaport", "http://minio/", true),
            // IP addresses, with and without ports.
            ("10.0.0.1", "http://10.0.0.1:9000/", false),
            ("10.0.0.1", "http://10.0.0.2/", true),
            ("10.0.0.1:9000", "http://10.0.0.1:9000/", false),
            ("10.0.0.1:9000", "http://10.0.0.1:9001/", true),
            // IPv6: bare, bracketed, with ports; never cut at the first ':'.
            ("2001:db8::1", "http://[2001:db8::1]:9000/", false),
            ("[2001:db8::1]", "http://[2001:db8::1]/", false),
            ("[2001:db8::1]", "http://[2001:db8::2]/", true),
            ("[2001:db8::1]:8080", "http://[2001:db8::1]:8080/", false),
            ("[2001:db8::1]:8080", "http://[2001:db8::1]:8081/", true),
            ("2001:db8::1", "http://2001.example/", true),
            // CIDR ranges.
            ("10.0.0.0/8", "http://10.200.3.4:9000/", false),
            ("10.0.0.0/8", "http://11.0.0.1/", true),
            ("192.168.1.0/24", "http://192.168.1.77/", false),
            ("192.168.1.0/24", "http://192.168.2.1/", true),
            ("0.0.0.0/0", "http://8.8.8.8/", false),
            ("fd00::/8", "http://[fd12:3456::1]/", false),
            ("fd00::/8", "http://[fe00::1]/", true),
            ("2001:db8::/32", "https://[2001:db8:ffff::1]/", false),
            ("10.0.0.0/8", "http://[::ffff:10.0.0.1]/", true),
            ("10.0.0.0/8", "http://ten.example/", true),
            ("10.0.0.0/33", "http://10.0.0.1/", true),
            // Names do not match addresses, nor addresses names.
            ("example.com", "http://93.184.216.34/", true),
            ("10.0.0.1", "http://ten.example/", true),
        ];
        for (no_proxy, url, proxied) in cases {
            let p = proxies(&[
                ("HTTPS_PROXY", "http://p:1"),
                ("HTTP_PROXY", "http://p:1"),
                ("NO_PROXY", no_proxy),
            ]);
            assert_eq!(
                p.for_url(url).is_some(),
                *proxied,
                "NO_PROXY={no_proxy:?} {url}"
            );
        }
    }

    #[test]
    fn lower_case_no_proxy_counts() {
        let p = proxies(&[("HTTP_PROXY", "http://p:1"), ("no_proxy", "minio")]);
        assert_eq!(p.for_url("http://minio:9000/"), None);
    }

    #[test]
    fn request_lines_become_absolute_form() {
        let head =
            b"PUT /b/k%20x?partNumber=1 HTTP/1.1\r\nhost: m:9000\r\ncontent-length: 3\r\n\r\nabc";
        assert_eq!(
            absolute_form(head, "http://m:9000", None).unwrap(),
            b"PUT http://m:9000/b/k%20x?partNumber=1 HTTP/1.1\r\nhost: m:9000\r\ncontent-length: 3\r\n\r\nabc"
        );
        assert_eq!(
            absolute_form(b"GET / HTTP/1.1\r\n\r\n", "http://h", Some("Basic dTpw")).unwrap(),
            b"GET http://h/ HTTP/1.1\r\nProxy-Authorization: Basic dTpw\r\n\r\n"
        );
        // Not a request line: a body, a line cut short, an absolute target.
        for not_a_head in [
            &b"hello world\r\n"[..],
            b"GET /no-line-end",
            b"GET http://h/ HTTP/1.1\r\n",
            b" /x HTTP/1.1\r\n",
            b"",
        ] {
            assert_eq!(absolute_form(not_a_head, "http://h", None), None);
        }
    }

    #[test]
    fn agents_take_http_proxies_only() {
        let proxy = |url| Proxy::new(url).unwrap();
        assert_eq!(http_scheme(&proxy("http://u:p@p:3128")), Ok("http"));
        assert_eq!(http_scheme(&proxy("https://p")), Ok("https"));
        assert_eq!(http_scheme(&proxy("p:3128")), Ok("http"));
        assert!(http_scheme(&proxy("socks5://p:1080")).is_err());
        let config = Agent::config_builder().build();
        assert!(absolute_form_agent(config, &proxy("http://u:p@p:3128")).is_ok());
    }
}
