//! The dashboard. Not built yet: see the dashboard issue. Until then the
//! server serves a plain status page and this crate only pins the shared
//! wire types so they keep compiling for the frontend's side.
pub use api;
