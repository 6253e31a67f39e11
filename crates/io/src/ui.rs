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

/// The page both consoles are built on: head, header with the bearer-token
/// form, the error line; each console fills in its `<main>`.
const SHELL: &str = include_str!("../ui/shell.html");
/// The previous/next pager under a paged listing (`common.js`'s
/// `pagedListing` drives it); a page's `<main>` places it with `{{pager}}`.
const PAGER: &str = include_str!("../ui/pager.html");

/// A console page: what differs between the replica's and the store's.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub title: &'static str,
    pub heading: &'static str,
    /// The page's own script under `/ui/`, loaded after `common.js`.
    pub script: &'static str,
    /// The token field's placeholder: what "no token" means here.
    pub token_hint: &'static str,
    /// The page's `<main>` element; `{{pager}}` stands for the pager.
    pub main: &'static str,
}

impl Page {
    /// The whole HTML document. The fields are the code's own constants,
    /// never user data, so nothing here needs escaping.
    pub fn render(&self) -> String {
        SHELL
            .replace("{{title}}", self.title)
            .replace("{{heading}}", self.heading)
            .replace("{{script}}", self.script)
            .replace("{{token_hint}}", self.token_hint)
            .replace("{{main}}", &self.main.replace("{{pager}}", PAGER.trim_end()))
    }
}

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
    fn a_page_fills_every_placeholder_of_the_shell() {
        let page =
            Page { title: "t", heading: "h", script: "s.js", token_hint: "none", main: "<main>\n{{pager}}\n</main>" }
                .render();
        assert!(!page.contains("{{"), "{page}");
        assert!(page.contains(r#"<script src="/ui/s.js" defer></script>"#), "{page}");
        assert!(page.contains(r#"id="next""#) && page.contains(r#"id="token""#), "{page}");
    }

    #[test]
    fn the_shared_script_never_writes_html() {
        // Names and keys are user data: they must only ever be set as text.
        for banned in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"] {
            assert!(!COMMON_JS.contains(banned), "common.js uses {banned}");
        }
    }
}
