//! The VInet language front end.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod ast;
pub mod diagnostics;
pub mod lexer;
pub mod parser;
pub mod tokens;

lalrpop_util::lalrpop_mod!(
    #[allow(clippy::all, missing_docs, unused_parens, unused_imports, dead_code)]
    grammar
);
