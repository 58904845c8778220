//! What a key limited to some accounts sees of `/metrics`: the samples of its accounts and
//! every sample about no account (request counts, the engine's own gauges).

/// The exposition text without the samples labelled with an account `keep` refuses.
pub fn metrics_for(text: &str, keep: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let shown = line.starts_with('#') || account_label(line).is_none_or(&keep);
        if shown {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The value of a sample's `account` label. Account names are `[a-z0-9_-]+`, so the value
/// holds no quote or escape.
fn account_label(line: &str) -> Option<&str> {
    let labels = &line[line.find('{')? + 1..line.find('}')?];
    labels.split(',').find_map(|pair| {
        pair.trim()
            .strip_prefix("account=\"")
            .and_then(|v| v.strip_suffix('"'))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_keys_accounts_and_accountless_samples_are_kept() {
        let text = "# HELP x y\n# TYPE x gauge\n\
            tokenwarden_expiry_seconds{account=\"fb\"} 10\n\
            tokenwarden_expiry_seconds{account=\"wx\"} 20\n\
            tokenwarden_refreshes_total{outcome=\"ok\",account=\"wx\"} 3\n\
            tokenwarden_api_requests_total{route=\"/healthz\",status=\"200\"} 1\n\
            tokenwarden_up 1\n# EOF\n";
        let shown = super::metrics_for(text, |a| a == "fb");
        assert!(shown.contains("{account=\"fb\"} 10"));
        assert!(!shown.contains("wx"), "{shown}");
        assert!(shown.contains("api_requests_total") && shown.contains("tokenwarden_up 1"));
        assert!(shown.starts_with("# HELP") && shown.ends_with("# EOF\n"));
    }
}
