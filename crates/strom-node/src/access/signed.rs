//! Signed links (`token_secret`).
