//! What the replica's console and the store's console share: the style
//! sheet, the script helpers (`ui/common.js`: building elements as text,
//! never as HTML; the bearer-token form; JSON calls that turn a refusal into
//! a readable error), the Content-Security-Policy and the headers every
//! asset is served with. Kept here, in the crate both depend on, so that the
//! two pages are one design and one set of escaping rules, not two copies
//! that drift apart.

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;

/// The shared style sheet, served by both consoles at `/ui/console.css`.
pub const CONSOLE_CSS: &str = include_str!("../ui/console.css");
/// The shared helpers, served by both consoles at `/ui/common.js` and
/// loaded before each page's own script.
pub const COMMON_JS: &str = include_str!("../ui/common.js");

/// A console page may load its own script and style and call its own
/// origin, nothing else: no inline script, no third party.
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
                       base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// An embedded asset with the console's headers: its type, the CSP, no
/// sniffing, and revalidation (a new binary serves new assets at once).
pub fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = Response::new(Body::from(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// `text/html` for a page.
pub fn html(body: &'static str) -> Response {
    asset("text/html; charset=utf-8", body)
}

/// `text/javascript` for a script.
pub fn script(body: &'static str) -> Response {
    asset("text/javascript; charset=utf-8", body)
}

/// `text/css` for a style sheet.
pub fn style(body: &'static str) -> Response {
    asset("text/css; charset=utf-8", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_carries_the_strict_policy() {
        let r = script(COMMON_JS);
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(!CSP.contains("unsafe-inline") && !CSP.contains("unsafe-eval"), "{CSP}");
    }

    #[test]
    fn the_shared_script_never_writes_html() {
        // Names and keys are user data: they must only ever be set as text.
        for banned in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"] {
            assert!(!COMMON_JS.contains(banned), "common.js uses {banned}");
        }
    }
}
