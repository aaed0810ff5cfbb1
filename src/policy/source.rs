//! The policy directory's files as the loader reads them: sorted by name, with their text, so
//! that every problem can be reported as `file:line`, and policy ids found by their `@id`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use miette::Diagnostic;

pub(super) struct SourceFile {
    pub(super) path: PathBuf,
    pub(super) text: String,
    /// Byte offsets of the text's newlines, so that a line is found without rescanning the text
    /// (a policy file can hold thousands of policies, each of which is given its line).
    newlines: Vec<usize>,
    /// The first offset of each `@id("...")` in the text, by the text between the quotes.
    id_offsets: std::sync::OnceLock<HashMap<String, usize>>,
}

pub(super) const ID_OPEN: &str = "@id(\"";
pub(super) const ID_CLOSE: &str = "\")";

impl SourceFile {
    pub(super) fn new(path: PathBuf, text: String) -> Self {
        Self {
            newlines: text.match_indices('\n').map(|(i, _)| i).collect(),
            path,
            text,
            id_offsets: std::sync::OnceLock::new(),
        }
    }

    pub(super) fn name(&self) -> String {
        self.path.display().to_string()
    }

    /// The line (from 1) of a byte offset: one more than the newlines before it.
    pub(super) fn line_of(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&n| n < offset) + 1
    }

    /// Where `@id("<id>")` first occurs, as `text.find` would say.
    pub(super) fn id_offset(&self, id: &str) -> Option<usize> {
        if id.contains(ID_CLOSE) {
            // The index below ends each id at the first `")`; such an id is searched for.
            return self.text.find(&format!("{ID_OPEN}{id}{ID_CLOSE}"));
        }
        // Without `")` in it, `@id("<id>")` at some offset is exactly an `@id("` there whose
        // text up to the next `")` is the id.
        self.id_offsets
            .get_or_init(|| {
                let mut offsets = HashMap::new();
                for (at, _) in self.text.match_indices(ID_OPEN) {
                    let start = at + ID_OPEN.len();
                    if let Some(len) = self.text[start..].find(ID_CLOSE) {
                        offsets
                            .entry(self.text[start..start + len].to_string())
                            .or_insert(at);
                    }
                }
                offsets
            })
            .get(id)
            .copied()
    }
}

pub(super) fn first_label_offset(diagnostic: &dyn Diagnostic) -> Option<usize> {
    diagnostic
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset())
}

pub(super) fn sorted_files(dir: &Path, extension: &str) -> Result<Vec<PathBuf>, PolicyProblem> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && extension == "json" => {
            return Ok(Vec::new())
        }
        Err(e) => {
            return Err(PolicyProblem {
                file: dir.display().to_string(),
                line: None,
                message: format!("cannot read the directory: {e}"),
            })
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == extension))
        .collect();
    files.sort();
    Ok(files)
}

pub(super) fn read(path: &Path) -> Result<SourceFile, PolicyProblem> {
    std::fs::read_to_string(path)
        .map(|text| SourceFile::new(path.to_path_buf(), text))
        .map_err(|e| PolicyProblem {
            file: path.display().to_string(),
            line: None,
            message: format!("cannot read: {e}"),
        })
}

/// One problem in one policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}
