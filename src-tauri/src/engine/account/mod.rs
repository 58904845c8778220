//! One account's life in the engine: its state as one enum with pure transitions, the live
//! record around it (slot), the queue of every slot's deadline, when to refresh and how long
//! to back off (timing), what front ends read (views) and a page of it at a time (listing), and reading its stored set (reading).

pub(crate) mod deadlines;
pub(crate) mod listing;
pub(crate) mod reading;
pub(crate) mod slot;
pub mod state;
pub mod timing;
pub mod views;
