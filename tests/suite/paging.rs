//! capgate's own list cursors with real MCP traffic: every item once and in order over pages,
//! each page deciding and recording only what it reaches, and no cursor to a page that only
//! hidden tools would fill.

use crate::common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn lists_are_paged_with_capgates_own_cursors_without_losing_items() {
    let whole = TestGateway::start(GatewayOptions::default()).await;
    let paged = TestGateway::start(GatewayOptions {
        limits: Some("list_page_size = 3".into()),
        ..Default::default()
    })
    .await;
    let spec = analyst("acme", "alice", "drafting-agent");
    let one_page = whole.client(&whole.token(&spec)).await;
    let whole_before = decisions_counted(&whole).await;
    let expected: Vec<String> = one_page
        .list_tools(None)
        .await
        .expect("listed")
        .tools
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(expected.len() > 3, "{expected:?}");

    let whole_counted = decisions_counted(&whole).await - whole_before;
    let client = paged.client(&paged.token(&spec)).await;
    let paged_before = decisions_counted(&paged).await;
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = client
            .list_tools(Some(
                rmcp::model::PaginatedRequestParams::default().with_cursor(cursor),
            ))
            .await
            .expect("a page");
        assert!(page.tools.len() <= 3, "{:?}", page.tools.len());
        pages += 1;
        seen.extend(page.tools.into_iter().map(|t| t.name.to_string()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, expected, "every item once, in order");
    // No page is left for hidden tools alone to fill: the last cursor leads to a page that
    // shows something.
    assert_eq!(pages, expected.len().div_ceil(3));
    // The metrics count each decision once, as the one-page listing does: a page's look past
    // its end is not counted (the next page counts it).
    assert!(whole_counted > 3.0, "{whole_counted}");
    assert_eq!(
        decisions_counted(&paged).await - paged_before,
        whole_counted,
        "decisions counted over {pages} pages"
    );

    // Each page decides and records only the tools it reaches: its summary names nothing
    // past the last tool it shows, and the pages' records, in order, show the whole list.
    let records = flushed_records(&paged).await;
    let summaries: Vec<&Value> = records
        .iter()
        .filter(|r| r["resource"] == "tools/list" && r["decision"] == "summary")
        .collect();
    assert_eq!(
        summaries.len(),
        pages,
        "one record per page: {summaries:#?}"
    );
    let mut logged = Vec::new();
    let mut named = Vec::new();
    for (index, (summary, page)) in summaries.iter().zip(seen.chunks(3)).enumerate() {
        let shown: Vec<String> = summary["listing"]["shown"]
            .as_array()
            .expect("shown")
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect();
        assert_eq!(shown, page, "{summary:#}");
        let last = page.last().expect("a page shows something");
        for hidden in summary["listing"]["hidden"].as_array().expect("hidden") {
            let name = hidden["name"].as_str().expect("a name");
            // A page with a page after it leaves what follows its last tool to that page.
            if index + 1 < pages {
                assert!(
                    name < last.as_str(),
                    "{name} is past the page ending at {last}"
                );
            }
            named.push(name.to_string());
        }
        named.extend(shown.iter().cloned());
        logged.extend(shown);
    }
    assert_eq!(logged, expected);
    // Over all pages, every tool the one-page listing judged is named once, shown or hidden.
    let whole_records = flushed_records(&whole).await;
    let whole_summary = whole_records
        .iter()
        .find(|r| r["resource"] == "tools/list" && r["decision"] == "summary")
        .expect("the one-page listing's record");
    let mut judged: Vec<String> = whole_summary["listing"]["shown"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            whole_summary["listing"]["hidden"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| &h["name"]),
        )
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    judged.sort();
    named.sort();
    assert_eq!(named, judged, "each candidate in exactly one page's record");

    // A cursor capgate did not give is invalid params; so is one of another list.
    for cursor in ["garbage", "Y2FwZ2F0ZTpwcm9tcHRzOjM"] {
        let refused = client
            .list_tools(Some(
                rmcp::model::PaginatedRequestParams::default().with_cursor(Some(cursor.into())),
            ))
            .await;
        let error = format!("{refused:?}");
        assert!(
            error.contains("-32602")
                || error.contains("InvalidParams")
                || error.contains("invalid cursor"),
            "{cursor}: {error}"
        );
    }
}

#[tokio::test]
async fn a_cursor_never_leads_to_a_page_only_hidden_tools_would_fill() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        limits: Some("list_page_size = 5".into()),
        ..Default::default()
    })
    .await;
    let client = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let first = client.list_tools(None).await.expect("listed");
    assert_eq!(first.tools.len(), 5);
    assert!(first.next_cursor.is_some(), "a sixth tool is visible");
    // The last tool by name is killed: it sorts after the first page and is hidden, so the
    // first page is the last.
    let last = "case__traverse_entity_graph";
    assert!(first.tools.iter().all(|t| t.name.as_ref() < last));
    let (status, answer) = admin_request(
        &gateway,
        &gateway.platform_admin_token(),
        "/admin/kill-switches",
        json!({"scope": "tool", "target": last, "reason": "paging test"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let only = client.list_tools(None).await.expect("listed");
    let names: Vec<String> = only.tools.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(!names.contains(&last.to_string()));
    assert_eq!(
        only.next_cursor, None,
        "a cursor to a page of hidden tools: {names:?}"
    );
    // With no page after it, the full page's record names the killed tool it passed.
    let records = flushed_records(&gateway).await;
    let last_listing = records
        .iter()
        .rev()
        .find(|r| r["resource"] == "tools/list" && r["decision"] == "summary")
        .expect("a tools/list record");
    let hidden = last_listing["listing"]["hidden"]
        .as_array()
        .expect("hidden");
    assert!(hidden.iter().any(|h| h["name"] == last), "{last_listing:#}");
}

/// `capgate_decision_seconds_count` on `/metrics`: the PDP answers the gateway used.
async fn decisions_counted(gateway: &TestGateway) -> f64 {
    let text = gateway.metrics_text().await;
    text.lines()
        .find_map(|line| line.strip_prefix("capgate_decision_seconds_count "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no decision count in:\n{text}"))
}
