//! SPSC byte rings.
