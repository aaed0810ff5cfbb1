//! A downstream's listing with each name once. A name listed twice would otherwise be one
//! entry to calls and pins (the first found) and two to listings and quarantine. Copies that
//! are the same in every field are kept once; copies that differ are ambiguous — nobody can
//! tell which one the downstream runs — so the name is withheld (fail closed) until the
//! downstream lists it once. One warning per name and listing, however many copies.

use std::collections::HashMap;

/// How often one name was listed, and whether its copies differ.
struct Seen {
    /// Where the name's entry is in the kept list.
    at: usize,
    copies: usize,
    differs: bool,
}

/// `items` with each `name` once: identical copies kept as first listed, differing copies
/// withheld altogether.
pub(super) fn each_name_once<T: PartialEq>(
    items: Vec<T>,
    name: impl Fn(&T) -> &str,
    server: &str,
    kind: &str,
) -> Vec<T> {
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut kept: Vec<Option<T>> = Vec::with_capacity(items.len());
    for item in items {
        match seen.get_mut(name(&item)) {
            Some(entry) => {
                entry.copies += 1;
                let same = kept[entry.at].as_ref().is_some_and(|first| *first == item);
                if !same {
                    entry.differs = true;
                    kept[entry.at] = None;
                }
            }
            None => {
                let at = kept.len();
                seen.insert(
                    name(&item).to_string(),
                    Seen {
                        at,
                        copies: 1,
                        differs: false,
                    },
                );
                kept.push(Some(item));
            }
        }
    }
    for (listed, entry) in &seen {
        if entry.differs {
            tracing::warn!(
                server,
                kind,
                name = %listed,
                copies = entry.copies,
                "the downstream lists this name more than once, with different definitions; it is withheld"
            );
        } else if entry.copies > 1 {
            tracing::warn!(
                server,
                kind,
                name = %listed,
                copies = entry.copies,
                "the downstream lists this name more than once; it is used once"
            );
        }
    }
    kept.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::each_name_once;

    /// (name, definition), in listed order.
    type Listed = Vec<(&'static str, u8)>;

    /// A name listed twice the same is kept once, as first listed; listed twice differently,
    /// it is withheld; other names are untouched and keep their order.
    #[test]
    fn a_name_listed_twice_is_kept_once_or_withheld() {
        let table: [(&str, Listed, Listed); 5] = [
            (
                "identical copies",
                vec![("b", 1), ("a", 2), ("b", 1), ("c", 4), ("a", 2)],
                vec![("b", 1), ("a", 2), ("c", 4)],
            ),
            (
                "three identical",
                vec![("a", 1), ("a", 1), ("a", 1)],
                vec![("a", 1)],
            ),
            (
                "different copies withheld",
                vec![("a", 1), ("b", 2), ("a", 3)],
                vec![("b", 2)],
            ),
            (
                "a later copy equal to the first is still ambiguous",
                vec![("a", 1), ("a", 2), ("a", 1), ("c", 3)],
                vec![("c", 3)],
            ),
            (
                "no copies",
                vec![("a", 1), ("b", 2)],
                vec![("a", 1), ("b", 2)],
            ),
        ];
        for (case, listed, expected) in table {
            assert_eq!(
                each_name_once(listed.clone(), |(name, _)| name, "case", "tool"),
                expected,
                "{case}: {listed:?}"
            );
        }
    }
}
