//! The fleet's coordinator: which host refreshes an account (its lease, taken in the one
//! acquire loop and renewed while held), what follows for the fences this host writes with
//! and believes (see `fences`), what the other hosts write (pub/sub, see `listen`), and the
//! counts the hosts share. Its Redis calls block, so each runs on the blocking pool.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::broadcast;

use super::fences::{Fences, Verdict, WriteAs, Written};
use super::link::Link;
use super::listen::{self, Hearing};
use super::scripts::{ACQUIRE, RELEASE, RENEW};
use super::{FleetError, Heard};
use crate::engine::names::AccountName;
use crate::engine::store::item::{Fence, SecretKey, StoreError};

pub struct Coordinator {
    pub(super) link: Arc<Link>,
    /// Per account: the fences this host has seen, holds and leased (see `fences`).
    fences: Mutex<Fences>,
    hearing: Arc<Hearing>,
}

impl Coordinator {
    pub(super) fn new(link: Arc<Link>) -> Arc<Self> {
        Arc::new(Self {
            link,
            fences: Mutex::new(Fences::default()),
            hearing: Hearing::new(),
        })
    }

    pub fn host(&self) -> &str {
        &self.link.host
    }

    /// The store's URL as configured (it never holds a password).
    pub fn url(&self) -> &str {
        self.link.url()
    }

    /// Whether this host's subscription to the fleet's channel is up right now.
    pub fn heard_lately(&self) -> bool {
        self.hearing.subscribed.load(Ordering::SeqCst)
    }

    pub fn lease_time(&self) -> Duration {
        self.link.settings.lease
    }

    /// What other hosts wrote (and when the subscription came back after a gap).
    pub fn heard(&self) -> broadcast::Receiver<Heard> {
        self.hearing.heard.subscribe()
    }

    /// Starts hearing other hosts' writes on a thread of its own, until the coordinator is
    /// dropped or [`Self::stop_listening`].
    pub fn listen(&self) {
        listen::start(&self.link, &self.hearing);
    }

    /// Ends the subscription's thread (it holds the coordinator while it listens).
    pub fn stop_listening(&self) {
        self.hearing.stop.store(true, Ordering::SeqCst);
    }

    fn fences(&self) -> MutexGuard<'_, Fences> {
        self.fences.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a blocking Redis call on the blocking pool.
    pub(super) async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Self) -> Result<T, FleetError> + Send + 'static,
    ) -> Result<T, FleetError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me))
            .await
            .unwrap_or_else(|e| {
                Err(FleetError::Redis {
                    url: self.url().to_owned(),
                    detail: format!("task failed: {e}"),
                })
            })
    }

    /// Takes `account`'s lease with a new fence, or `None` while another host holds it.
    pub(super) fn acquire(&self, account: &AccountName) -> Result<Option<u64>, FleetError> {
        let (link, ttl) = (&self.link, millis(self.lease_time()));
        let floor = self.fences().floor(account);
        let fence: u64 = link.call(|c| {
            ACQUIRE
                .key(link.account_key("lease", account))
                .key(link.account_key("fence", account))
                .key(link.secret_key(&SecretKey::Tokens(account.clone()).entry()))
                .arg(&link.me)
                .arg(ttl)
                .arg(floor)
                .invoke(c)
        })?;
        if fence == 0 {
            return Ok(None);
        }
        self.fences().leased(account, fence);
        Ok(Some(fence))
    }

    /// Extends the lease; `false` when it is no longer this host's.
    pub(super) fn renew_now(&self, account: &AccountName) -> Result<bool, FleetError> {
        let (link, ttl) = (&self.link, millis(self.lease_time()));
        let renewed: i64 = link.call(|c| {
            RENEW
                .key(link.account_key("lease", account))
                .arg(&link.me)
                .arg(ttl)
                .invoke(c)
        })?;
        Ok(renewed == 1)
    }

    /// Ends the lease taken with `fence` (a release that comes late, after this host took a
    /// newer lease, leaves the newer one's fence alone).
    pub(super) fn release_now(&self, account: &AccountName, fence: u64) -> Result<(), FleetError> {
        self.fences().released(account, fence);
        let link = &self.link;
        let _: i64 = link.call(|c| {
            RELEASE
                .key(link.account_key("lease", account))
                .arg(&link.me)
                .invoke(c)
        })?;
        Ok(())
    }

    /// Extends `account`'s lease; `false` when it is no longer this host's.
    pub async fn renew(self: &Arc<Self>, account: &AccountName) -> Result<bool, FleetError> {
        let account = account.clone();
        self.blocking(move |c| c.renew_now(&account)).await
    }

    /// Ends `account`'s lease taken with `fence`.
    pub(super) async fn release(
        self: &Arc<Self>,
        account: &AccountName,
        fence: u64,
    ) -> Result<(), FleetError> {
        let account = account.clone();
        self.blocking(move |c| c.release_now(&account, fence)).await
    }

    /// Counts one WeChat fetch against `allowance` today (a Beijing day), for the whole
    /// fleet; the count is kept two days.
    pub async fn count_fetch(
        self: &Arc<Self>,
        allowance: &str,
        day: &str,
    ) -> Result<u32, FleetError> {
        let key = self.link.fetches_key(allowance, day);
        self.blocking(move |c| {
            let (count,): (u32,) = c.link.call(|conn| {
                redis::pipe()
                    .atomic()
                    .cmd("INCR")
                    .arg(&key)
                    .cmd("EXPIRE")
                    .arg(&key)
                    .arg(2 * 24 * 3600)
                    .ignore()
                    .query(conn)
            })?;
            Ok(count)
        })
        .await
    }

    /// The fleet's count of `allowance` fetches on `day`.
    pub async fn fetches(self: &Arc<Self>, allowance: &str, day: &str) -> Result<u32, FleetError> {
        let key = self.link.fetches_key(allowance, day);
        self.blocking(move |c| {
            let count: Option<u32> = c
                .link
                .call(|conn| redis::cmd("GET").arg(&key).query(conn))?;
            Ok(count.unwrap_or(0))
        })
        .await
    }

    /// How this host's next write of `account`'s set is fenced (see [`Fences::write_as`]).
    pub(super) fn write_as(&self, account: &AccountName) -> WriteAs {
        self.fences().write_as(account)
    }

    /// Whether to adopt a stored set of `account` written with `stored`: never one older
    /// than the set this host holds.
    pub(crate) fn adopts(&self, account: &AccountName, stored: Option<u64>) -> bool {
        let verdict = self.fences().read(account, stored);
        match verdict {
            Verdict::Adopt => true,
            Verdict::Older { stored, held } => {
                tracing::warn!(account = %account, stored_fence = stored, held_fence = held, "the shared store holds an older token set than this host (Redis restarted from a snapshot, a replica or a backup?); keeping this host's and storing it again");
                false
            }
        }
    }

    /// A write of `account`'s set carrying `fence` did `written` (`Ok(false)`: refused). A
    /// set that a newer one was there for is dropped, and this host takes the newer one as
    /// if it had heard it.
    pub(crate) fn wrote(
        &self,
        account: &AccountName,
        fence: Fence,
        written: &Result<bool, StoreError>,
    ) {
        let (Fence::Leased(fence) | Fence::Restore(fence)) = fence else {
            return;
        };
        let written = match written {
            Ok(true) => Written::Stored,
            Ok(false) => Written::Refused,
            Err(_) => Written::Failed,
        };
        self.fences().wrote(account, fence, written);
        if written == Written::Refused {
            // Another host stored a newer set while this one waited to be saved (or, for a
            // copy stored again, one at least as new): that set wins.
            tracing::info!(account = %account, "a newer token set from another host replaces this one");
            let _ = self.hearing.heard.send(Heard::Changed(account.clone()));
        }
    }

    /// A new consent or a deletion replaces whatever is stored, newer or not: its write takes
    /// a lease of its own instead of carrying the fence of the set this host holds.
    pub(crate) fn forget(&self, account: &AccountName) {
        self.fences().forget(account);
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.stop_listening();
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
