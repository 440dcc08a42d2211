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

use std::net::IpAddr;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(pairs: &[(&str, &str)]) -> Proxies {
        Proxies::from_lookup(|name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v))
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
}
