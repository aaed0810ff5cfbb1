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
    const ALL: [ListKind; 4] = [
        ListKind::Tools,
        ListKind::Resources,
        ListKind::ResourceTemplates,
        ListKind::Prompts,
    ];

    fn as_str(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Resources => "resources",
            ListKind::ResourceTemplates => "resource-templates",
            ListKind::Prompts => "prompts",
        }
    }
}

/// Where a page starts: an offset into a list decided whole (resources, whose order is the
/// downstreams'), or after a name in a list sorted by name and decided page by page (tools,
/// prompts).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Position {
    Offset(usize),
    After(String),
}

/// A cursor capgate gave: the list it belongs to and where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    kind: ListKind,
    position: Position,
}

impl Cursor {
    fn encode(&self) -> String {
        let position = match &self.position {
            Position::Offset(offset) => offset.to_string(),
            Position::After(name) => format!("after:{name}"),
        };
        URL_SAFE_NO_PAD.encode(format!("capgate:{}:{position}", self.kind.as_str()))
    }

    fn decode(cursor: &str) -> Option<Self> {
        let decoded = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        let text = std::str::from_utf8(&decoded).ok()?;
        let (list, position) = text.strip_prefix("capgate:")?.split_once(':')?;
        let kind = ListKind::ALL.into_iter().find(|k| k.as_str() == list)?;
        // An offset is digits only, so a name starting with `after:` is never mistaken for one.
        let position = match position.strip_prefix("after:") {
            Some(name) => Position::After(name.to_string()),
            None => Position::Offset(position.parse().ok()?),
        };
        Some(Self { kind, position })
    }
}

fn invalid(kind: ListKind) -> ErrorData {
    ErrorData::invalid_params(format!("invalid cursor for {}/list", kind.as_str()), None)
}

/// The position a client's cursor names in a `kind` list, checked to be one capgate gives
/// for that list.
fn position(kind: ListKind, cursor: &str) -> Result<Position, ErrorData> {
    match Cursor::decode(cursor) {
        Some(cursor) if cursor.kind == kind => Ok(cursor.position),
        Some(_) | None => Err(invalid(kind)),
    }
}

/// One page of `items` (a list decided whole) from `cursor` on, and the cursor of the next
/// page if there is one.
pub fn page<T>(
    items: Vec<T>,
    kind: ListKind,
    cursor: Option<&str>,
    size: usize,
) -> Result<(Vec<T>, Option<String>), ErrorData> {
    let start = match cursor.map(|c| position(kind, c)).transpose()? {
        None => 0,
        Some(Position::Offset(offset)) => offset,
        Some(Position::After(_)) => return Err(invalid(kind)),
    };
    let total = items.len();
    let end = start.saturating_add(size).min(total);
    let next = (end < total).then(|| {
        Cursor {
            kind,
            position: Position::Offset(end),
        }
        .encode()
    });
    let page = items
        .into_iter()
        .skip(start)
        .take(end.saturating_sub(start))
        .collect();
    Ok((page, next))
}

/// The name after which a page of a `kind` list sorted by name starts: `None` for the first
/// page.
pub fn after(kind: ListKind, cursor: Option<&str>) -> Result<Option<String>, ErrorData> {
    match cursor.map(|c| position(kind, c)).transpose()? {
        None => Ok(None),
        Some(Position::After(name)) => Ok(Some(name)),
        Some(Position::Offset(_)) => Err(invalid(kind)),
    }
}

/// The cursor of the page after the one that ended with `last`.
pub fn after_cursor(kind: ListKind, last: &str) -> String {
    Cursor {
        kind,
        position: Position::After(last.to_string()),
    }
    .encode()
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
        let past = Cursor {
            kind: ListKind::Resources,
            position: Position::Offset(99),
        }
        .encode();
        let (items, next) = page(vec![1u32], ListKind::Resources, Some(&past), 2).expect("page");
        assert!(items.is_empty() && next.is_none());
    }

    #[test]
    fn name_cursors_read_back_and_belong_to_their_list() {
        for name in ["", "a", "after:3", "x:y:z", "ünï/cödé 7"] {
            let cursor = after_cursor(ListKind::Tools, name);
            assert_eq!(
                after(ListKind::Tools, Some(&cursor)).expect("valid"),
                Some(name.into())
            );
            assert!(after(ListKind::Prompts, Some(&cursor)).is_err(), "{name:?}");
            assert!(page(vec![1u32], ListKind::Tools, Some(&cursor), 2).is_err());
        }
        assert_eq!(after(ListKind::Prompts, None).expect("first page"), None);
        // An offset cursor is not one of a list paged by name, nor is junk.
        let (_, offset) =
            page((0..5).collect::<Vec<u32>>(), ListKind::Tools, None, 2).expect("page");
        let offset = offset.expect("a second page");
        for cursor in [offset.as_str(), "", "not-base64!", "Y2FwZ2F0ZTp0b29sczp4"] {
            assert!(after(ListKind::Tools, Some(cursor)).is_err(), "{cursor:?}");
        }
    }
}
