//! The live seat-map page (`/seatmap`): static HTML, CSS and JavaScript compiled into
//! the binary (no build toolchain), drawing the venue from the public stream and
//! holding seats through the API with a token the user gives it.
//!
//! Served by every replica outside `/v1` (the page itself needs no leader; its API
//! calls are forwarded like any other). A strict Content-Security-Policy allows only
//! this origin's script, style and API (no inline script, no third party, no framing),
//! and no referrer is ever sent, so a token given in the URL fragment cannot leave
//! the page: the script reads it and removes it from the address bar at once.

use axum::Router;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;

const HTML: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/app.css");

/// What the page may load and where it may connect: this origin only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `/seatmap` and its script and style.
pub fn router(show: &str) -> Router<AppState> {
    // Show names are DNS labels (validated with the show), so nothing to escape; the
    // escaping is there for safety should that ever change.
    let html = HTML.replace("{{SHOW}}", &escape(show));
    Router::new()
        .route(
            "/seatmap",
            get(move || {
                let html = html.clone();
                async move { page("text/html; charset=utf-8", html) }
            }),
        )
        .route(
            "/seatmap/app.js",
            get(|| async { page("text/javascript; charset=utf-8", SCRIPT.to_string()) }),
        )
        .route(
            "/seatmap/app.css",
            get(|| async { page("text/css; charset=utf-8", STYLE.to_string()) }),
        )
}

fn page(content_type: &'static str, body: String) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CONTENT_SECURITY_POLICY, CSP),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (X_FRAME_OPTIONS, "DENY"),
            (REFERRER_POLICY, "no-referrer"),
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_has_no_inline_script_or_style_and_names_the_show() {
        let html = super::HTML;
        assert!(!html.contains("<script>"), "inline script");
        assert!(!html.contains("style="), "inline style");
        assert!(!html.contains("<style"), "inline style");
        assert!(html.contains("{{SHOW}}"));
        assert_eq!(super::escape("<a\"'&>"), "&lt;a&quot;&#39;&amp;&gt;");
    }
}
