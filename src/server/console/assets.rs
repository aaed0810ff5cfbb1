//! The console's files, compiled into the binary from `assets/`: one HTML shell for every page
//! (its script reads the path and draws that page), the stylesheet, and one script per page
//! beside the shared ones. Nothing is fetched from anywhere else.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// The paths that serve the console's shell.
pub(super) const PAGE_PATHS: [&str; 9] = [
    "/console",
    "/console/",
    "/console/sign-in",
    "/console/overview",
    "/console/approvals",
    "/console/kill-switches",
    "/console/break-glass",
    "/console/decisions",
    "/console/policy",
];

const SHELL: &str = include_str!("assets/console.html");

/// Every asset: its name under `/console/assets/`, its content type and its bytes.
const ASSETS: [(&str, &str, &str); 12] = [
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    ),
    ("icon.svg", "image/svg+xml", include_str!("assets/icon.svg")),
    ("app.js", JS, include_str!("assets/app.js")),
    ("dom.js", JS, include_str!("assets/dom.js")),
    ("chart.js", JS, include_str!("assets/chart.js")),
    ("sign-in.js", JS, include_str!("assets/sign-in.js")),
    ("overview.js", JS, include_str!("assets/overview.js")),
    ("approvals.js", JS, include_str!("assets/approvals.js")),
    (
        "kill-switches.js",
        JS,
        include_str!("assets/kill-switches.js"),
    ),
    ("break-glass.js", JS, include_str!("assets/break-glass.js")),
    ("decisions.js", JS, include_str!("assets/decisions.js")),
    ("policy.js", JS, include_str!("assets/policy.js")),
];

const JS: &str = "text/javascript; charset=utf-8";

pub(super) async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], SHELL).into_response()
}

pub(super) async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(asset, _, _)| *asset == name) {
        Some((_, content_type, body)) => {
            ([(header::CONTENT_TYPE, *content_type)], *body).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such console asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    /// No asset holds an inline script, an inline style, an event-handler attribute or a URL of
    /// another origin: the Content-Security-Policy would refuse them, and the console must not
    /// need them.
    #[test]
    fn the_assets_need_nothing_the_policy_refuses() {
        let mut files: Vec<(&str, &str)> = super::ASSETS.iter().map(|(n, _, b)| (*n, *b)).collect();
        files.push(("console.html", super::SHELL));
        for (name, body) in files {
            // The SVG namespace is a name, not a place anything is loaded from.
            let body = body.replace("http://www.w3.org/2000/svg", "");
            for forbidden in [
                "<style",
                " style=",
                "onclick=",
                "onload=",
                "javascript:",
                "eval(",
                "new Function",
                "innerHTML",
                "https://",
                "http://",
            ] {
                assert!(!body.contains(forbidden), "{name} contains `{forbidden}`");
            }
        }
        assert!(super::SHELL
            .contains("<script type=\"module\" src=\"/console/assets/app.js\"></script>"));
    }
}
