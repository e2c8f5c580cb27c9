//! ACME http-01 challenge files served from the webroot.

use std::path::Path;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::proxy::body::ProxyBody;

/// The answer for a request under `/.well-known/acme-challenge/`, or `None`
/// when the request is for something else.
pub async fn challenge(_webroot: &Path, _req: &Request<Incoming>) -> Option<Response<ProxyBody>> {
    None
}
