//! Lowering a checked program to a bytecode [`Module`].
//!
//! - one register per variable (register number = variable id), then one per
//!   temporary, each with its type;
//! - literals go to the constant pool, deduplicated, each address and prefix
//!   in its one canonical constant (IPv4 as `Const::Addr`/`Const::Prefix`, an
//!   IPv4-mapped literal included; the rest as `Const::Addr6`/`Const::Prefix6`),
//!   which the validator insists on; each use of a PARAM is an `Insn::Param`
//!   load (parameters stay symbolic until install time, THIS_IP and
//!   THIS_SUBNET_IP until run time, so nothing here depends on a family);
//! - `if`, `foreach` and `while` become the structured instructions that own
//!   the blocks after them; a `while` carries the bound and rank the checker
//!   found;
//! - every instruction records the source line and byte span it came from.

use std::collections::HashMap;

use vinet_checker::bytecode::{ArithOp, Const, Header, Insn, Module, Param, Rank, Reg, Ty, FORMAT_VERSION, MAX_ITEMS};

use crate::ast::Span;
use crate::diagnostics::Diagnostic;
use crate::types::{BinOp, By, Expr, ExprKind, Field, Program, Routine, Stmt, StmtKind, Type};

/// A lowered module with the source span of each instruction.
#[derive(Clone, Debug)]
pub struct Lowered {
    /// The module (validated).
    pub module: Module,
    /// Source span of each instruction.
    pub spans: Vec<Span>,
}

struct Lower<'a> {
    line_starts: &'a [usize],
    regs: Vec<Ty>,
    consts: Vec<Const>,
    const_ix: HashMap<Const, u16>,
    code: Vec<Insn>,
    lines: Vec<u32>,
    spans: Vec<Span>,
}

fn too_large(what: &str, span: Span) -> Box<Diagnostic> {
    Box::new(
        Diagnostic::error(format!("program too large: more than {MAX_ITEMS} {what}"))
            .at(Span::new(span.start, span.start), "the limit is passed here")
            .help("split the program into smaller ones"),
    )
}

/// Lower `p`. Fails only if the program passes a limit of the bytecode (too
/// many registers, constants or instructions), or, which would be a bug in
/// this crate, if the module does not validate.
pub fn lower(p: &Program, source: &str) -> Result<Lowered, Box<Diagnostic>> {
    let mut line_starts = vec![0];
    line_starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
    let mut regs = Vec::with_capacity(p.vars.len());
    for v in &p.vars {
        // A checked program has no Error types; be defensive anyway.
        regs.push(v.ty.to_bytecode().ok_or_else(|| internal(format!("variable `{}` has no type", v.name)))?);
    }
    if regs.len() > MAX_ITEMS {
        return Err(too_large("registers", p.vars.last().map_or(Span::default(), |v| v.span)));
    }
    let mut l =
        Lower { line_starts: &line_starts, regs, consts: vec![], const_ix: HashMap::new(), code: vec![], lines: vec![], spans: vec![] };
    l.block(&p.body)?;
    if l.code.len() > MAX_ITEMS {
        return Err(too_large("instructions", l.spans.get(MAX_ITEMS).copied().unwrap_or_default()));
    }
    let module = Module {
        version: FORMAT_VERSION,
        header: Header { lifetime_secs: p.lifetime_secs, class: p.class },
        consts: l.consts,
        params: p.params.iter().map(|d| Param { name: d.name.clone(), default: d.value.clone() }).collect(),
        regs: l.regs,
        code: l.code,
        lines: l.lines,
    };
    module.validate().map_err(|e| internal(format!("the lowered module does not validate: {e}")))?;
    Ok(Lowered { module, spans: l.spans })
}

fn internal(message: String) -> Box<Diagnostic> {
    Box::new(
        Diagnostic::error(format!("internal compiler error: {message}"))
            .note("this is a bug in vinetc; please report it with the program that caused it"),
    )
}

impl Lower<'_> {
    fn emit(&mut self, insn: Insn, span: Span) -> usize {
        let line = self.line_starts.partition_point(|&s| s <= span.start);
        self.code.push(insn);
        self.lines.push(u32::try_from(line).unwrap_or(u32::MAX));
        self.spans.push(span);
        self.code.len() - 1
    }

    fn temp(&mut self, ty: Type, span: Span) -> Result<Reg, Box<Diagnostic>> {
        let ty = ty.to_bytecode().ok_or_else(|| internal("an expression has no type".into()))?;
        let r = Reg::try_from(self.regs.len()).map_err(|_| too_large("registers", span))?;
        if self.regs.len() >= MAX_ITEMS {
            return Err(too_large("registers", span));
        }
        self.regs.push(ty);
        Ok(r)
    }

    fn konst(&mut self, c: &Const, span: Span) -> Result<u16, Box<Diagnostic>> {
        if let Some(&k) = self.const_ix.get(c) {
            return Ok(k);
        }
        let k = u16::try_from(self.consts.len()).map_err(|_| too_large("constants", span))?;
        self.consts.push(c.clone());
        self.const_ix.insert(c.clone(), k);
        Ok(k)
    }

    fn var(v: usize, span: Span) -> Result<Reg, Box<Diagnostic>> {
        Reg::try_from(v).map_err(|_| too_large("registers", span))
    }

    fn block(&mut self, stmts: &[Stmt]) -> Result<(), Box<Diagnostic>> {
        for s in stmts {
            self.stmt(s)?;
        }
        Ok(())
    }

    /// Length of the code emitted since `start`, as a block length.
    fn len_since(&self, start: usize) -> u32 {
        u32::try_from(self.code.len() - start).unwrap_or(u32::MAX)
    }

    fn stmt(&mut self, s: &Stmt) -> Result<(), Box<Diagnostic>> {
        let span = s.span;
        match &s.kind {
            StmtKind::Assign { var, value } => {
                let dst = Self::var(*var, span)?;
                self.expr_into(value, dst)?;
            }
            StmtKind::Grouping { groups, key: _, set: _, by, of } => {
                let set = self.expr(of)?;
                let dst = Self::var(*groups, span)?;
                let insn = match *by {
                    By::Addr(Field::Dst) => Insn::GroupDst { dst, set },
                    By::Addr(Field::Src) => Insn::GroupSrc { dst, set },
                    By::Number(field) => Insn::GroupField { dst, set, field },
                };
                self.emit(insn, span);
            }
            StmtKind::GroupContent { dests, content, of } => {
                let set = self.expr(of)?;
                let insn = Insn::GroupContent { dests: Self::var(*dests, span)?, content: Self::var(*content, span)?, set };
                self.emit(insn, span);
            }
            StmtKind::Discard(set) => {
                let set = self.expr(set)?;
                self.emit(Insn::Discard { set }, span);
            }
            StmtKind::Generate { src, dst, payload } => {
                let (src, dst, payload) = (self.expr(src)?, self.expr(dst)?, self.expr(payload)?);
                self.emit(Insn::Generate { src, dst, payload }, span);
            }
            StmtKind::If { cond, then, els } => {
                let c = self.expr(cond)?;
                let at = self.emit(Insn::If { cond: c, then_len: 0, else_len: 0 }, cond.span);
                self.block(then)?;
                let then_len = self.len_since(at + 1);
                let else_start = self.code.len();
                self.block(els)?;
                let else_len = self.len_since(else_start);
                self.code[at] = Insn::If { cond: c, then_len, else_len };
            }
            StmtKind::Foreach { groups, key, set, body, head } => {
                let (groups, key, set) = (Self::var(*groups, span)?, Self::var(*key, span)?, Self::var(*set, span)?);
                let at = self.emit(Insn::Foreach { groups, key, set, body_len: 0 }, *head);
                self.block(body)?;
                let body_len = self.len_since(at + 1);
                self.code[at] = Insn::Foreach { groups, key, set, body_len };
            }
            StmtKind::While { cond, body, bound, rank } => {
                let mut terms = Vec::with_capacity(rank.terms.len());
                for &(v, c) in &rank.terms {
                    terms.push((Self::var(v, span)?, c));
                }
                let rank = Rank { terms, constant: rank.constant };
                let placeholder = Insn::While { cond_len: 0, cond: 0, body_len: 0, bound: *bound, rank: rank.clone() };
                let at = self.emit(placeholder, cond.span);
                let c = self.expr(cond)?;
                let cond_len = self.len_since(at + 1);
                let body_start = self.code.len();
                self.block(body)?;
                let body_len = self.len_since(body_start);
                self.code[at] = Insn::While { cond_len, cond: c, body_len, bound: *bound, rank };
            }
        }
        Ok(())
    }

    /// The register holding `e`'s value: a variable's own register, or a new
    /// temporary computed here.
    fn expr(&mut self, e: &Expr) -> Result<Reg, Box<Diagnostic>> {
        if let ExprKind::Var(v) = e.kind {
            return Self::var(v, e.span);
        }
        let dst = self.temp(e.ty, e.span)?;
        self.expr_into(e, dst)?;
        Ok(dst)
    }

    fn expr_into(&mut self, e: &Expr, dst: Reg) -> Result<(), Box<Diagnostic>> {
        let span = e.span;
        let insn = match &e.kind {
            ExprKind::Const(c) => Insn::Const { dst, k: self.konst(c, span)? },
            ExprKind::Bool(value) => Insn::Bool { dst, value: *value },
            ExprKind::Var(v) => Insn::Copy { dst, src: Self::var(*v, span)? },
            ExprKind::Param(p) => Insn::Param { dst, p: u16::try_from(*p).map_err(|_| too_large("parameters", span))? },
            ExprKind::ThisIp => Insn::ThisIp { dst },
            ExprKind::ThisSubnet => Insn::ThisSubnet { dst },
            ExprKind::AllPackets => Insn::AllPackets { dst },
            // The window's packets, then those carrying THIS_ON.
            ExprKind::OnPackets => {
                self.emit(Insn::AllPackets { dst }, span);
                Insn::OnPackets { dst, set: dst }
            }
            ExprKind::Not(a) => Insn::Not { dst, a: self.expr(a)? },
            ExprKind::Binary(op, a, b) => {
                let (a, b) = (self.expr(a)?, self.expr(b)?);
                match op {
                    BinOp::And => Insn::And { dst, a, b },
                    BinOp::Or => Insn::Or { dst, a, b },
                    BinOp::Cmp(op) => Insn::Cmp { op: *op, dst, a, b },
                    BinOp::In => Insn::InPrefix { dst, addr: a, prefix: b },
                    BinOp::Mask => Insn::Mask { dst, addr: a, mask: b },
                    BinOp::Add => Insn::Arith { op: ArithOp::Add, dst, a, b },
                    BinOp::Sub => Insn::Arith { op: ArithOp::Sub, dst, a, b },
                    BinOp::Mul => Insn::Arith { op: ArithOp::Mul, dst, a, b },
                    BinOp::Concat => Insn::Concat { dst, a, b },
                }
            }
            ExprKind::Call(r, args) => {
                let mut regs = Vec::with_capacity(args.len());
                for a in args {
                    regs.push(self.expr(a)?);
                }
                match (r, regs.as_slice()) {
                    (Routine::Filter(Field::Dst), &[set, by]) => Insn::FilterDst { dst, set, by },
                    (Routine::Filter(Field::Src), &[set, by]) => Insn::FilterSrc { dst, set, by },
                    (Routine::ContainsString, &[set, needle]) => Insn::ContainsString { dst, set, needle },
                    (Routine::Count, &[set]) => Insn::Count { dst, set },
                    (Routine::DistinctDestinations, &[set]) => Insn::DistinctDst { dst, set },
                    (Routine::DistinctDestinationPorts, &[set]) => Insn::DistinctPorts { dst, set },
                    // One value is the range from it to itself: one register read twice.
                    (Routine::Narrow(field), &[set, v]) => Insn::Narrow { dst, set, field: *field, a: v, b: v },
                    (Routine::Narrow(field), &[set, a, b]) => Insn::Narrow { dst, set, field: *field, a, b },
                    _ => return Err(internal(format!("{r:?} with {} arguments", regs.len()))),
                }
            }
            ExprKind::Error => return Err(internal("an erroneous expression reached lowering".into())),
        };
        self.emit(insn, span);
        Ok(())
    }
}
