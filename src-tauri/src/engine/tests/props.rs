//! Property tests: whatever comes from outside (config text, provider answers, templates,
//! names, durations, clock readings), parsing never panics, a refusal names what is wrong
//! and where, and every number that results is bounded. Bad input never changes what is
//! stored: the config loader is checked to leave its file byte for byte as it was.

use std::time::{Duration, Instant, SystemTime};

use proptest::prelude::*;

use crate::engine::clock::Steady;
use crate::engine::config::Config;
use crate::engine::names::{parse_duration, AccountName, Deadline};
use crate::engine::provider::{http, lenient};

/// The last second a date may hold: 9999-12-31T23:59:59Z.
const LAST: i64 = 253_402_300_799;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// JSON of any shape a provider might send, nested a few levels.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "\\PC{0,12}|[0-9]{1,22}|-?[0-9]{1,5}\\.[0-9]{1,5}(e[0-9]{1,3})?|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z"
            .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Keys that paths will name, so that some lookups find something.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("data".to_owned()),
        Just("token".to_owned()),
        Just("expires".to_owned()),
        Just("0".to_owned()),
        "[0-9]{1,3}|\\PC{0,6}",
    ]
}

/// A JSON field path as the config writes one: `a.b.0.c`, absurd ones included.
fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(key(), 1..5).prop_map(|keys| keys.join(".")),
        "\\PC{0,20}",
    ]
}

/// TOML values of every kind, absurd ones included.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| if f.is_finite() {
            format!("{f:?}")
        } else {
            "inf".into()
        }),
        any::<bool>().prop_map(|b| b.to_string()),
        "\\PC{0,40}".prop_map(|s| format!("{s:?}")),
        "[a-z0-9:/._{}-]{0,60}".prop_map(|s| format!("\"{s}\"")),
        Just("\"http://auth.example.com/token\"".to_owned()),
        Just("\"{{accounts.a.access_token}}\"".to_owned()),
        Just("\"{{accounts.self.access_token}}\"".to_owned()),
        Just("[\"a\", 1]".to_owned()),
        Just(format!("\"{}\"", "x".repeat(1_000_000))),
    ]
}

const KEYS: &[&str] = &[
    "name",
    "provider",
    "client_id",
    "scopes",
    "auth_url",
    "token_url",
    "revoke_url",
    "redirect_uri",
    "client_auth",
    "pkce",
    "grant",
    "issuer",
    "base_url",
    "endpoint",
    "depends_on",
    "url",
    "method",
    "token_field",
    "expires_in_field",
    "lifetime",
    "refresh_before",
    "allow_insecure_http",
    "unknown_key",
];
const PROVIDERS: &[&str] = &[
    "fitbit",
    "fitbit-legacy",
    "google",
    "oauth2",
    "oidc",
    "wechat",
    "wechat-jsapi-ticket",
    "http",
    "nope",
];

/// A config made of plausible tables with random keys and values.
fn structured() -> impl Strategy<Value = String> {
    let account = (
        "[a-z0-9_-]{1,12}|\\PC{0,12}",
        prop::sample::select(PROVIDERS),
        prop::collection::vec((prop::sample::select(KEYS), value()), 0..6),
    )
        .prop_map(|(name, provider, pairs)| {
            let mut t = format!("[[account]]\nname = {name:?}\nprovider = \"{provider}\"\n");
            for (k, v) in pairs {
                if k != "name" && k != "provider" {
                    t.push_str(&format!("{k} = {v}\n"));
                }
            }
            t
        });
    let header = prop_oneof![
        Just(String::new()),
        value().prop_map(|v| format!("[api]\nlisten = {v}\n")),
        value().prop_map(|v| format!("[api]\nmax_connections = {v}\n")),
        value().prop_map(|v| format!("[refresh]\nmin_interval = {v}\nretry_max = {v}\n")),
    ];
    (header, prop::collection::vec(account, 0..4)).prop_map(|(h, a)| h + &a.join("\n"))
}

fn check_load(text: &str) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    if let Err(e) = Config::load(&path) {
        let message = e.to_string();
        prop_assert!(
            message.contains(&path.display().to_string()),
            "the error names the file: {message}"
        );
        prop_assert!(
            message.len() < 2000,
            "a bounded message: {} bytes",
            message.len()
        );
    }
    prop_assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "the file is untouched"
    );
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_config_loader_never_panics_and_never_writes(text in "\\PC{0,400}") {
        check_load(&text)?;
    }

    #[test]
    fn structured_but_absurd_configs_are_refused_cleanly(text in structured()) {
        check_load(&text)?;
    }

    #[test]
    fn token_answers_of_any_shape_give_bounded_dates(
        expires in prop_oneof![
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            any::<u64>().prop_map(|n| serde_json::json!(n)),
            any::<f64>().prop_map(|f| serde_json::json!(f)),
            "\\PC{0,20}".prop_map(|s| serde_json::json!(s)),
            Just(serde_json::Value::Null),
        ],
        refresh_expires in any::<u64>(),
        access in proptest::option::of("\\PC{0,30}"),
    ) {
        let body = serde_json::json!({
            "access_token": access,
            "refresh_token": "r",
            "expires_in": expires,
            "refresh_token_expires_in": refresh_expires,
        });
        let Some(answer) = lenient::parse(body.to_string().as_bytes()) else {
            return Ok(());
        };
        if let Ok(issued) = answer.into_issued() {
            let set = issued.into_set(None);
            prop_assert!(set.expires_at.unix() <= LAST);
            prop_assert!(set.refresh_expires_at.is_none_or(|d| d.unix() <= LAST));
            prop_assert!(!set.expires_at.rfc3339().is_empty());
        }
    }

    #[test]
    fn http_answers_of_any_shape_at_any_path_give_a_token_or_a_named_refusal(
        body in json(),
        token_field in path(),
        expiry_path in path(),
        kind in 0u8..3,
        fixed in any::<u32>(),
    ) {
        let expiry = match kind {
            0 => http::Expiry::InField(expiry_path.clone()),
            1 => http::Expiry::AtField(expiry_path.clone()),
            _ => http::Expiry::Fixed(Duration::from_secs(u64::from(fixed))),
        };
        let spec = http::HttpSpec {
            url: "http://127.0.0.1:1/token".into(),
            method: http::Method::Get,
            query: Vec::new(),
            form: Vec::new(),
            json: None,
            headers: Vec::new(),
            token_field: token_field.clone(),
            expiry,
            error_field: None,
        };
        let answered = http::Answered { sent: SystemTime::now(), date: None };
        match spec.read_issued(&body, answered) {
            Ok(issued) => {
                let set = issued.into_set(None);
                prop_assert!(set.expires_at.unix() <= LAST);
                prop_assert!(!set.expires_at.rfc3339().is_empty());
            }
            Err(http::Unusable::Bad(why)) => prop_assert!(
                why.contains(&format!("`{token_field}`")) || why.contains(&format!("`{expiry_path}`")),
                "the refusal names the path: {why}"
            ),
            Err(http::Unusable::Expired { field, .. }) => prop_assert_eq!(field, expiry_path),
        }
    }

    #[test]
    fn any_bytes_as_a_token_answer_never_panic(body in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = lenient::parse(&body).map(lenient::Answer::into_issued);
    }

    #[test]
    fn templates_name_only_valid_accounts(text in "\\PC{0,200}|(\\{\\{[a-z._\\PC]{0,30}\\}\\}){0,4}") {
        for name in http::referenced_accounts(&text) {
            prop_assert!(name.as_str().parse::<AccountName>().is_ok());
        }
        let _ = http::placeholders(&text).count();
    }

    #[test]
    fn names_parse_or_refuse_and_round_trip(raw in "\\PC{0,80}") {
        match raw.parse::<AccountName>() {
            Ok(name) => prop_assert_eq!(name.as_str(), raw.as_str()),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn durations_and_dates_never_panic(text in "\\PC{0,30}|[0-9]{1,25}[smhdw]", secs in any::<i64>(), ms in any::<i64>(), d in any::<u64>()) {
        let _ = parse_duration(&text);
        prop_assert!(!Deadline::from_unix(secs).rfc3339().is_empty());
        prop_assert!(Deadline::from_unix_millis(ms).unix() <= LAST);
        prop_assert!(Deadline::after(SystemTime::now(), Duration::from_secs(d)).unix() <= LAST);
    }

    #[test]
    fn the_clock_never_goes_back_and_never_lags_the_wall(
        steps in prop::collection::vec((-100_000i64..100_000, 0u64..5_000), 1..40)
    ) {
        let clock = Steady::new();
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mono = Instant::now();
        let mut elapsed = 0;
        let mut last = None;
        for (offset, step) in steps {
            elapsed += step;
            let m = mono + Duration::from_millis(elapsed);
            let wall = if offset >= 0 {
                base + Duration::from_millis(elapsed) + Duration::from_secs(offset as u64)
            } else {
                base + Duration::from_millis(elapsed) - Duration::from_secs(offset.unsigned_abs())
            };
            let now = clock.observe(wall, m);
            prop_assert!(now >= wall);
            if let Some(prev) = last {
                prop_assert!(now >= prev);
            }
            last = Some(now);
        }
    }
}
