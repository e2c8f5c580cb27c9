//! Error pages at request time: the proxy's own error answers given the
//! configured page for their status, and with `intercept_errors` an
//! upstream's error answer replaced by its page, the status kept.

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::Response;

use crate::config::ErrorPages;
use crate::proxy::access::AccessRecord;
use crate::proxy::body::ProxyBody;

/// A proxy's own answer with the page for its status, if there is one:
/// the body and Content-Type are the page's, the rest (the status, a
/// `Connection: close`, an `Allow`) stays.
pub(crate) fn apply(response: &mut Response<ProxyBody>, pages: &ErrorPages) {
    let Some(page) = pages.get(response.status().as_u16()) else {
        return;
    };
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, page.content_type.clone());
    headers.remove(CONTENT_LENGTH);
    response.body_mut().replace(page.body.clone());
}

/// With `intercept_errors`, an upstream's answer whose status has a page
/// becomes that page (`Ok`), taking `log`; otherwise it is handed back.
/// The upstream's body is dropped unread, so its connection closes rather
/// than return to the pool mid-body. Of its headers only `Retry-After` and
/// `WWW-Authenticate` stay: they tell the client what to do next.
pub(crate) fn intercept<B>(
    pages: &ErrorPages,
    upstream: Response<B>,
    log: &mut Option<Box<AccessRecord>>,
) -> Result<Response<ProxyBody>, Response<B>> {
    let page = match pages.intercept.then(|| pages.get(upstream.status().as_u16())) {
        Some(Some(page)) => page,
        _ => return Err(upstream),
    };
    let mut response = Response::new(ProxyBody::local(page.body.clone(), log.take()));
    *response.status_mut() = upstream.status();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, page.content_type.clone());
    for name in [RETRY_AFTER, WWW_AUTHENTICATE] {
        for value in upstream.headers().get_all(&name) {
            headers.append(name.clone(), value.clone());
        }
    }
    Ok(response)
}
