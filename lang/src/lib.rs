//! # vinet-lang: the VInet language
//!
//! The front end a user meets first: source text in, a bytecode
//! [`Module`] (or a set of diagnostics) out, through [`compile`]. It lexes
//! with logos ([`tokens`], [`lexer`]), parses with a lalrpop grammar
//! ([`parser`]) into a syntax tree with a span on every node ([`ast`]),
//! resolves names and checks types ([`resolve`], [`types`]), finds loop
//! bounds ([`bounds`]) and lowers to bytecode ([`lower`]). [`reference`] is a
//! deliberately plain interpreter of checked programs, the yardstick the VM is
//! tested against.
//!
//! Addresses are IPv4 or IPv6 (issue 15), in one 128-bit space where IPv4 is
//! IPv4-mapped IPv6: one type `IP address` and one `prefix` hold both, a
//! literal of either family (`203.0.113.9`, `2001:db8::9`, `::ffff:203.0.113.9`,
//! `2001:db8::/32`) is one token ([`tokens::IpLit`]), and it lowers to its one
//! canonical constant (IPv4 as `Const::Addr`/`Const::Prefix`, the rest as
//! `Const::Addr6`/`Const::Prefix6`). Addresses print as every vinet tool prints
//! them, through [`vinet_vocab::addr_text`] (RFC 5952 for IPv6).
//!
//! The one big decision: **the front end never gives up at the first problem
//! and never panics.** Every pass collects diagnostics instead of returning at
//! the first error: lexical errors are values beside the tokens, the parser
//! recovers at `;`, and the checker gives erroneous expressions a type that
//! fits everywhere, so one run reports every independent mistake once. And
//! every pass is total on hostile input: the tree's depth is capped where
//! nodes are built (so no later pass, nor dropping the tree, can overflow the
//! stack), non-UTF-8 bytes and empty files are located errors, and the
//! lowered module is validated before it is handed out, so a program the front
//! end accepts is a module the checker can read.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod ast;
pub mod bounds;
pub mod diagnostics;
pub mod format;
pub mod lexer;
pub mod lower;
pub mod parser;
pub mod reference;
pub mod resolve;
pub mod tokens;
pub mod types;

lalrpop_util::lalrpop_mod!(
    #[allow(clippy::all, missing_docs, unused_parens, unused_imports, dead_code)]
    grammar
);

use std::ops::Range;

use vinet_checker::bytecode::{Const, Module};

pub use diagnostics::{Diagnostic, Diagnostics, Severity};

use ast::Span;
use tokens::{parse_dotted, parse_ip6_literal};

/// A program that compiled: the module, and what is needed to talk about it
/// in terms of its source.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The bytecode module (validated).
    pub module: Module,
    /// The source byte range each instruction came from.
    pub spans: Vec<Range<usize>>,
    /// The source text.
    pub source: String,
    /// The file name, as diagnostics show it.
    pub file_name: String,
    /// The checked program (what the reference interpreter runs).
    pub program: types::Program,
    /// Warnings (the program was accepted).
    pub warnings: Diagnostics,
}

impl Compiled {
    /// A diagnostic whose caret is under the source of instruction `insn`
    /// (none if there is no such instruction). Add notes and help with the
    /// builder methods, then render with [`Compiled::render`].
    pub fn diagnostic_at(&self, insn: usize, severity: Severity, message: &str, label: &str) -> Diagnostic {
        let d = match severity {
            Severity::Error => Diagnostic::error(message),
            Severity::Warning => Diagnostic::warning(message),
        };
        match self.spans.get(insn) {
            Some(r) => d.at(Span::new(r.start, r.end), label),
            None => d,
        }
    }

    /// Diagnostics about this program's source, ready to render to a string
    /// ([`Diagnostics::render`]) or to stderr ([`Diagnostics::emit`]).
    pub fn render(&self, diagnostics: Vec<Diagnostic>) -> Diagnostics {
        Diagnostics::new(self.file_name.clone(), self.source.clone(), diagnostics)
    }
}

/// Compile VInet source to a module. `params` are `--param NAME=VALUE`
/// pairs: they give values to free names or override `PARAM` lines.
pub fn compile(file_name: &str, source: &[u8], params: &[(String, String)]) -> Result<Compiled, Diagnostics> {
    let text = match std::str::from_utf8(source) {
        Ok(t) => t,
        Err(e) => {
            let lossy = String::from_utf8_lossy(source).into_owned();
            let at = e.valid_up_to();
            let bad = source.get(at).copied().unwrap_or(0);
            let line = source[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            let d = Diagnostic::error("the file is not UTF-8 text")
                .at(Span::new(at, at + '\u{fffd}'.len_utf8()), format!("byte 0x{bad:02x} at offset {at} (line {line})"))
                .help("save the program as UTF-8 text");
            return Err(Diagnostics::new(file_name, lossy, vec![d]));
        }
    };
    let fail = |items: Vec<Diagnostic>| Diagnostics::new(file_name, text, items);
    let parsed = parser::parse(text);
    if parsed.tokens == 0 && parsed.lexical.is_empty() {
        let d = Diagnostic::error("empty program")
            .at(Span::new(0, 0), "nothing to build")
            .help(format!("a program declares its LIFETIME, then its statements, like:\n      {}", resolve::minimal_program()));
        return Err(fail(vec![d]));
    }
    let mut diags = parsed.lexical;
    let program = match parsed.program {
        Some(p) if parsed.syntax.is_empty() => p,
        _ => {
            diags.extend(parsed.syntax);
            return Err(fail(diags));
        }
    };
    let mut cli = Vec::with_capacity(params.len());
    for (name, value) in params {
        match parse_param_value(value) {
            Ok(c) => cli.push((name.clone(), c)),
            Err(e) => diags.push(Diagnostic::error(format!("--param {name}={value}: {e}"))),
        }
    }
    let (checked, check_diags) = resolve::check(&program, &cli);
    diags.extend(check_diags);
    let (errors, warnings): (Vec<_>, Vec<_>) = diags.into_iter().partition(|d| d.severity == Severity::Error);
    let checked = match checked {
        Some(c) if errors.is_empty() => c,
        _ => return Err(fail(errors.into_iter().chain(warnings).collect())),
    };
    let lowered = match lower::lower(&checked, text) {
        Ok(l) => l,
        Err(d) => return Err(fail(std::iter::once(*d).chain(warnings).collect())),
    };
    Ok(Compiled {
        module: lowered.module,
        spans: lowered.spans.into_iter().map(Span::range).collect(),
        source: text.to_string(),
        file_name: file_name.to_string(),
        program: checked,
        warnings: fail(warnings),
    })
}

/// Split a `--param` argument `NAME=VALUE`, checking that NAME is a name.
pub fn parse_param_arg(arg: &str) -> Result<(String, String), String> {
    let Some((name, value)) = arg.split_once('=') else {
        return Err(format!("`{arg}` is not NAME=VALUE"));
    };
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(format!("`{name}` is not a valid name (letters, digits and `_`, not starting with a digit)"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// The value of a `--param`, typed by its syntax: an address `1.2.3.4` or
/// `2001:db8::9`, a prefix `10.0.0.0/8` or `2001:db8::/32` (IPv6 is text of
/// hex digits, `:`, `.` and `/` with a `:`; an IPv4-mapped one is IPv4), a
/// number `42`, a quoted string `"a b"` (escapes as in the language), or else
/// the text itself as a string.
pub fn parse_param_value(value: &str) -> Result<Const, String> {
    if value.len() > tokens::MAX_STRING + 2 {
        return Err(format!("value of {} bytes is too long (at most {})", value.len(), tokens::MAX_STRING));
    }
    let message = |kind| parser::lex_diagnostic(&tokens::LexError { kind, span: Span::default() }).message;
    let dotted = !value.is_empty() && value.starts_with(|c: char| c.is_ascii_digit()) && value.contains('.');
    if dotted && value.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '/') {
        return parse_dotted(value).map(|lit| lit.to_const()).map_err(message);
    }
    if value.contains(':') && value.chars().all(|c| c.is_ascii_hexdigit() || ":./".contains(c)) {
        return parse_ip6_literal(value).map(|lit| lit.to_const()).map_err(|(kind, _)| message(kind));
    }
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) {
        return value.parse().map(Const::Num).map_err(|_| "number too large".to_string());
    }
    if let Some(body) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        return tokens::unescape(body)
            .map(Const::Str)
            .map_err(|(kind, _)| parser::lex_diagnostic(&tokens::LexError { kind, span: Span::default() }).message);
    }
    Ok(Const::Str(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_values_are_typed_by_syntax() {
        assert_eq!(parse_param_value("203.0.113.9"), Ok(Const::Addr(0xcb00_7109)));
        assert_eq!(parse_param_value("10.0.0.0/8"), Ok(Const::Prefix(0x0a00_0000, 8)));
        assert_eq!(parse_param_value("8"), Ok(Const::Num(8)));
        assert_eq!(parse_param_value("\"two words\""), Ok(Const::Str("two words".into())));
        assert_eq!(parse_param_value("viagra"), Ok(Const::Str("viagra".into())));
        assert!(parse_param_value("300.1.2.3").is_err());
        assert!(parse_param_value("10.0.0.1/8").is_err());
        let doc: u128 = 0x2001_0db8 << 96;
        assert_eq!(parse_param_value("2001:db8:bad::9"), Ok(Const::Addr6(doc | 0xbad << 80 | 9)));
        assert_eq!(parse_param_value("2001:db8::/32"), Ok(Const::Prefix6(doc, 32)));
        assert_eq!(parse_param_value("::ffff:203.0.113.9"), Ok(Const::Addr(0xcb00_7109)), "IPv4-mapped is IPv4");
        assert_eq!(parse_param_value("::/0"), Ok(Const::Prefix6(0, 0)));
        let e = parse_param_value("2001:db8::1/32").unwrap_err();
        assert!(e.contains("host bits"), "{e}");
        assert!(parse_param_value("2001::db8::1").unwrap_err().contains("not a valid IPv6 address"));
        assert!(parse_param_value("::/129").is_err());
        assert_eq!(parse_param_value("http:"), Ok(Const::Str("http:".into())), "not hex: a string");
        assert_eq!(parse_param_arg("A_1=x=y"), Ok(("A_1".into(), "x=y".into())));
        assert!(parse_param_arg("1A=x").is_err());
        assert!(parse_param_arg("A").is_err());
    }
}
