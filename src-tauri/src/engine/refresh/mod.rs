//! Refreshes, from deadline to saved token: the scheduler wakes on the earliest deadline, an
//! attempt passes admission, fetches (one per account, a bounded few per provider host, within
//! WeChat's quota), commits its outcome (journal and store first, then the new state), and
//! serving hands tokens out with `min_valid` and the 401 loop guard. Foresight warns before a
//! refresh token itself stops working; inflight names a refresh cut off by a crash.

pub(crate) mod admission;
pub(crate) mod attempt;
pub(crate) mod commit;
pub(crate) mod foresight;
pub(crate) mod hosts;
pub(crate) mod inflight;
pub mod quota;
pub(crate) mod saving;
pub(crate) mod scheduler;
pub(crate) mod serving;
