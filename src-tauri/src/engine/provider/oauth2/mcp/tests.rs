use super::registration::*;
use super::*;
use crate::engine::provider::oauth2::ClientAuth;
use crate::engine::secret::Secret;

#[test]
fn the_bearer_challenge_gives_its_resource_metadata_and_scope() {
    let c = parse_challenge(
        r#"Bearer error="invalid_token", error_description="no token", resource_metadata="http://127.0.0.1:9/.well-known/oauth-protected-resource/mcp", scope="read write""#,
    );
    assert_eq!(
        c.resource_metadata.as_deref(),
        Some("http://127.0.0.1:9/.well-known/oauth-protected-resource/mcp")
    );
    assert_eq!(c.scope.as_deref(), Some("read write"));
    let bare = parse_challenge("bearer resource_metadata=https://a.example/m,scope=x");
    assert_eq!(
        bare.resource_metadata.as_deref(),
        Some("https://a.example/m")
    );
    assert_eq!(bare.scope.as_deref(), Some("x"));
    assert_eq!(parse_challenge(r#"Basic realm="x""#), Challenge::default());
}

#[test]
fn well_known_places_put_the_segment_before_the_path() {
    let url = Url::parse("https://mcp.example.com/tenant/mcp/").unwrap();
    let places: Vec<String> = well_known(&url, "oauth-protected-resource")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        places,
        [
            "https://mcp.example.com/.well-known/oauth-protected-resource/tenant/mcp",
            "https://mcp.example.com/.well-known/oauth-protected-resource"
        ]
    );
}

#[test]
fn a_registration_is_told_from_a_typed_secret() {
    let r = Registration {
        tokenwarden_registration: 1,
        client_id: "abc".into(),
        client_secret: None,
        auth: "none".into(),
        redirect_uri: Url::parse("http://127.0.0.1:5000/callback").unwrap(),
        issuer: None,
    };
    let back = Registration::from_secret(&r.to_secret()).unwrap();
    assert_eq!(back.client_id, "abc");
    assert_eq!(back.client_auth(), ClientAuth::None);
    assert!(Registration::from_secret(&Secret::new("s3cret".to_owned())).is_none());
}
