//! Loading tests: file:line problems, annotations, warnings.

use std::path::PathBuf;

use super::*;

/// The lines policies are reported at: the same as scanning the text from its start.
#[test]
fn lines_and_id_offsets_match_a_scan_of_the_text() {
    let text = concat!(
        "// @id(\"commented\")\n",
        "@id(\"a\")\npermit(principal, action, resource);\n\n",
        "@id(\"b\\\"c\")\n@id(\"@id(\"a\")\n",
        "@id(\"a\") @id(\"x\")y\")\n@id(\"unclosed\n@id(\"é\")\n@id(\"\")\n",
    );
    let source = SourceFile::new(PathBuf::from("t.cedar"), text.to_string());
    // (The scan cannot start inside a character; the lines are the same everywhere else.)
    for offset in (0..=text.len() + 2).filter(|o| *o > text.len() || text.is_char_boundary(*o)) {
        let naive = text[..offset.min(text.len())].matches('\n').count() + 1;
        assert_eq!(source.line_of(offset), naive, "offset {offset}");
    }
    for id in [
        "a",
        "b\\\"c",
        "b\"c",
        "@id(\"a",
        "x",
        "x\")y",
        "unclosed",
        "é",
        "",
        "commented",
        "missing",
        "a\")",
        ")",
        "\"",
    ] {
        assert_eq!(
            source.id_offset(id),
            text.find(&format!("@id(\"{id}\")")),
            "id {id:?}"
        );
    }
}
