//! Stage two for the whole file: the raw tables → API settings, retry settings and resolved
//! accounts, with names checked for duplicates and `depends_on` / template cycles refused.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::error::Problem;
use super::raw::RawConfig;
use super::{
    fields, presets, Account, ApiSettings, RetrySettings, Schedule, StoreKind, DEFAULT_LISTEN,
};
use crate::engine::bounds;

/// The longest retry delay or refresh floor the config may set: a day.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(24 * 3600);
use crate::engine::names::AccountName;

pub(super) struct Resolved {
    pub api: ApiSettings,
    pub retry: RetrySettings,
    pub per_host: usize,
    pub store: StoreKind,
    pub fleet: Option<super::fleet::FleetSettings>,
    pub reconnect_warning: Duration,
    pub metadata: Option<super::clients::MetadataSettings>,
    pub accounts: Vec<Arc<Account>>,
}

pub(super) fn resolve(raw: RawConfig) -> Result<Resolved, Problem> {
    let api = raw.api.unwrap_or_default();
    let allow_remote = api.allow_remote.unwrap_or(false);
    let listen = match &api.listen {
        Some(l) => {
            let addr: SocketAddr = l.get_ref().parse().map_err(|_| {
                Problem::new(
                    l.span(),
                    Some("listen"),
                    format!(
                        "`{}` is not an IP:port address, e.g. \"127.0.0.1:8732\"",
                        l.get_ref()
                    ),
                )
            })?;
            if !addr.ip().is_loopback() && !allow_remote {
                return Err(Problem::new(l.span(), Some("listen"), "not a loopback address; tokens would be served to the network. Set `allow_remote = true` under [api] if that is really meant"));
            }
            addr
        }
        None => DEFAULT_LISTEN.parse().expect("valid"),
    };
    let max_connections = match &api.max_connections {
        None => ApiSettings::DEFAULT_MAX_CONNECTIONS,
        Some(n) => usize::try_from(*n.get_ref())
            .ok()
            .filter(|n| (1..=bounds::MAX_API_CONNECTIONS).contains(n))
            .ok_or_else(|| {
                Problem::new(
                    n.span(),
                    Some("max_connections"),
                    format!(
                        "must be a whole number from 1 to {}",
                        bounds::MAX_API_CONNECTIONS
                    ),
                )
            })?,
    };
    let idle_timeout = match &api.idle_timeout {
        None => ApiSettings::DEFAULT_IDLE_TIMEOUT,
        Some(v) => fields::duration_at_most(v, "idle_timeout", Duration::from_secs(3600))?
            .max(Duration::from_millis(100)),
    };
    let mut retry = RetrySettings::default();
    let mut min_interval = Schedule::default().min_interval;
    let mut per_host = super::DEFAULT_PER_HOST;
    let mut reconnect_warning = super::DEFAULT_RECONNECT_WARNING;
    if let Some(r) = raw.refresh {
        if let Some(v) = &r.reconnect_warning {
            reconnect_warning =
                fields::duration_at_most(v, "reconnect_warning", bounds::MAX_LIFETIME)?;
        }
        if let Some(n) = &r.per_host {
            per_host = usize::try_from(*n.get_ref())
                .ok()
                .filter(|n| (1..=bounds::MAX_PER_HOST).contains(n))
                .ok_or_else(|| {
                    Problem::new(
                        n.span(),
                        Some("per_host"),
                        format!("must be a whole number from 1 to {}", bounds::MAX_PER_HOST),
                    )
                })?;
        }
        if let Some(v) = &r.retry_initial {
            retry.initial = fields::duration_at_most(v, "retry_initial", MAX_RETRY_DELAY)?
                .max(Duration::from_millis(100));
        }
        if let Some(v) = &r.retry_max {
            retry.max =
                fields::duration_at_most(v, "retry_max", MAX_RETRY_DELAY)?.max(retry.initial);
        }
        if let Some(v) = &r.min_interval {
            min_interval = fields::duration_at_most(v, "min_interval", MAX_RETRY_DELAY)?;
        }
    }

    let raw_store = raw.store.unwrap_or_default();
    let store = match &raw_store.kind {
        None => StoreKind::default(),
        Some(kind) => StoreKind::from_name(kind.get_ref()).ok_or_else(|| {
            Problem::new(
                kind.span(),
                Some("kind"),
                format!("unknown store `{}`; use \"keychain\" (one keychain item per secret, the default), \"database\" (sealed in the data dir, its key in the keychain) or \"redis\" (shared by several hosts)", kind.get_ref()),
            )
        })?,
    };
    let fleet = super::fleet::resolve(store, &raw_store)?;

    let mut seen = std::collections::HashSet::new();
    let mut names = Vec::new();
    for account in &raw.account {
        let name = &account.get_ref().name;
        let parsed: AccountName =
            name.get_ref()
                .parse()
                .map_err(|e: crate::engine::names::BadAccountName| {
                    Problem::new(name.span(), Some("name"), e.to_string())
                })?;
        if !seen.insert(name.get_ref().as_str()) {
            return Err(Problem::new(
                name.span(),
                Some("name"),
                format!("duplicate account name `{parsed}`: names must be unique"),
            ));
        }
        names.push(parsed);
    }

    let mut accounts = Vec::new();
    // Appids fetched on `cgi-bin/token`, and by which account: each fetch there kills the
    // token the other account holds (five minutes later).
    let mut appids: HashMap<String, &AccountName> = HashMap::new();
    // A WeChat ticket talks to the same host as the token it is fetched with.
    let bases: HashMap<&str, url::Url> = raw
        .account
        .iter()
        .filter(|a| a.get_ref().provider.get_ref() == "wechat")
        .filter_map(|a| {
            let base = a.get_ref().base_url.as_ref()?;
            Some((
                a.get_ref().name.get_ref().as_str(),
                url::Url::parse(base.get_ref()).ok()?,
            ))
        })
        .collect();
    for (spanned, name) in raw.account.iter().zip(&names) {
        let raw_account = spanned.get_ref();
        let with_account = |mut p: Problem| {
            p.account = Some(name.to_string());
            p
        };
        let parent_base = raw_account
            .depends_on
            .as_ref()
            .and_then(|d| bases.get(d.get_ref().as_str()));
        let provider = presets::resolve(raw_account, parent_base).map_err(with_account)?;
        if let crate::engine::provider::Provider::WeChat(spec) = &provider {
            if spec.endpoint == crate::engine::provider::wechat::Endpoint::Token {
                if let Some(first) = appids.insert(spec.appid.clone(), name) {
                    let span = raw_account
                        .client_id
                        .as_ref()
                        .map_or(spanned.span(), |c| c.span());
                    return Err(with_account(Problem::new(
                        span,
                        Some("client_id"),
                        format!("appid `{}` is already fetched by account `{first}`: every token fetched for one kills the other's within five minutes. Keep one account (programs can share its token), or set `endpoint = \"stable\"` on both", spec.appid),
                    )));
                }
            }
        }
        let mut upstream = provider.upstream();
        if let Some(dep) = &raw_account.depends_on {
            let dep_name: AccountName =
                dep.get_ref()
                    .parse()
                    .map_err(|e: crate::engine::names::BadAccountName| {
                        with_account(Problem::new(dep.span(), Some("depends_on"), e.to_string()))
                    })?;
            if !names.contains(&dep_name) {
                return Err(with_account(Problem::new(
                    dep.span(),
                    Some("depends_on"),
                    format!("no account is named `{dep_name}`"),
                )));
            }
            if !upstream.contains(&dep_name) {
                upstream.push(dep_name);
            }
        }
        for up in &upstream {
            if !names.contains(up) {
                let span = raw_account
                    .url
                    .as_ref()
                    .map(|u| u.span())
                    .unwrap_or(spanned.span());
                return Err(with_account(Problem::new(
                    span,
                    None,
                    format!("a template names account `{up}`, which does not exist"),
                )));
            }
        }
        let refresh_before = raw_account
            .refresh_before
            .as_ref()
            .map(|v| fields::duration_at_most(v, "refresh_before", bounds::MAX_LIFETIME))
            .transpose()
            .map_err(with_account)?;
        let proxy = super::proxy_target::resolve(raw_account).map_err(with_account)?;
        let refresh_lifetime = raw_account
            .refresh_token_lifetime
            .as_ref()
            .map(|v| fields::duration_at_most(v, "refresh_token_lifetime", bounds::MAX_LIFETIME))
            .transpose()
            .map_err(with_account)?;
        let git = super::clients::git(raw_account).map_err(with_account)?;
        accounts.push(Arc::new(Account {
            name: name.clone(),
            provider_name: raw_account.provider.get_ref().clone(),
            provider,
            upstream,
            schedule: Schedule {
                refresh_before,
                min_interval,
            },
            proxy,
            refresh_lifetime,
            git,
        }));
    }
    if let Some(cycle) = find_cycle(&accounts) {
        let at = raw
            .account
            .iter()
            .find(|a| a.get_ref().name.get_ref() == cycle[0].as_str())
            .expect("cycle members exist");
        let span = at
            .get_ref()
            .depends_on
            .as_ref()
            .map_or(at.span(), |d| d.span());
        let path = cycle
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(" → ");
        let mut p = Problem::new(
            span,
            Some("depends_on"),
            format!("dependency cycle: {path}"),
        );
        p.account = Some(cycle[0].to_string());
        return Err(p);
    }
    super::clients::check_git_overlap(&accounts, &raw.account)?;
    let mut keyless_tokenboy = Vec::new();
    if let Some(list) = &api.keyless_tokenboy {
        if allow_remote || !listen.ip().is_loopback() {
            return Err(Problem::new(list.span(), Some("keyless_tokenboy"), "tokens without a key are served on loopback only; remove this or listen on 127.0.0.1"));
        }
        for raw_name in list.get_ref() {
            let name: AccountName =
                raw_name
                    .parse()
                    .map_err(|e: crate::engine::names::BadAccountName| {
                        Problem::new(list.span(), Some("keyless_tokenboy"), e.to_string())
                    })?;
            if !names.contains(&name) {
                return Err(Problem::new(
                    list.span(),
                    Some("keyless_tokenboy"),
                    format!("no account is named `{name}`"),
                ));
            }
            keyless_tokenboy.push(name);
        }
    }
    let api = ApiSettings {
        listen,
        allow_remote,
        max_connections,
        idle_timeout,
        keyless_tokenboy,
        asking: super::asking::resolve(&api, &names)?,
    };
    let metadata = super::clients::metadata(raw.metadata.as_ref(), &names, &api)?;
    Ok(Resolved {
        api,
        metadata,
        retry,
        per_host,
        store,
        fleet,
        reconnect_warning,
        accounts,
    })
}

/// A dependency cycle, as the list of names around it (first repeated at the end).
fn find_cycle(accounts: &[Arc<Account>]) -> Option<Vec<AccountName>> {
    let edges: HashMap<&AccountName, &Vec<AccountName>> =
        accounts.iter().map(|a| (&a.name, &a.upstream)).collect();
    fn visit<'a>(
        node: &'a AccountName,
        edges: &HashMap<&'a AccountName, &'a Vec<AccountName>>,
        path: &mut Vec<&'a AccountName>,
        done: &mut HashSet<&'a AccountName>,
    ) -> Option<Vec<AccountName>> {
        if let Some(pos) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<AccountName> = path[pos..].iter().map(|n| (*n).clone()).collect();
            cycle.push(node.clone());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in edges.get(node).into_iter().flat_map(|v| v.iter()) {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = HashSet::new();
    accounts
        .iter()
        .find_map(|a| visit(&a.name, &edges, &mut Vec::new(), &mut done))
}
