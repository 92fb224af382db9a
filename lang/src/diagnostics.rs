//! Diagnostics in the style of rustc, rendered with codespan-reporting:
//! the file, line and column, the source line, a caret under the span, a
//! message an operator understands, and a help line where one helps.
//!
//! A [`Diagnostic`] is plain data (so passes can collect many and tests can
//! look at them); [`Diagnostics`] carries them with the source they point
//! into, so it can render itself anywhere: to a `String` without colours, or
//! to stderr with colours when stderr is a terminal.

use std::io::IsTerminal;

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label, Severity as CsSeverity};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, termcolor, Config};

use crate::ast::Span;

/// Source lines longer than this are not printed under a diagnostic.
const MAX_SHOWN_LINE: usize = 1000;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The program is rejected.
    Error,
    /// The program is accepted, but something looks wrong.
    Warning,
}

/// One message about the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The headline.
    pub message: String,
    /// The primary span and its label (none for whole-file problems).
    pub primary: Option<(Span, String)>,
    /// Other places worth showing, with their labels.
    pub secondary: Vec<(Span, String)>,
    /// `= note:` lines.
    pub notes: Vec<String>,
    /// `= help:` lines.
    pub help: Vec<String>,
}

impl Diagnostic {
    /// An error with this headline.
    pub fn error(message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Error, message: message.into(), primary: None, secondary: vec![], notes: vec![], help: vec![] }
    }

    /// A warning with this headline.
    pub fn warning(message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(message) }
    }

    /// Set the primary span and its label.
    pub fn at(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        self.primary = Some((span, label.into()));
        self
    }

    /// Add a secondary span.
    pub fn also(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        self.secondary.push((span, label.into()));
        self
    }

    /// Add a note.
    pub fn note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    /// Add a help line.
    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help.push(help.into());
        self
    }

    fn to_codespan(&self, source_len: usize) -> CsDiagnostic<()> {
        let clamp = |s: Span| {
            let start = s.start.min(source_len);
            start..s.end.clamp(start, source_len)
        };
        let mut labels = vec![];
        if let Some((span, label)) = &self.primary {
            labels.push(Label::primary((), clamp(*span)).with_message(label));
        }
        for (span, label) in &self.secondary {
            labels.push(Label::secondary((), clamp(*span)).with_message(label));
        }
        let severity = match self.severity {
            Severity::Error => CsSeverity::Error,
            Severity::Warning => CsSeverity::Warning,
        };
        let notes = self.notes.iter().map(|n| format!("note: {n}")).chain(self.help.iter().map(|h| format!("help: {h}")));
        CsDiagnostic::new(severity).with_message(&self.message).with_labels(labels).with_notes(notes.collect())
    }
}

/// Diagnostics about one source file, ready to render.
#[derive(Clone, Debug)]
pub struct Diagnostics {
    file_name: String,
    source: String,
    items: Vec<Diagnostic>,
    action: &'static str,
}

impl Diagnostics {
    /// Diagnostics about `source`, known to the user as `file_name`.
    pub fn new(file_name: impl Into<String>, source: impl Into<String>, mut items: Vec<Diagnostic>) -> Diagnostics {
        items.sort_by_key(|d| d.primary.as_ref().map_or(0, |(s, _)| s.start));
        Diagnostics { file_name: file_name.into(), source: source.into(), items, action: "build" }
    }

    /// Name what failed in the closing count ("could not prove `f.vinet`"); `build` by default.
    pub fn action(mut self, verb: &'static str) -> Diagnostics {
        self.action = verb;
        self
    }

    /// The diagnostics, in source order.
    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// None at all?
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Any error among them?
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// The file name the diagnostics show.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The source the spans point into.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// 1-based line and column of a byte offset (column in characters).
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(&self.source, offset)
    }

    /// A diagnostic pointing into a source line too long to print, written
    /// without the source line (same header and location line as codespan).
    fn too_long(&self, d: &Diagnostic) -> Option<String> {
        let longest = d.primary.iter().chain(&d.secondary).map(|(s, _)| self.line_len(s.start)).max()?;
        if longest <= MAX_SHOWN_LINE {
            return None;
        }
        let severity = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = format!("{severity}: {}\n", d.message);
        if let Some((span, label)) = &d.primary {
            let (line, col) = self.line_col(span.start);
            out.push_str(&format!("  ┌─ {}:{line}:{col}\n  │\n  = {label}\n", self.file_name));
        }
        out.push_str(&format!("  = note: the source line is too long to show ({longest} bytes)\n"));
        for n in &d.notes {
            out.push_str(&format!("  = note: {n}\n"));
        }
        for h in &d.help {
            out.push_str(&format!("  = help: {h}\n"));
        }
        out.push('\n');
        Some(out)
    }

    fn line_len(&self, offset: usize) -> usize {
        let offset = offset.min(self.source.len());
        let bytes = self.source.as_bytes();
        let start = bytes[..offset].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let end = bytes[offset..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |i| offset + i);
        end - start
    }

    /// Render one diagnostic as plain text (no colours).
    pub fn render_one(&self, d: &Diagnostic) -> String {
        if let Some(text) = self.too_long(d) {
            return text;
        }
        let file = SimpleFile::new(&self.file_name, &self.source);
        let cs = d.to_codespan(self.source.len());
        term::emit_into_string(&Config::default(), &file, &cs).unwrap_or_else(|_| format!("error: {}\n", d.message))
    }

    /// Render all as plain text, with a closing count like rustc's.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for d in &self.items {
            out.push_str(&self.render_one(d));
        }
        out.push_str(&self.summary());
        out
    }

    /// "error: could not build `f.vinet` (2 errors)" or empty if no errors.
    fn summary(&self) -> String {
        let errors = self.items.iter().filter(|d| d.severity == Severity::Error).count();
        match errors {
            0 => String::new(),
            1 => format!("error: could not {} `{}` (1 error)\n", self.action, self.file_name),
            n => format!("error: could not {} `{}` ({n} errors)\n", self.action, self.file_name),
        }
    }

    /// Write all to stderr, in colour when stderr is a terminal.
    pub fn emit(&self) {
        let color = if std::io::stderr().is_terminal() { termcolor::ColorChoice::Auto } else { termcolor::ColorChoice::Never };
        let stream = termcolor::StandardStream::stderr(color);
        let mut out = stream.lock();
        let file = SimpleFile::new(&self.file_name, &self.source);
        let config = Config::default();
        for d in &self.items {
            if let Some(text) = self.too_long(d) {
                eprint!("{text}");
                continue;
            }
            let cs = d.to_codespan(self.source.len());
            if term::emit_to_write_style(&mut out, &config, &file, &cs).is_err() {
                eprintln!("error: {}", d.message);
            }
        }
        eprint!("{}", self.summary());
    }
}

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

/// 1-based line and column (in characters) of a byte offset of `source`.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_rustc() {
        let src = "LIFETIME = 2 days\nDISCARD(X);\n";
        let d = Diagnostic::error("unknown name `X`").at(Span::new(26, 27), "not declared").help("declare it");
        let text = Diagnostics::new("f.vinet", src, vec![d]).render();
        assert!(text.contains("error: unknown name `X`"), "{text}");
        assert!(text.contains("f.vinet:2:9"), "{text}");
        assert!(text.contains("^ not declared"), "{text}");
        assert!(text.contains("= help: declare it"), "{text}");
        assert!(text.contains("could not build `f.vinet` (1 error)"), "{text}");
    }

    #[test]
    fn empty_source_renders() {
        let d = Diagnostic::error("empty program").at(Span::new(0, 0), "nothing here");
        let text = Diagnostics::new("e.vinet", "", vec![d]).render();
        assert!(text.contains("e.vinet:1:1"), "{text}");
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncdé f", 8), (2, 5));
        assert_eq!(line_col("", 5), (1, 1));
    }
}
