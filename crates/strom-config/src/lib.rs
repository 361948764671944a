//! strom-config (in progress)
