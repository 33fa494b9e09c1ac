//! Packet devices.
