//! Leases: the one acquire loop (a refresh's turn and a write that needs a lease of its own
//! both wait in it), and an account's lease as this host holds it, renewed while held and
//! given back when released or dropped.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::coordinator::Coordinator;
use super::fences::WriteAs;
use super::{FleetError, Heard};
use crate::engine::names::AccountName;
use crate::engine::store::item::Fence;

/// How often a host waiting for another's lease looks at the store again, in case a
/// published message was lost.
pub(super) const LOOK_AGAIN: Duration = Duration::from_millis(250);

/// How a wait for a lease ended.
pub enum Leased<T> {
    /// This host holds it now.
    Mine(Lease),
    /// There was nothing left to wait for (another host's set arrived meanwhile).
    Settled(T),
    /// Another host held it for longer than the patience given.
    Busy,
}

impl Coordinator {
    /// The one acquire loop: takes `account`'s lease, waiting while another host holds it.
    /// After every try, taken or not, `settled` may end the wait (another host's set came
    /// in: there is nothing left to do, and a lease just taken is given back). The next try
    /// comes when that host is heard writing, or after [`LOOK_AGAIN`] in case its message
    /// was lost; past `patience` the answer is [`Leased::Busy`].
    pub async fn lease<T, Settled: Future<Output = Option<T>>>(
        self: &Arc<Self>,
        account: &AccountName,
        patience: Duration,
        mut settled: impl FnMut(bool) -> Settled,
    ) -> Result<Leased<T>, FleetError> {
        let mut heard = self.heard();
        let give_up = Instant::now() + patience;
        loop {
            let fence = {
                let account = account.clone();
                self.blocking(move |c| c.acquire(&account)).await?
            };
            let lease = fence.map(|f| Lease::start(self.clone(), account.clone(), f));
            if let Some(done) = settled(lease.is_some()).await {
                return Ok(Leased::Settled(done));
            }
            if let Some(lease) = lease {
                return Ok(Leased::Mine(lease));
            }
            if Instant::now() > give_up {
                return Ok(Leased::Busy);
            }
            let _ = tokio::time::timeout(LOOK_AGAIN, heard_of(&mut heard, account)).await;
        }
    }

    /// The fence this host's next write of `account`'s set carries (see `fences`): its
    /// lease's, the held set's as a restore, or, for a new consent or a deletion, a lease's
    /// of its own, taken here and given back by the writer once it has written.
    pub(crate) async fn fence_for(
        self: &Arc<Self>,
        account: &AccountName,
    ) -> Result<(Fence, Option<Lease>), FleetError> {
        let write_as = self.write_as(account);
        Ok(match write_as {
            WriteAs::Leased(fence) => (Fence::Leased(fence), None),
            WriteAs::Restore(fence) => (Fence::Restore(fence), None),
            WriteAs::NewLease => {
                let patience = self.lease_time() * 2;
                let never = |_| std::future::ready(None::<Infallible>);
                match self.lease(account, patience, never).await? {
                    Leased::Mine(lease) => (Fence::Leased(lease.fence()), Some(lease)),
                    Leased::Settled(never) => match never {},
                    Leased::Busy => {
                        return Err(FleetError::Busy {
                            account: account.clone(),
                        })
                    }
                }
            }
        })
    }
}

/// An account's lease and its fence, renewed while held and released when dropped.
pub struct Lease {
    coordinator: Arc<Coordinator>,
    account: AccountName,
    fence: u64,
    renewing: tokio::task::JoinHandle<()>,
    /// Given back already (by [`Lease::release`]).
    released: bool,
}

impl Lease {
    pub(super) fn start(coordinator: Arc<Coordinator>, account: AccountName, fence: u64) -> Self {
        let renewing = {
            let (coordinator, account) = (coordinator.clone(), account.clone());
            tokio::spawn(async move {
                let every = coordinator.lease_time() / 3;
                loop {
                    tokio::time::sleep(every).await;
                    match coordinator.renew(&account).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(account = %account, "lost this account's lease to another host; this host sends nothing more to the provider for it, and a set it already fetched is stored only if no newer one was");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(account = %account, error = %e, "cannot renew the lease")
                        }
                    }
                }
            })
        };
        Self {
            coordinator,
            account,
            fence,
            renewing,
            released: false,
        }
    }

    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// Gives the lease back and waits until Redis has it, so that this host's next write
    /// of the account finds it free.
    pub async fn release(mut self) {
        self.renewing.abort();
        self.released = true;
        if let Err(e) = self.coordinator.release(&self.account, self.fence).await {
            tracing::debug!(account = %self.account, error = %e, "lease not released; it lapses by itself");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewing.abort();
        if self.released {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (coordinator, account, fence) =
                (self.coordinator.clone(), self.account.clone(), self.fence);
            runtime.spawn_blocking(move || {
                if let Err(e) = coordinator.release_now(&account, fence) {
                    tracing::debug!(account = %account, error = %e, "lease not released; it lapses by itself");
                }
            });
        }
    }
}

/// Waits until `name` is heard of (or the subscription came back after a gap).
pub(super) async fn heard_of(heard: &mut broadcast::Receiver<Heard>, name: &AccountName) {
    loop {
        match heard.recv().await {
            Ok(Heard::Changed(n)) if &n == name => return,
            Ok(Heard::Changed(_)) => {}
            Ok(Heard::Resubscribed) | Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => {
                std::future::pending::<()>().await;
            }
        }
    }
}
