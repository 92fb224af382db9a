//! The formatter behind `vinetc fmt`: one layout for every VInet program,
//! keeping its comments.
//!
//! The formatter changes whitespace, and the spelling of addresses only. It
//! prints every token of the source, in order and as written (keywords keep
//! their case, numbers and strings their spelling), but for address and prefix
//! literals, which it prints in their one canonical form, as every vinet tool
//! prints them ([`vinet_vocab::addr_text`]): IPv4 dotted, IPv6 as RFC 5952
//! says (`2001:DB8:0:0::1` becomes `2001:db8::1`, `::ffff:10.0.0.1` becomes
//! `10.0.0.1`, one literal either way). It decides only where lines break
//! and how deep they are indented. Those decisions come from the syntax tree: a header item or a
//! statement starts a line; the body of `then`, `else`, `do` starts an indented
//! line unless it is a block (`begin ... end`, `{ ... }`), whose statements are
//! indented and whose closing word is back at the statement's depth; an `else
//! if` stays on the `else` line. Simple statements always end with `;`, the one
//! token the formatter may add (the grammar allows it wherever a simple
//! statement ends).
//!
//! Comments are not in the token stream (the lexer skips them), so the
//! formatter reads them from the gaps between tokens: a comment on the line of
//! the token before it stays at the end of that line; a comment on a line of
//! its own stays on a line of its own, indented like what follows it; one
//! blank line between statements (or before a comment) is kept, more are
//! squeezed to one. Since the tokens, the comments and the tree are the same
//! after formatting, formatting is idempotent.
//!
//! A program that does not lex or parse is not formatted: the result is its
//! diagnostics, as `compile` would report them.

use crate::ast::{Item, Program, Span, Stmt, StmtKind};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::lexer::{lex, Spanned};
use crate::tokens::Token;

const INDENT: &str = "  ";

/// The program in its one layout, or the diagnostics that prevent formatting.
pub fn format(file_name: &str, source: &str) -> Result<String, Diagnostics> {
    let fail = |items: Vec<Diagnostic>| Diagnostics::new(file_name, source, items).action("format");
    let parsed = crate::parser::parse(source);
    if !parsed.lexical.is_empty() || !parsed.syntax.is_empty() {
        return Err(fail(parsed.lexical.into_iter().chain(parsed.syntax).collect()));
    }
    let Some(program) = parsed.program else {
        return Err(fail(vec![Diagnostic::error("the program does not parse")]));
    };
    let (tokens, _) = lex(source);
    let mut layout = Layout { tokens: &tokens, breaks: vec![None; tokens.len()], semis: vec![] };
    layout.program(&program);
    layout.semis.sort_unstable();
    Ok(layout.print(source))
}

struct Layout<'t, 's> {
    tokens: &'t [Spanned<'s>],
    /// For each token: `Some(depth)` when a line starts with it.
    breaks: Vec<Option<usize>>,
    /// Token indices after which a `;` is added (a simple statement written without one).
    semis: Vec<usize>,
}

impl Layout<'_, '_> {
    /// The index of the first token starting at or after `offset`.
    fn at(&self, offset: usize) -> usize {
        self.tokens.partition_point(|t| t.0 < offset)
    }

    /// The index of the last token ending at or before `offset`.
    fn last_before(&self, offset: usize) -> Option<usize> {
        self.tokens.partition_point(|t| t.2 <= offset).checked_sub(1)
    }

    /// The first token at or after `offset` that is `want`.
    fn find(&self, offset: usize, want: &Token) -> Option<usize> {
        (self.at(offset)..self.tokens.len()).find(|&i| self.tokens[i].1 == *want)
    }

    fn break_at(&mut self, offset: usize, depth: usize) {
        let i = self.at(offset);
        if let Some(b) = self.breaks.get_mut(i) {
            *b = Some(depth);
        }
    }

    fn program(&mut self, p: &Program) {
        for item in &p.items {
            match item {
                Item::Lifetime { span, .. } | Item::Class { span, .. } | Item::Param { span, .. } => self.break_at(span.start, 0),
                Item::Stmt(s) => self.stmt(s, 0),
            }
        }
    }

    /// A statement that starts a line at `depth`.
    fn stmt(&mut self, s: &Stmt, depth: usize) {
        self.break_at(s.span.start, depth);
        self.inner(s, depth);
    }

    /// The body of `then`, `else` or `do`: a block stays on the keyword's line.
    fn body(&mut self, s: &Stmt, depth: usize) {
        match s.kind {
            StmtKind::Block(_) => self.inner(s, depth),
            _ => self.stmt(s, depth + 1),
        }
    }

    /// The layout inside a statement whose first token is placed.
    fn inner(&mut self, s: &Stmt, depth: usize) {
        match &s.kind {
            StmtKind::Assign { .. } | StmtKind::Expr(_) => self.simple_end(s.span),
            StmtKind::If { then, els, .. } => {
                self.body(then, depth);
                if let Some(e) = els {
                    if let Some(i) = self.find(then.span.end, &Token::Else) {
                        self.breaks[i] = Some(depth);
                    }
                    match e.kind {
                        StmtKind::If { .. } => self.inner(e, depth),
                        _ => self.body(e, depth),
                    }
                }
            }
            StmtKind::While { body, .. } | StmtKind::Foreach { body, .. } => self.body(body, depth),
            StmtKind::Block(stmts) => {
                for st in stmts {
                    self.stmt(st, depth + 1);
                }
                if let Some(close) = self.last_before(s.span.end) {
                    self.breaks[close] = Some(depth);
                }
            }
            StmtKind::Error => {}
        }
    }

    /// A simple statement ends with `;`: add one if it was left out.
    fn simple_end(&mut self, span: Span) {
        let Some(last) = self.last_before(span.end) else { return };
        if self.tokens.get(last + 1).is_none_or(|t| t.1 != Token::Semi) {
            self.semis.push(last);
        }
    }

    fn print(&self, source: &str) -> String {
        let mut out = String::new();
        let mut depth = 0; // of the current line
        let mut prev_end: Option<usize> = None;
        for (i, (start, token, end)) in self.tokens.iter().enumerate() {
            let gap = &source[prev_end.unwrap_or(0)..*start];
            let mut need_newline = false;
            for c in comments(gap) {
                if prev_end.is_some() && !c.own_line {
                    out.push(' ');
                } else {
                    if !out.is_empty() {
                        newline(&mut out, c.blank_before);
                    }
                    let d = self.breaks[i].unwrap_or(depth + 2);
                    indent(&mut out, d);
                }
                out.push_str(c.text);
                need_newline = true;
            }
            match self.breaks[i] {
                Some(d) => {
                    if !out.is_empty() {
                        newline(&mut out, !need_newline && blank_line(gap));
                    }
                    depth = d;
                    indent(&mut out, d);
                }
                None if need_newline => {
                    newline(&mut out, false);
                    indent(&mut out, depth + 2);
                }
                None => {
                    if i > 0 && spaced(&self.tokens[i - 1].1, token) {
                        out.push(' ');
                    }
                }
            }
            match token {
                Token::Ip(lit) => out.push_str(&lit.text()),
                _ => out.push_str(&source[*start..*end]),
            }
            if self.semis.binary_search(&i).is_ok() {
                out.push(';');
            }
            prev_end = Some(*end);
        }
        let tail = &source[prev_end.unwrap_or(0)..];
        for c in comments(tail) {
            if prev_end.is_some() && !c.own_line {
                out.push(' ');
            } else {
                if !out.is_empty() {
                    newline(&mut out, c.blank_before);
                }
            }
            out.push_str(c.text);
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out
    }
}

/// End the current line (trailing spaces trimmed), with a blank line after it if asked.
fn newline(out: &mut String, blank: bool) {
    let trimmed = out.trim_end_matches([' ', '\t']).len();
    out.truncate(trimmed);
    out.push('\n');
    if blank {
        out.push('\n');
    }
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str(INDENT);
    }
}

/// Whether a gap of whitespace holds a blank line.
fn blank_line(gap: &str) -> bool {
    gap.matches('\n').count() >= 2
}

/// A comment in a gap between tokens.
struct Comment<'s> {
    /// Its text from `//`, trailing whitespace trimmed.
    text: &'s str,
    /// On a line of its own (else at the end of the previous token's line).
    own_line: bool,
    /// With a blank line before it.
    blank_before: bool,
}

/// The comments of a gap (which holds only whitespace and comments).
fn comments(gap: &str) -> Vec<Comment<'_>> {
    let mut out = vec![];
    let mut rest = gap;
    while let Some(at) = rest.find("//") {
        let before = &rest[..at];
        let len = rest[at..].find('\n').unwrap_or(rest.len() - at);
        let text = rest[at..at + len].trim_end();
        out.push(Comment { text, own_line: before.contains('\n'), blank_before: blank_line(before) });
        rest = &rest[at + len..];
    }
    out
}

/// Whether a space separates two tokens on one line.
fn spaced(prev: &Token, next: &Token) -> bool {
    let tight = matches!(next, Token::RParen | Token::Comma | Token::Semi)
        || matches!(prev, Token::LParen)
        || matches!((prev, next), (Token::Ident(_), Token::LParen));
    !tight
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(s: &str) -> String {
        format("t.vinet", s).unwrap_or_else(|d| panic!("{}", d.render()))
    }

    #[test]
    fn lays_out_statements_blocks_and_branches() {
        let src = "LIFETIME = 2 days\nPARAM A = 1.2.3.4; PARAM B = \"x\";\nM=GROUP_BY_DESTINATION( AllPackets ,THIS_IP );\n\
                   S(i),P(i) = GROUP_BY_SOURCE(M);\nforeach i do if CONTAINS_STRING(P(i), B) and S(i) == A then DISCARD(P(i)) else begin X = COUNT(P(i)); end\n";
        let want = "LIFETIME = 2 days\nPARAM A = 1.2.3.4;\nPARAM B = \"x\";\nM = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\n\
                    S(i), P(i) = GROUP_BY_SOURCE(M);\nforeach i do\n  if CONTAINS_STRING(P(i), B) and S(i) == A then\n    DISCARD(P(i));\n  \
                    else begin\n    X = COUNT(P(i));\n  end\n";
        assert_eq!(fmt(src), want);
        assert_eq!(fmt(want), want);
    }

    #[test]
    fn keeps_comments_where_they_are() {
        let src = "// head\n\n\n// second\nLIFETIME = 1 hours // trailing\nM = GROUP_BY_DESTINATION(AllPackets, // inside\n THIS_IP);\n\
                   if COUNT(M) > 3 then\n// own line in a branch\nDISCARD(M);\n// at the end\n";
        let out = fmt(src);
        assert_eq!(
            out,
            "// head\n\n// second\nLIFETIME = 1 hours // trailing\nM = GROUP_BY_DESTINATION(AllPackets, // inside\n    THIS_IP);\n\
             if COUNT(M) > 3 then\n  // own line in a branch\n  DISCARD(M);\n// at the end\n"
        );
        assert_eq!(fmt(&out), out);
    }

    #[test]
    fn else_if_chains_stay_flat() {
        let src = "LIFETIME = 1 hours\nM = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nN = COUNT(M);\n\
                   if N > 3 then DISCARD(M); else if N > 2 then X = 1; else { Y = 2; Z = 3 }\n";
        let want = "LIFETIME = 1 hours\nM = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nN = COUNT(M);\n\
                    if N > 3 then\n  DISCARD(M);\nelse if N > 2 then\n  X = 1;\nelse {\n  Y = 2;\n  Z = 3;\n}\n";
        assert_eq!(fmt(src), want);
    }

    #[test]
    fn transport_routines_and_number_groupings() {
        let src = "LIFETIME = 1 days\nPARAM Port=25;Mine=GROUP_BY_DESTINATION(AllPackets,THIS_IP);\n\
                   Smtp = GROUP_BY_DESTINATION_PORT( GROUP_BY_PROTOCOL(Mine,tcp) ,Port ) ; Low=GROUP_BY_SOURCE_PORT(Mine,0,1023);\n\
                   P(i),K(i)=GROUP_BY_DESTINATION_PORT(Mine); foreach i do if K(i)==25 or DISTINCT_DESTINATION_PORTS(P(i))>3 \
                   then DISCARD(TCP_FLAGS(P(i),SYN+ACK,FIN)) // SYN-ACKs\n";
        let want = "LIFETIME = 1 days\nPARAM Port = 25;\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\n\
                    Smtp = GROUP_BY_DESTINATION_PORT(GROUP_BY_PROTOCOL(Mine, tcp), Port);\nLow = GROUP_BY_SOURCE_PORT(Mine, 0, 1023);\n\
                    P(i), K(i) = GROUP_BY_DESTINATION_PORT(Mine);\nforeach i do\n  \
                    if K(i) == 25 or DISTINCT_DESTINATION_PORTS(P(i)) > 3 then\n    DISCARD(TCP_FLAGS(P(i), SYN + ACK, FIN)); // SYN-ACKs\n";
        assert_eq!(fmt(src), want);
        assert_eq!(fmt(want), want);
        let module = |s: &str| {
            let mut m = crate::compile("t.vinet", s.as_bytes(), &[]).unwrap_or_else(|d| panic!("{}", d.render())).module;
            m.lines.iter_mut().for_each(|l| *l = 0);
            m
        };
        assert_eq!(module(src), module(want));
    }

    #[test]
    fn a_program_that_does_not_parse_is_not_formatted() {
        let e = format("t.vinet", "LIFETIME = 1 hours\nX = (;\n").unwrap_err();
        assert!(e.has_errors());
        assert!(e.render().contains("t.vinet:2:"), "{}", e.render());
        assert!(format("t.vinet", "LIFETIME = 1 hours\nX = 300.1.2.3;\n").is_err());
    }

    #[test]
    fn addresses_print_canonically() {
        let src = "LIFETIME = 1 days\nPARAM A = 2001:0DB8:0000::0009; PARAM B = ::FFFF:203.0.113.9;\n\
                   M = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nif THIS_IP in 2001:db8:0:0:0:0:0:0/32 or A == 010.0.0.1 then DISCARD(GROUP_BY_SOURCE(M, 0:0::0/0));\n";
        let want = "LIFETIME = 1 days\nPARAM A = 2001:db8::9;\nPARAM B = 203.0.113.9;\nM = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\n\
                    if THIS_IP in 2001:db8::/32 or A == 10.0.0.1 then\n  DISCARD(GROUP_BY_SOURCE(M, ::/0));\n";
        assert_eq!(fmt(src), want);
        assert_eq!(fmt(want), want);
        let module = |s: &str| {
            let mut m = crate::compile("t.vinet", s.as_bytes(), &[]).unwrap_or_else(|d| panic!("{}", d.render())).module;
            m.lines.iter_mut().for_each(|l| *l = 0);
            m
        };
        assert_eq!(module(src), module(want));
        assert!(format("t.vinet", "LIFETIME = 1 days\nX = 2001:db8:::1;\n").is_err());
    }

    #[test]
    fn empty_and_comment_only_files() {
        assert_eq!(fmt(""), "");
        assert_eq!(fmt("// just a note  \n"), "// just a note\n");
    }
}
