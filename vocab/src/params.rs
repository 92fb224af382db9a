//! Binding install-time parameters given as text (`--param NAME=VALUE`, a
//! manifest's `params`) to a module's declared parameters.
//!
//! The declaration, not the value's syntax, decides the type: the spam
//! filter's `PARAM Word1 = "viagra"` is a string, so `--param Word1=42` is
//! the string "42", for `vinetc run` and `vinetc upload` alike. A parameter
//! that is not given keeps its declared default; a module's every parameter
//! has one (the front end refuses a free name that no `--param` gave at
//! build), so a parameter cannot be missing at install.

use vinet_checker::bytecode::{Const, Param};

use crate::{addr_text, parse_addr, IpPrefix};

/// Why parameter values were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A name the module does not declare.
    #[error("the program declares no parameter {name} (its parameters: {})", names(declared))]
    Unknown {
        /// The name given.
        name: String,
        /// The names the module declares, in order.
        declared: Vec<String>,
    },
    /// The same name given twice.
    #[error("--param {0} is given twice")]
    Twice(String),
    /// A value that is not of the declared type.
    #[error("--param {name}={value}: {name} is {expected}{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Value {
        /// The parameter.
        name: String,
        /// The text given.
        value: String,
        /// The declared type, in words.
        expected: &'static str,
        /// Why the text is not one, where there is more to say.
        reason: Option<String>,
    },
}

fn names(declared: &[String]) -> String {
    if declared.is_empty() {
        "none".into()
    } else {
        declared.join(", ")
    }
}

/// A parameter's value as text, the way `--param` takes it (strings bare).
pub fn value_text(c: &Const) -> String {
    match c {
        Const::Addr(_) | Const::Addr6(_) => c.addr().map(addr_text).unwrap_or_default(),
        // A checked module's prefixes are prefixes (the validator refuses host bits).
        Const::Prefix(..) | Const::Prefix6(..) => match c.prefix().map(|(n, l)| IpPrefix::new(n, l)) {
            Some(Ok(p)) => p.to_string(),
            Some(Err(e)) => e.to_string(),
            None => String::new(),
        },
        Const::Num(n) => n.to_string(),
        Const::Str(s) => s.clone(),
    }
}

/// A value of the type of `declared` (a parameter's default) from its text:
/// an address (`a.b.c.d` or IPv6), a prefix (see [`IpPrefix`]'s parser), a decimal
/// number, or a string. A string is the text itself; text in double quotes
/// is decoded by `unquote` (the language's string literal, escapes and all:
/// this crate does not depend on the front end, which owns that syntax).
pub fn typed_value(
    name: &str, declared: &Const, value: &str, unquote: impl Fn(&str) -> Result<String, String>,
) -> Result<Const, ParamError> {
    let bad = |expected, reason| ParamError::Value { name: name.to_string(), value: value.to_string(), expected, reason };
    match declared {
        Const::Addr(_) | Const::Addr6(_) => {
            parse_addr(value).map(crate::addr_const).ok_or_else(|| bad("an address (a.b.c.d or IPv6)", None))
        }
        Const::Prefix(..) | Const::Prefix6(..) => match value.parse::<IpPrefix>() {
            Ok(p) => Ok(p.to_const()),
            Err(e) => Err(bad("a prefix (a.b.c.d/len or IPv6/len)", Some(e.to_string()))),
        },
        Const::Num(_) => {
            let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
            match value.parse::<u64>() {
                Ok(n) if digits => Ok(Const::Num(n)),
                _ if digits => Err(bad("a number", Some("too large for 64 bits".into()))),
                _ => Err(bad("a number", None)),
            }
        }
        Const::Str(_) if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') => {
            unquote(value).map(Const::Str).map_err(|e| bad("a string", Some(e)))
        }
        Const::Str(_) => Ok(Const::Str(value.to_string())),
    }
}

/// The values of `declared`, in declaration order: each given one typed by
/// its declaration ([`typed_value`]), the others their defaults.
pub fn bind_params(
    declared: &[Param], given: &[(String, String)], unquote: impl Fn(&str) -> Result<String, String>,
) -> Result<Vec<Const>, ParamError> {
    let mut values: Vec<Const> = declared.iter().map(|p| p.default.clone()).collect();
    let mut seen = vec![false; declared.len()];
    for (name, value) in given {
        let Some(i) = declared.iter().position(|p| &p.name == name) else {
            return Err(ParamError::Unknown { name: name.clone(), declared: declared.iter().map(|p| p.name.clone()).collect() });
        };
        if std::mem::replace(&mut seen[i], true) {
            return Err(ParamError::Twice(name.clone()));
        }
        values[i] = typed_value(name, &declared[i].default, value, &unquote)?;
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(name: &str, default: Const) -> Param {
        Param { name: name.into(), default }
    }

    fn spam() -> Vec<Param> {
        vec![decl("Word1", Const::Str("viagra".into())), decl("Word2", Const::Str("lottery".into()))]
    }

    /// A stand-in for the language's string literal: `\n` is the only escape.
    fn unquote(v: &str) -> Result<String, String> {
        let body = &v[1..v.len() - 1];
        if body.contains('\\') && !body.contains("\\n") {
            return Err("bad escape".into());
        }
        Ok(body.replace("\\n", "\n"))
    }

    fn bind(d: &[Param], given: &[(&str, &str)]) -> Result<Vec<Const>, ParamError> {
        let given: Vec<(String, String)> = given.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        bind_params(d, &given, unquote)
    }

    #[test]
    fn the_declaration_types_the_value() {
        let s = |x: &str| Const::Str(x.into());
        assert_eq!(bind(&spam(), &[("Word1", "42")]), Ok(vec![s("42"), s("lottery")]));
        assert_eq!(bind(&spam(), &[("Word2", "10.0.0.1"), ("Word1", "\"a\\nb\"")]), Ok(vec![s("a\nb"), s("10.0.0.1")]));
        assert_eq!(bind(&spam(), &[("Word1", "\"")]), Ok(vec![s("\""), s("lottery")]));
        assert_eq!(bind(&spam(), &[]), Ok(vec![s("viagra"), s("lottery")]));
        let d = [decl("N", Const::Num(8)), decl("Src", Const::Addr(0)), decl("Net", Const::Prefix(0, 0))];
        assert_eq!(
            bind(&d, &[("Net", "10.1.0.0/16"), ("N", "42"), ("Src", "203.0.113.9")]),
            Ok(vec![Const::Num(42), Const::Addr(0xcb00_7109), Const::Prefix(0x0a01_0000, 16)])
        );
        assert_eq!(bind(&d, &[("Net", "10.1.0.7")]).unwrap()[2], Const::Prefix(0x0a01_0007, 32));
        // An address or prefix parameter takes either family, whatever its default's.
        let doc: u128 = 0x2001_0db8 << 96;
        assert_eq!(
            bind(&d, &[("Net", "2001:db8::/32"), ("Src", "2001:db8:bad::9")]),
            Ok(vec![Const::Num(8), Const::Addr6(doc | 0xbad << 80 | 9), Const::Prefix6(doc, 32)])
        );
        assert_eq!(bind(&d, &[("Src", "::ffff:203.0.113.9")]).unwrap()[1], Const::Addr(0xcb00_7109), "IPv4-mapped is IPv4");
        assert_eq!(value_text(&Const::Addr6(doc | 9)), "2001:db8::9");
        assert_eq!(value_text(&Const::Prefix6(doc, 32)), "2001:db8::/32");
        assert_eq!(value_text(&Const::Prefix(0x0a00_0000, 8)), "10.0.0.0/8");
    }

    #[test]
    fn refusals_name_the_parameter_and_the_type() {
        let e = |d: &[Param], g: &[(&str, &str)]| bind(d, g).unwrap_err().to_string();
        assert_eq!(e(&spam(), &[("Nope", "1")]), "the program declares no parameter Nope (its parameters: Word1, Word2)");
        assert_eq!(e(&[], &[("Nope", "1")]), "the program declares no parameter Nope (its parameters: none)");
        assert_eq!(e(&spam(), &[("Word1", "a"), ("Word1", "b")]), "--param Word1 is given twice");
        assert_eq!(e(&spam(), &[("Word1", "\"\\q\"")]), "--param Word1=\"\\q\": Word1 is a string: bad escape");
        let d = [decl("N", Const::Num(8)), decl("Src", Const::Addr(0)), decl("Net", Const::Prefix(0, 0))];
        assert_eq!(e(&d, &[("N", "viagra")]), "--param N=viagra: N is a number");
        assert_eq!(e(&d, &[("N", "+1")]), "--param N=+1: N is a number");
        assert_eq!(e(&d, &[("N", "99999999999999999999")]), "--param N=99999999999999999999: N is a number: too large for 64 bits");
        assert_eq!(e(&d, &[("Src", "42")]), "--param Src=42: Src is an address (a.b.c.d or IPv6)");
        assert_eq!(
            e(&d, &[("Net", "10.0.0.1/8")]),
            "--param Net=10.0.0.1/8: Net is a prefix (a.b.c.d/len or IPv6/len): `10.0.0.1/8` has host bits set (did you mean 10.0.0.0/8?)"
        );
    }
}
