//! Loop bounds: constant folding of straight-line numeric code, and the
//! ranking function of a `while` loop read off its guard.
//!
//! The rule (docs/LANGUAGE.md): the guard, or one conjunct of it, compares a
//! number variable `v` that the loop body assigns with a limit `E` that the
//! loop does not change (a number, a variable the loop does not assign, or a
//! constant expression). `v < E` ranks as `E - v`, `v <= E` as `E - v + 1`,
//! `v > E` as `v - E`, `v >= E` as `v - E + 1` (and the same with `E` on the
//! left). The rank's value when the loop starts must be known at compile
//! time; that value is the bound. Whether the body really decreases the rank
//! is for the prover to show, not for the compiler.

use std::collections::{HashMap, HashSet};

use vinet_checker::bytecode::{CmpOp, Const, MAX_LOOP_BOUND};

use crate::ast::Span;
use crate::types::{BinOp, Expr, ExprKind, Rank, VarId};

/// Known constant values of number variables at a program point.
pub type Known = HashMap<VarId, u64>;

/// The value of a number expression, if it is a compile-time constant given
/// `known` (overflow counts as unknown: the run would stop there).
pub fn fold(e: &Expr, known: &Known) -> Option<u64> {
    match &e.kind {
        ExprKind::Const(Const::Num(n)) => Some(*n),
        ExprKind::Var(v) => known.get(v).copied(),
        ExprKind::Binary(op, a, b) => {
            let (a, b) = (fold(a, known)?, fold(b, known)?);
            match op {
                BinOp::Add => a.checked_add(b),
                BinOp::Sub => Some(a.saturating_sub(b)),
                BinOp::Mul => a.checked_mul(b),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Why no bound was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BoundError {
    /// No conjunct of the guard has the shape `v < E` and the like.
    NoGuard,
    /// The shape is right but the value at entry is not known.
    NotConstant {
        /// The expression whose value is unknown.
        span: Span,
        /// It reads a parameter (rebindable at install time).
        param: bool,
    },
    /// The entry value is too large.
    TooLarge(i128),
}

/// Whether `e` reads one of `vars`.
pub fn mentions(e: &Expr, vars: &HashSet<VarId>) -> bool {
    match &e.kind {
        ExprKind::Var(v) => vars.contains(v),
        ExprKind::Not(a) => mentions(a, vars),
        ExprKind::Binary(_, a, b) => mentions(a, vars) || mentions(b, vars),
        ExprKind::Call(_, args) => args.iter().any(|a| mentions(a, vars)),
        _ => false,
    }
}

fn reads_param(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Param(_) => true,
        ExprKind::Not(a) => reads_param(a),
        ExprKind::Binary(_, a, b) => reads_param(a) || reads_param(b),
        ExprKind::Call(_, args) => args.iter().any(reads_param),
        _ => false,
    }
}

fn conjuncts<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match &e.kind {
        ExprKind::Binary(BinOp::And, a, b) => {
            conjuncts(a, out);
            conjuncts(b, out);
        }
        _ => out.push(e),
    }
}

/// `v OP E` with `v` changed by the loop, `E` not: normalised so `v` is on the left.
fn shape<'e>(c: &'e Expr, changed: &HashSet<VarId>) -> Option<(VarId, CmpOp, &'e Expr)> {
    let ExprKind::Binary(BinOp::Cmp(op), a, b) = &c.kind else { return None };
    let flip = |op: CmpOp| match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        other => other,
    };
    if matches!(op, CmpOp::Eq | CmpOp::Ne) {
        return None;
    }
    match (&a.kind, &b.kind) {
        (ExprKind::Var(v), _) if changed.contains(v) && !mentions(b, changed) => Some((*v, *op, b)),
        (_, ExprKind::Var(v)) if changed.contains(v) && !mentions(a, changed) => Some((*v, flip(*op), a)),
        _ => None,
    }
}

/// Find the rank and bound of `while cond`, given the variables the loop
/// assigns and the constants known when it starts.
pub fn find(cond: &Expr, changed: &HashSet<VarId>, known: &Known) -> Result<(Rank, u32), BoundError> {
    let mut parts = vec![];
    conjuncts(cond, &mut parts);
    let mut first_error = None;
    for c in parts {
        let Some((v, op, limit)) = shape(c, changed) else { continue };
        match rank_of(v, op, limit, known) {
            Ok(r) => return Ok(r),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(BoundError::NoGuard))
}

fn rank_of(v: VarId, op: CmpOp, limit: &Expr, known: &Known) -> Result<(Rank, u32), BoundError> {
    let not_constant = |e: &Expr| BoundError::NotConstant { span: e.span, param: reads_param(e) };
    // The limit as a linear form: a variable, or a constant.
    let (limit_terms, limit_const): (Vec<(VarId, i64)>, i128) = match &limit.kind {
        ExprKind::Var(m) => (vec![(*m, 1)], 0),
        _ => {
            let c = fold(limit, &Known::new()).ok_or_else(|| not_constant(limit))?;
            (vec![], i128::from(c))
        }
    };
    let limit_value = i128::from(fold(limit, known).ok_or_else(|| not_constant(limit))?);
    let v_value = i128::from(known.get(&v).copied().ok_or(BoundError::NotConstant { span: limit.span, param: false })?);
    // rank = sign * (v - E) + extra
    let (sign, extra): (i64, i128) = match op {
        CmpOp::Lt => (-1, 0),
        CmpOp::Le => (-1, 1),
        CmpOp::Gt => (1, 0),
        CmpOp::Ge => (1, 1),
        CmpOp::Eq | CmpOp::Ne => return Err(BoundError::NoGuard),
    };
    let entry = i128::from(sign) * (v_value - limit_value) + extra;
    if entry > i128::from(MAX_LOOP_BOUND) {
        return Err(BoundError::TooLarge(entry));
    }
    let constant = -i128::from(sign) * limit_const + extra;
    let constant = i64::try_from(constant).map_err(|_| BoundError::TooLarge(entry))?;
    let mut terms = vec![(v, sign)];
    terms.extend(limit_terms.into_iter().map(|(m, c)| (m, -sign * c)));
    let bound = u32::try_from(entry.max(0)).map_err(|_| BoundError::TooLarge(entry))?;
    Ok((Rank { terms, constant }, bound))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Type;

    fn num(n: u64) -> Expr {
        Expr { kind: ExprKind::Const(Const::Num(n)), ty: Type::Num, span: Span::default() }
    }
    fn var(v: VarId) -> Expr {
        Expr { kind: ExprKind::Var(v), ty: Type::Num, span: Span::default() }
    }
    fn cmp(op: CmpOp, a: Expr, b: Expr) -> Expr {
        Expr { kind: ExprKind::Binary(BinOp::Cmp(op), Box::new(a), Box::new(b)), ty: Type::Bool, span: Span::default() }
    }

    #[test]
    fn counting_up_to_a_constant() {
        let changed = HashSet::from([0]);
        let known = Known::from([(0, 3)]);
        let (rank, bound) = find(&cmp(CmpOp::Lt, var(0), num(10)), &changed, &known).unwrap();
        assert_eq!(rank, Rank { terms: vec![(0, -1)], constant: 10 });
        assert_eq!(bound, 7);
        let (rank, bound) = find(&cmp(CmpOp::Ge, num(10), var(0)), &changed, &known).unwrap();
        assert_eq!(rank, Rank { terms: vec![(0, -1)], constant: 11 });
        assert_eq!(bound, 8);
    }

    #[test]
    fn counting_down_to_a_variable() {
        let changed = HashSet::from([0]);
        let known = Known::from([(0, 20), (1, 5)]);
        let (rank, bound) = find(&cmp(CmpOp::Gt, var(0), var(1)), &changed, &known).unwrap();
        assert_eq!(rank, Rank { terms: vec![(0, 1), (1, -1)], constant: 0 });
        assert_eq!(bound, 15);
    }

    #[test]
    fn refusals() {
        let changed = HashSet::from([0]);
        assert_eq!(find(&cmp(CmpOp::Ne, var(0), num(10)), &changed, &Known::new()), Err(BoundError::NoGuard));
        assert!(matches!(find(&cmp(CmpOp::Lt, var(0), num(10)), &changed, &Known::new()), Err(BoundError::NotConstant { .. })));
        let known = Known::from([(0, 0)]);
        assert!(matches!(find(&cmp(CmpOp::Lt, var(0), num(u64::MAX)), &changed, &known), Err(BoundError::TooLarge(_))));
        // Started past its limit: zero iterations.
        let known = Known::from([(0, 50)]);
        assert_eq!(find(&cmp(CmpOp::Lt, var(0), num(10)), &changed, &known).unwrap().1, 0);
    }
}
