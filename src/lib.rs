//! portcullis: a TLS-terminating reverse proxy.
