//! A client of Tokenwarden's local HTTP API, written for tests that must control every byte.
//!
//! [`Api`] speaks HTTP/1.1 over a plain TCP connection (one request per connection,
//! `Connection: close`), so a test can send what a well-behaved client library would refuse or
//! normalise: paths with `..` or `%00`, a foreign `Host`, an `Origin`, no `Authorization`, broken
//! bodies. By default every request carries `Host: 127.0.0.1:PORT` and the bearer key the
//! [`Api`] was made with. Every answer is recorded, so a test can check all of them at the end
//! (no `Access-Control-*` header, no secret in any body).
//!
//! [`EventStream`] reads `GET /v1/events` (Server-Sent Events) in the background and parses it
//! strictly: every event must have `event:` and `data:` lines and JSON data.
//!
//! The files: `client` ([`Api`], [`Request`]), `answer` ([`Answer`]), `wire` (the HTTP/1.1
//! response parser) and `events` ([`EventStream`]).

mod answer;
mod client;
mod events;
mod wire;

pub use answer::Answer;
pub use client::{Api, Request};
pub use events::{EventStream, SseEvent};
