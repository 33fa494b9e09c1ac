//! Tokio front end for `tcp-stack` (work in progress).
