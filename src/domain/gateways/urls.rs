//! Gateway URLs as the console's gateway form types and accepts them (`ws://` or `wss://`
//! with an explicit port).

use crate::domain::{DomainError, DomainResult};

/// A gateway URL as the console types it: `ws://` or `wss://` (`http(s)://` is read as
/// the same address) with a host; anything else answers 422.
pub fn gateway_url(raw: &str) -> DomainResult<url::Url> {
    let bad = || {
        DomainError::unprocessable("gateway_url must be a ws:// or wss:// URL with a host, such as ws://gateway.local:18789")
    };
    let mut url = url::Url::parse(raw.trim()).map_err(|_| bad())?;
    let scheme = match url.scheme() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        _ => return Err(bad()),
    };
    if url.host_str().is_none_or(str::is_empty) || url.set_scheme(scheme).is_err() {
        return Err(bad());
    }
    Ok(url)
}

/// OpenClaw's port when a URL names none.
pub const OPENCLAW_PORT: u16 = 18789;

/// The URL a self-registering gateway reports, in the form the console's gateway form
/// accepts (`ws://` or `wss://` with an explicit port): `http(s)` becomes `ws(s)`, and a
/// URL without a port gets OpenClaw's. The console reads the port the way browsers do, so
/// a scheme's default port (80, 443) cannot be shown; such a URL is kept as it was sent.
pub fn registered_url(raw: &str) -> DomainResult<String> {
    let url = gateway_url(raw).map_err(|_| {
        DomainError::unprocessable(
            "url must be a ws:// or wss:// URL with a host, such as ws://127.0.0.1:18789",
        )
    })?;
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        Some(host) => host.to_string(),
        None => return Ok(url.to_string()),
    };
    let port = url.port().unwrap_or(OPENCLAW_PORT);
    let path = match url.path() {
        "/" => "",
        path => path,
    };
    let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
    Ok(format!("{}://{host}:{port}{path}{query}", url.scheme()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_urls_take_the_consoles_form() {
        let cases = [
            ("http://o", "ws://o:18789"),
            ("https://gw.example/", "wss://gw.example:18789"),
            (
                "ws://10.0.0.2:9000/relay?x=1",
                "ws://10.0.0.2:9000/relay?x=1",
            ),
            ("http://[::1]", "ws://[::1]:18789"),
        ];
        for (raw, want) in cases {
            assert_eq!(registered_url(raw).unwrap(), want, "{raw}");
        }
        assert!(registered_url("ftp://x").is_err());
        assert!(registered_url("not a url").is_err());
    }
}
