//! Which proxy a request goes through: HTTP(S)_PROXY, ALL_PROXY, NO_PROXY.
//!
//! The usual rules, as Go's `http.ProxyFromEnvironment` applies them (our
//! users come from the Go CLI): `HTTPS_PROXY` for https URLs, `HTTP_PROXY`
//! for http, `ALL_PROXY` for either when the specific one is unset, upper
//! or lower case; hosts matching `NO_PROXY` go direct; and so do `localhost`,
//! loopback and link-local addresses (metadata services such as IMDS are
//! never behind a proxy).

use std::net::IpAddr;

use crate::config::Env;

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Proxies {
    pub http: Option<String>,
    pub https: Option<String>,
    no_proxy: Vec<String>,
}

impl Proxies {
    pub fn from_env(env: &Env) -> Proxies {
        let first = |names: &[&str]| names.iter().find_map(|n| env.get(n)).map(str::to_string);
        let all = first(&["ALL_PROXY", "all_proxy"]);
        let no_proxy = first(&["NO_PROXY", "no_proxy"]).unwrap_or_default();
        Proxies {
            http: first(&["HTTP_PROXY", "http_proxy"]).or_else(|| all.clone()),
            https: first(&["HTTPS_PROXY", "https_proxy"]).or(all),
            no_proxy: no_proxy
                .split(',')
                .map(|e| e.trim().to_ascii_lowercase())
                .filter(|e| !e.is_empty())
                .collect(),
        }
    }

    /// The proxy for `url`, or `None` to connect directly.
    pub fn for_url(&self, url: &str) -> Option<&str> {
        let (scheme, rest) = url.split_once("://")?;
        let proxy = match scheme.to_ascii_lowercase().as_str() {
            "https" => self.https.as_deref()?,
            "http" => self.http.as_deref()?,
            _ => return None,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let authority = authority.rsplit('@').next().unwrap_or("");
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        }
        .to_ascii_lowercase();
        if always_direct(&host) || self.excluded(&host) {
            None
        } else {
            Some(proxy)
        }
    }

    fn excluded(&self, host: &str) -> bool {
        self.no_proxy.iter().any(|entry| {
            let entry = entry.split(':').next().unwrap_or(entry);
            let entry = entry.strip_prefix("*.").unwrap_or(entry);
            let entry = entry.strip_prefix('.').unwrap_or(entry);
            entry == "*" || host == entry || host.ends_with(&format!(".{entry}"))
        })
    }
}

fn always_direct(host: &str) -> bool {
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback() || ip.is_link_local(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || (ip.segments()[0] & 0xffc0) == 0xfe80 || ip.segments()[0] == 0xfd00
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(pairs: &[(&str, &str)]) -> Proxies {
        Proxies::from_env(&Env::from_pairs(pairs.iter().copied()))
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
    fn no_proxy_and_local_addresses_go_direct() {
        let p = proxies(&[
            ("HTTPS_PROXY", "http://s:1"),
            ("HTTP_PROXY", "http://s:1"),
            ("NO_PROXY", "internal.corp, .svc,minio:9000"),
        ]);
        assert_eq!(p.for_url("https://a.internal.corp/x"), None);
        assert_eq!(p.for_url("https://internal.corp/x"), None);
        assert_eq!(p.for_url("http://api.svc:80/x"), None);
        assert_eq!(p.for_url("http://minio:9000/x"), None);
        assert_eq!(p.for_url("https://notinternal.corp/x"), Some("http://s:1"));
        for local in [
            "http://127.0.0.1:9/x",
            "http://localhost/x",
            "http://169.254.169.254/latest",
            "http://[::1]:8/x",
        ] {
            assert_eq!(p.for_url(local), None, "{local}");
        }
        let star = proxies(&[("HTTPS_PROXY", "http://s:1"), ("NO_PROXY", "*")]);
        assert_eq!(star.for_url("https://anything/x"), None);
    }
}
