//! Tokio front end for `tcp-stack`: a drop-in for `tokio::net`.

pub mod device;
pub mod ring;
