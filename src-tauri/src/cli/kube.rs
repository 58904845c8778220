//! `kube-credential NAME`: kubectl's exec credential plugin. kubectl runs it, reads an
//! `ExecCredential` on stdout, and keeps the token until `expirationTimestamp`.

use std::time::Duration;

use anyhow::{bail, Result};

use super::backend::Backend;
use crate::engine::AccountName;

/// The credential API versions kubectl asks for.
pub const VERSIONS: [&str; 2] = [
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
];

/// Which version to answer: `--api-version`, else the one kubectl names in
/// `KUBERNETES_EXEC_INFO`, else v1.
pub fn version(flag: Option<&str>, exec_info: Option<&str>) -> Result<&'static str> {
    let asked = match (flag, exec_info) {
        (Some(flag), _) => Some(flag.to_owned()),
        (None, Some(info)) => serde_json::from_str::<serde_json::Value>(info)
            .ok()
            .and_then(|v| v.get("apiVersion")?.as_str().map(str::to_owned)),
        (None, None) => None,
    };
    let Some(asked) = asked else {
        return Ok(VERSIONS[0]);
    };
    let short = |v: &str| v.rsplit('/').next().unwrap_or(v).to_owned();
    match VERSIONS.iter().find(|v| **v == asked || short(v) == asked) {
        Some(v) => Ok(v),
        None => bail!(
            "kubectl asked for credential API `{asked}`; this Tokenwarden answers {} (set `apiVersion` in the kubeconfig's exec stanza to one of them)",
            VERSIONS.join(" or ")
        ),
    }
}

pub async fn run(
    backend: &impl Backend,
    name: &AccountName,
    version: &str,
    min_valid: Duration,
) -> Result<()> {
    let token = backend
        .tokens(std::slice::from_ref(name), min_valid)
        .await?
        .remove(0);
    let credential = serde_json::json!({
        "apiVersion": version,
        "kind": "ExecCredential",
        "status": {
            "token": token.access_token.expose(),
            "expirationTimestamp": token.expires_at.rfc3339(),
        }
    });
    println!("{credential}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_is_the_flag_then_kubectls_then_v1() {
        let v1 = super::VERSIONS[0];
        let beta = super::VERSIONS[1];
        assert_eq!(super::version(None, None).unwrap(), v1);
        let info = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false}}"#;
        assert_eq!(super::version(None, Some(info)).unwrap(), beta);
        assert_eq!(super::version(Some("v1"), Some(info)).unwrap(), v1);
        assert!(
            super::version(Some("client.authentication.k8s.io/v1alpha1"), None)
                .unwrap_err()
                .to_string()
                .contains("v1alpha1")
        );
    }
}
