//! celeriac's dashboard: a Leptos client-side app compiled to wasm32 and
//! embedded in the server binary (see `cargo xtask build`).
//!
//! `model` is the pure client state (reducers over the `/ws` messages,
//! filters, sorting); it compiles natively and is unit-tested there. The UI
//! (`app`) exists only on wasm32.

pub mod model;

#[cfg(target_arch = "wasm32")]
mod app;

pub use api;
