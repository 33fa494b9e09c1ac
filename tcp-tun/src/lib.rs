//! Linux TUN device (work in progress).
