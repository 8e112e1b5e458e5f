//! The cluster model. Pure: no I/O, no clock reads (time is passed in).
mod view;
pub use view::TaskView;
