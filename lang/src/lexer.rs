//! The adapter from the logos automaton to the `(start, token, end)` triples
//! the lalrpop parser reads.
//!
//! The whole file is lexed before parsing starts. That costs a vector of
//! tokens (programs are small) and buys two things: lexical errors come out as
//! values beside the tokens, never as a parse failure, and the parser gets an
//! iterator that cannot fail, so lalrpop's error recovery is never cut short by
//! a lexer error.

use logos::Logos;

use crate::ast::Span;
use crate::tokens::{LexError, LexErrorKind, Token};

/// A token with its byte range: what lalrpop consumes.
pub type Spanned<'s> = (usize, Token<'s>, usize);

/// The tokens of `source` and the lexical errors found on the way.
pub fn lex(source: &str) -> (Vec<Spanned<'_>>, Vec<LexError>) {
    let mut lexer = Token::lexer(source);
    let mut tokens = Vec::new();
    let mut unknown: Vec<LexError> = Vec::new();
    while let Some(item) = lexer.next() {
        let span = lexer.span();
        match item {
            Ok(token) => tokens.push((span.start, token, span.end)),
            Err(()) => {
                // One error for a run of characters that start no token.
                let c = source[span.start..].chars().next().unwrap_or('\u{fffd}');
                match unknown.last_mut() {
                    Some(last) if last.span.end == span.start => last.span.end = span.end,
                    _ => unknown.push(LexError { kind: LexErrorKind::UnexpectedChar(c), span: Span::new(span.start, span.end) }),
                }
            }
        }
    }
    let mut errors = std::mem::take(&mut lexer.extras);
    errors.extend(unknown);
    errors.sort_by_key(|e| e.span.start);
    (tokens, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triples_carry_byte_ranges() {
        let (t, e) = lex("X = COUNT(S);");
        assert!(e.is_empty());
        let starts: Vec<_> = t.iter().map(|(s, _, e)| (*s, *e)).collect();
        assert_eq!(starts, vec![(0, 1), (2, 3), (4, 9), (9, 10), (10, 11), (11, 12), (12, 13)]);
    }

    #[test]
    fn runs_of_unknown_characters_give_one_error() {
        let (t, e) = lex("a @@@ b $");
        assert_eq!(t.len(), 2);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].span, Span::new(2, 5));
    }
}
