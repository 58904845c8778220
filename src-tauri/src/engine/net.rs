//! What the engine and its front ends say about a request that got no answer: one wording
//! for a provider's token endpoint, a proxied API and the CLI's call to a running engine.

/// Describes a reqwest failure by what went wrong and the host it was for, without the URL:
/// a URL may carry a secret in its query (WeChat puts the appsecret there, the proxy a token).
pub fn network_detail(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "request failed"
    };
    match e.url().and_then(|u| {
        u.host_str()
            .map(|h| (h.to_owned(), u.port_or_known_default()))
    }) {
        Some((host, Some(port))) => format!("{what}: {host}:{port}"),
        Some((host, None)) => format!("{what}: {host}"),
        None => what.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_failed_request_is_named_by_its_host_never_its_query() {
        // A port just freed: nothing listens there, so the connection is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/cgi-bin/token?secret=tw-canary-net-7d1");
        let e = reqwest::get(&url).await.unwrap_err();
        let detail = super::network_detail(&e);
        assert_eq!(detail, format!("connection failed: 127.0.0.1:{port}"));
    }
}
