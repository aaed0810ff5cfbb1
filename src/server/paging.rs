//! capgate's own cursors over the lists it shows an actor. A list merges every downstream's
//! offering, filtered per actor, so a downstream's cursor cannot be passed on as it is;
//! capgate pages the filtered list itself: `nextCursor` is opaque to the client, names the
//! list it belongs to and where the next page starts, and a cursor from another list or made
//! up is refused as invalid params, as the specification asks.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rmcp::model::ErrorData;

/// Which list a cursor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Resources,
    ResourceTemplates,
    Prompts,
}

impl ListKind {
    fn as_str(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Resources => "resources",
            ListKind::ResourceTemplates => "resource-templates",
            ListKind::Prompts => "prompts",
        }
    }
}

/// One page of `items` from `cursor` on, and the cursor of the next page if there is one.
pub fn page<T>(
    items: Vec<T>,
    kind: ListKind,
    cursor: Option<&str>,
    size: usize,
) -> Result<(Vec<T>, Option<String>), ErrorData> {
    let start = match cursor {
        None => 0,
        Some(cursor) => offset(kind, cursor).ok_or_else(|| {
            ErrorData::invalid_params(format!("invalid cursor for {}/list", kind.as_str()), None)
        })?,
    };
    let total = items.len();
    let end = start.saturating_add(size).min(total);
    let next = (end < total).then(|| encode(kind, end));
    let page = items
        .into_iter()
        .skip(start)
        .take(end.saturating_sub(start))
        .collect();
    Ok((page, next))
}

fn encode(kind: ListKind, offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("capgate:{}:{offset}", kind.as_str()))
}

fn offset(kind: ListKind, cursor: &str) -> Option<usize> {
    let decoded = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = std::str::from_utf8(&decoded).ok()?;
    let rest = text.strip_prefix("capgate:")?;
    let (list, offset) = rest.rsplit_once(':')?;
    if list != kind.as_str() {
        return None;
    }
    offset.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_every_item_once_in_order() {
        let items: Vec<u32> = (0..25).collect();
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let (page, next) =
                page(items.clone(), ListKind::Tools, cursor.as_deref(), 10).expect("page");
            assert!(page.len() <= 10);
            seen.extend(page);
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn foreign_and_made_up_cursors_are_invalid_params() {
        let (_, next) = page((0..5).collect::<Vec<u32>>(), ListKind::Tools, None, 2).expect("page");
        let next = next.expect("a second page");
        for cursor in [next.as_str(), "", "not-base64!", "Y2FwZ2F0ZTp0b29sczp4"] {
            let refused = page(vec![1u32], ListKind::Prompts, Some(cursor), 2);
            assert!(refused.is_err(), "{cursor:?}");
        }
        // A cursor past the end is an empty last page, not an error.
        let past = encode(ListKind::Tools, 99);
        let (items, next) = page(vec![1u32], ListKind::Tools, Some(&past), 2).expect("page");
        assert!(items.is_empty() && next.is_none());
    }
}
