//! strom-node (in progress)
