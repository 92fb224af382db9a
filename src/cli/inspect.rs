//! `vinetc inspect FILE`: a readable listing of a module (and, later, of a
//! bundle).
//!
//! The file's kind is found from its content, not its name: each entry of
//! [`FORMATS`] tries to read the bytes and either lists them or says why it
//! could not. A new kind of file (a `.vpc` bundle) is one more entry.

use std::fmt::Write as _;
use std::path::PathBuf;

use vinet_checker::bytecode::{blocks, ArithOp, CmpOp, Const, Field, Insn, Module, Ty};
use vinet_vocab::names::Routine;

use super::{fmt_lifetime, read_input, Failure};

const AFTER_HELP: &str = "\
Example:
  vinetc build examples/spam_filter.vinet && vinetc inspect examples/spam_filter.vbc

Prints the header, module id, parameters with their defaults, constants,
registers, and the instructions, indented by block, each with the source line
it came from.";

/// Arguments of `vinetc inspect`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// A bytecode module (.vbc), a bundle (.vpc) or a lemma library.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// For a bundle: also show what the checker derives under this policy, and its verdict.
    #[arg(long, value_name = "POLICY.toml")]
    pub policy: Option<PathBuf>,
}

/// A kind of file inspect knows: its name, and a reader that lists the bytes
/// or says why they are not of this kind.
type Format = (&'static str, fn(&[u8]) -> Result<String, String>);

/// The kinds of file inspect knows, tried in order.
const FORMATS: &[Format] =
    &[("bundle", super::inspect_bundle::list_bundle), ("lemma library", super::inspect_bundle::list_library), ("module", list_module)];

/// Run `vinetc inspect`.
pub fn run(args: Args) -> Result<(), Failure> {
    let bytes = read_input(&args.file)?;
    match describe(&bytes) {
        Ok(listing) => {
            print!("{listing}");
            if let Some(p) = &args.policy {
                print!("{}", super::inspect_bundle::derive(&bytes, &super::load_policy(p)?));
            }
            Ok(())
        }
        Err(reason) => Err(Failure::Usage(format!("{}: {reason}", args.file.display()))),
    }
}

/// List `bytes` with the first format that reads them, or say why none did.
pub fn describe(bytes: &[u8]) -> Result<String, String> {
    let mut reasons = vec![];
    for (kind, read) in FORMATS {
        match read(bytes) {
            Ok(listing) => return Ok(listing),
            Err(e) => reasons.push(format!("as a {kind}: {e}")),
        }
    }
    let hint = if std::str::from_utf8(bytes).is_ok() && !bytes.is_empty() {
        " (it looks like text: build a VInet program first with `vinetc build`)"
    } else {
        ""
    };
    Err(format!("not a vinet module{hint}; {}", reasons.join("; ")))
}

fn const_text(c: &Const) -> String {
    match c {
        Const::Addr(_) | Const::Addr6(_) => c.addr().map(vinet_vocab::addr_text).unwrap_or_default(),
        // A module inspect reads is not checked: show a malformed prefix as it is.
        Const::Prefix(..) | Const::Prefix6(..) => match c.prefix() {
            Some((n, l)) => vinet_vocab::IpPrefix::new(n, l)
                .map_or_else(|_| format!("{}/{l} (not a prefix)", vinet_vocab::addr_text(n)), |p| p.to_string()),
            None => String::new(),
        },
        Const::Str(s) => format!("{s:?}"),
        Const::Num(n) => n.to_string(),
    }
}

fn const_kind(c: &Const) -> &'static str {
    match c {
        Const::Addr(_) | Const::Addr6(_) => "address",
        Const::Prefix(..) | Const::Prefix6(..) => "prefix",
        Const::Str(_) => "string",
        Const::Num(_) => "number",
    }
}

fn list_module(bytes: &[u8]) -> Result<String, String> {
    let m = Module::decode(bytes).map_err(|e| e.to_string())?;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "vinet module {}", Module::id_of(bytes));
    let _ = writeln!(w, "  format version {}, {} bytes", m.version, bytes.len());
    let class = vinet_vocab::names::class_name(m.header.class);
    let _ = writeln!(w, "  class     {class}");
    let _ = writeln!(w, "  lifetime  {} ({} s)", fmt_lifetime(m.header.lifetime_secs), m.header.lifetime_secs);
    let _ = writeln!(w, "params ({}):", m.params.len());
    for (i, p) in m.params.iter().enumerate() {
        let _ = writeln!(w, "  p{i:<3} {} : {} = {}", p.name, const_kind(&p.default), const_text(&p.default));
    }
    let _ = writeln!(w, "constants ({}):", m.consts.len());
    for (i, c) in m.consts.iter().enumerate() {
        let _ = writeln!(w, "  #{i:<3} {} {}", const_kind(c), const_text(c));
    }
    let _ = writeln!(w, "registers ({}):", m.regs.len());
    for (i, chunk) in m.regs.chunks(8).enumerate() {
        let regs: Vec<String> = chunk.iter().enumerate().map(|(j, t)| format!("r{}:{}", i * 8 + j, ty(*t))).collect();
        let _ = writeln!(w, "  {}", regs.join(" "));
    }
    let _ = writeln!(w, "code ({} instructions):", m.code.len());
    let _ = writeln!(w, "  {:>5}  {:>5}", "pc", "line");
    list_block(&m, 0, m.code.len(), 1, w);
    Ok(out)
}

fn ty(t: Ty) -> &'static str {
    match t {
        Ty::Bool => "bool",
        Ty::Num => "num",
        Ty::Addr => "addr",
        Ty::Prefix => "prefix",
        Ty::Str => "str",
        Ty::Set => "set",
        Ty::Groups => "groups",
        Ty::AddrList => "addrlist",
        Ty::Content => "content",
        Ty::NumGroups => "numgroups",
    }
}

fn row(m: &Module, pc: usize, depth: usize, text: &str, w: &mut String) {
    let line = match m.lines.get(pc) {
        Some(0) | None => "-".to_string(),
        Some(l) => l.to_string(),
    };
    let _ = writeln!(w, "  {pc:>5}  {line:>5}  {}{text}", "  ".repeat(depth));
}

fn marker(depth: usize, text: &str, w: &mut String) {
    let _ = writeln!(w, "  {:>5}  {:>5}  {}{text}", "", "", "  ".repeat(depth));
}

/// List the instructions in `[start, end)` at indentation `depth`. The
/// module is validated, so blocks nest properly and recursion is bounded by
/// the bytecode's nesting limit.
fn list_block(m: &Module, start: usize, end: usize, depth: usize, w: &mut String) {
    let mut pc = start;
    while pc < end {
        let (subs, next) = blocks(&m.code, pc);
        match &m.code[pc] {
            Insn::If { cond, .. } => {
                row(m, pc, depth, &format!("if r{cond} then"), w);
                list_block(m, subs[0].0, subs[0].1, depth + 1, w);
                if subs[1].0 < subs[1].1 {
                    marker(depth, "else", w);
                    list_block(m, subs[1].0, subs[1].1, depth + 1, w);
                }
                marker(depth, "end", w);
            }
            Insn::Foreach { groups, key, set, .. } => {
                row(m, pc, depth, &format!("foreach group of r{groups}: key r{key}, set r{set}"), w);
                list_block(m, subs[0].0, subs[0].1, depth + 1, w);
                marker(depth, "end", w);
            }
            Insn::While { cond, bound, rank, .. } => {
                let mut r = rank.constant.to_string();
                for (reg, c) in &rank.terms {
                    let _ = write!(
                        r,
                        " {} {}r{reg}",
                        if *c < 0 { '-' } else { '+' },
                        match c.unsigned_abs() {
                            1 => String::new(),
                            n => format!("{n}*"),
                        }
                    );
                }
                row(m, pc, depth, &format!("while (at most {bound} times, rank {r})"), w);
                list_block(m, subs[0].0, subs[0].1, depth + 1, w);
                marker(depth, &format!("test r{cond}, do"), w);
                list_block(m, subs[1].0, subs[1].1, depth + 1, w);
                marker(depth, "end", w);
            }
            insn => row(m, pc, depth, &insn_text(insn, &m.consts, &m.params), w),
        }
        pc = next;
    }
}

fn insn_text(insn: &Insn, consts: &[Const], params: &[vinet_checker::bytecode::Param]) -> String {
    let cmp = |op: &CmpOp| match op {
        CmpOp::Eq => "==",
        CmpOp::Ne => "!=",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
    };
    match insn {
        Insn::Const { dst, k } => {
            let c = consts.get(*k as usize).map_or("?".into(), const_text);
            format!("r{dst} = #{k} ({c})")
        }
        Insn::Param { dst, p } => {
            let name = params.get(*p as usize).map_or("?", |p| p.name.as_str());
            format!("r{dst} = PARAM {name}")
        }
        Insn::ThisIp { dst } => format!("r{dst} = THIS_IP"),
        Insn::ThisSubnet { dst } => format!("r{dst} = THIS_SUBNET_IP"),
        Insn::AllPackets { dst } => format!("r{dst} = AllPackets"),
        Insn::Bool { dst, value } => format!("r{dst} = {value}"),
        Insn::Copy { dst, src } => format!("r{dst} = r{src}"),
        Insn::Not { dst, a } => format!("r{dst} = not r{a}"),
        Insn::And { dst, a, b } => format!("r{dst} = r{a} and r{b}"),
        Insn::Or { dst, a, b } => format!("r{dst} = r{a} or r{b}"),
        Insn::Cmp { op, dst, a, b } => format!("r{dst} = r{a} {} r{b}", cmp(op)),
        Insn::InPrefix { dst, addr, prefix } => format!("r{dst} = r{addr} in r{prefix}"),
        Insn::Mask { dst, addr, mask } => format!("r{dst} = r{addr} & r{mask}"),
        Insn::Arith { op, dst, a, b } => {
            let op = match op {
                ArithOp::Add => "+",
                ArithOp::Sub => "-",
                ArithOp::Mul => "*",
            };
            format!("r{dst} = r{a} {op} r{b}")
        }
        Insn::Concat { dst, a, b } => format!("r{dst} = r{a} + r{b} (strings)"),
        Insn::FilterDst { dst, set, by } => format!("r{dst} = GROUP_BY_DESTINATION(r{set}, r{by})"),
        Insn::FilterSrc { dst, set, by } => format!("r{dst} = GROUP_BY_SOURCE(r{set}, r{by})"),
        Insn::GroupDst { dst, set } => format!("r{dst} = GROUP_BY_DESTINATION(r{set}) (grouping)"),
        Insn::GroupSrc { dst, set } => format!("r{dst} = GROUP_BY_SOURCE(r{set}) (grouping)"),
        Insn::GroupContent { dests, content, set } => format!("r{dests}, r{content} = GROUP_BY_CONTENT(r{set})"),
        Insn::ContainsString { dst, set, needle } => format!("r{dst} = CONTAINS_STRING(r{set}, r{needle})"),
        Insn::Count { dst, set } => format!("r{dst} = COUNT(r{set})"),
        Insn::DistinctDst { dst, set } => format!("r{dst} = DISTINCT_DESTINATIONS(r{set})"),
        Insn::Discard { set } => format!("DISCARD(r{set})"),
        Insn::Generate { src, dst, payload } => format!("GENERATE(r{src}, r{dst}, r{payload})"),
        Insn::Narrow { dst, set, field: Field::TcpFlags, a, b } => format!("r{dst} = TCP_FLAGS(r{set}, on r{a}, off r{b})"),
        Insn::Narrow { dst, set, field, a, b } => {
            format!("r{dst} = {}(r{set}, r{a} to r{b})", Routine::of_field(*field).name())
        }
        Insn::GroupField { dst, set, field } => format!("r{dst} = {}(r{set}) (grouping)", Routine::of_field(*field).name()),
        Insn::DistinctPorts { dst, set } => format!("r{dst} = DISTINCT_DESTINATION_PORTS(r{set})"),
        Insn::OnPackets { dst, set } => format!("r{dst} = ON_PACKETS(r{set}) (those carrying THIS_ON)"),
        Insn::If { .. } | Insn::Foreach { .. } | Insn::While { .. } => format!("{insn:?}"),
    }
}
