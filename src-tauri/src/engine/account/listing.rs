//! The accounts' views a little at a time, for front ends that should not take 100,000 at once:
//! the API's pages (`?limit=&after=`) and the window re-reading only the accounts an event named.

use super::views::AccountView;
use crate::engine::{AccountName, Engine};

/// One page of views, in config order.
pub struct Page {
    pub views: Vec<AccountView>,
    /// Whether accounts follow the page's last one.
    pub more: bool,
}

impl Engine {
    /// Up to `limit` views of the accounts `visible` lets through, in config order, starting
    /// after the account named `after` (at the start when `None`). `None` when `after` names
    /// no account `visible` lets through: removed since the page before, or never there.
    pub fn page(
        &self,
        after: Option<&AccountName>,
        limit: usize,
        visible: impl Fn(&AccountName) -> bool,
    ) -> Option<Page> {
        let config = self.config();
        let accounts = self.shared.accounts.lock().expect("poisoned");
        let now = crate::engine::clock::now();
        let mut names = config
            .accounts
            .iter()
            .map(|a| &a.name)
            .filter(|n| visible(n));
        if let Some(after) = after {
            names.by_ref().find(|n| *n == after)?;
        }
        let mut views = Vec::with_capacity(limit.min(1024));
        for name in names {
            let Some(slot) = accounts.get(name) else {
                continue;
            };
            if views.len() == limit {
                return Some(Page { views, more: true });
            }
            views.push(self.view_of(slot, now));
        }
        Some(Page { views, more: false })
    }

    /// Every account's view, in config order.
    pub fn snapshot(&self) -> Vec<AccountView> {
        self.page(None, usize::MAX, |_| true)
            .map(|p| p.views)
            .unwrap_or_default()
    }

    /// The views of these accounts in the order asked, without the names that are no account
    /// (removed since the caller heard of them).
    pub fn views_of(&self, names: &[AccountName]) -> Vec<AccountView> {
        let accounts = self.shared.accounts.lock().expect("poisoned");
        let now = crate::engine::clock::now();
        names
            .iter()
            .filter_map(|name| accounts.get(name).map(|s| self.view_of(s, now)))
            .collect()
    }
}
