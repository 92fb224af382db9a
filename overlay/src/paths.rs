//! Node-disjoint paths between two access points.
//!
//! Birman's fault-tolerant ON sends each packet down "multiple disjoint
//! paths", so that no single router or link failure can cut it. This
//! module finds up to k paths between two routers that share no router
//! other than their ends, of least total weight among all such sets.
//!
//! **Algorithm.** Suurballe's idea in the generality of Bhandari's: a
//! min-cost flow computed by successive shortest paths, each found by
//! Bellman-Ford in the residual graph (whose reversed arcs have negative
//! weights; Bellman-Ford takes them as they are, where Suurballe's
//! original re-weights to run Dijkstra). **Node splitting** makes the paths
//! node-disjoint: each router v other than the ends becomes v_in -> v_out
//! with capacity 1, and each link {a, b} becomes arcs a_out -> b_in and
//! b_out -> a_in of capacity 1. After j augmentations the flow is a
//! least-cost set of j node-disjoint paths; decomposing it from the source
//! gives them (any zero-weight cycle the flow may hold is disjoint from
//! the paths, since its routers have no capacity left, and is dropped).
//!
//! The graph is undirected, with at most one link per pair of routers (a
//! second `add_link` keeps the lighter weight): node-disjoint paths are then
//! also link-disjoint. Cost O(k V E) with V and E the router and link counts,
//! fine for a manager planning ONs over a network of hundreds of routers.

use thiserror::Error;

/// An undirected graph of routers `0..n` and weighted links.
#[derive(Clone, Debug)]
pub struct Graph {
    adj: Vec<Vec<(usize, u64)>>,
}

/// A path: its routers from source to target, and its total weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    /// The routers, source first, target last.
    pub nodes: Vec<usize>,
    /// The sum of its links' weights.
    pub cost: u64,
}

/// Why paths cannot be asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum PathsError {
    /// A router outside `0..n`.
    #[error("router {node} outside a graph of {n}")]
    NoSuchNode {
        /// The router.
        node: usize,
        /// The graph's size.
        n: usize,
    },
    /// A link from a router to itself, or paths from a router to itself.
    #[error("router {0} on both ends")]
    SameEnds(usize),
}

impl Graph {
    /// `n` routers, no links.
    pub fn new(n: usize) -> Graph {
        Graph { adj: vec![Vec::new(); n] }
    }

    /// The number of routers.
    pub fn len(&self) -> usize {
        self.adj.len()
    }

    /// Whether there is no router.
    pub fn is_empty(&self) -> bool {
        self.adj.is_empty()
    }

    fn node(&self, v: usize) -> Result<(), PathsError> {
        if v < self.len() {
            Ok(())
        } else {
            Err(PathsError::NoSuchNode { node: v, n: self.len() })
        }
    }

    /// Links `a` and `b` with weight `w` (the lighter, if already linked).
    pub fn add_link(&mut self, a: usize, b: usize, w: u64) -> Result<(), PathsError> {
        self.node(a)?;
        self.node(b)?;
        if a == b {
            return Err(PathsError::SameEnds(a));
        }
        for (x, y) in [(a, b), (b, a)] {
            match self.adj[x].iter_mut().find(|(n, _)| *n == y) {
                Some(e) => e.1 = e.1.min(w),
                None => self.adj[x].push((y, w)),
            }
        }
        Ok(())
    }

    /// The weight of the link between `a` and `b`.
    pub fn link(&self, a: usize, b: usize) -> Option<u64> {
        self.adj.get(a)?.iter().find(|(n, _)| *n == b).map(|(_, w)| *w)
    }

    /// The routers linked to `a`, with the links' weights.
    pub fn neighbours(&self, a: usize) -> &[(usize, u64)] {
        self.adj.get(a).map_or(&[], |v| v.as_slice())
    }
}

#[derive(Clone, Copy, Debug)]
struct Arc {
    to: usize,
    cap: u8,
    cost: i128,
}

/// The split graph's arcs, each followed by its reverse (index ^ 1).
struct Flow {
    arcs: Vec<Arc>,
    out: Vec<Vec<usize>>,
}

impl Flow {
    fn add(&mut self, from: usize, to: usize, cost: u64) {
        let cost = i128::from(cost);
        self.out[from].push(self.arcs.len());
        self.arcs.push(Arc { to, cap: 1, cost });
        self.out[to].push(self.arcs.len());
        self.arcs.push(Arc { to: from, cap: 0, cost: -cost });
    }

    /// A least-cost path from `s` to `t` over arcs with capacity left, as arc indices.
    fn shortest(&self, s: usize, t: usize) -> Option<Vec<usize>> {
        let n = self.out.len();
        let mut dist: Vec<Option<i128>> = vec![None; n];
        let mut via: Vec<Option<usize>> = vec![None; n];
        dist[s] = Some(0);
        // Bellman-Ford: the residual graph of a min-cost flow has no negative cycle.
        for _ in 0..n {
            let mut changed = false;
            for u in 0..n {
                let Some(du) = dist[u] else { continue };
                for &a in &self.out[u] {
                    let arc = self.arcs[a];
                    if arc.cap == 0 {
                        continue;
                    }
                    let d = du + arc.cost;
                    if dist[arc.to].is_none_or(|old| d < old) {
                        dist[arc.to] = Some(d);
                        via[arc.to] = Some(a);
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        dist[t]?;
        let mut path = Vec::new();
        let mut v = t;
        while v != s {
            let a = via[v].expect("reached nodes have a predecessor arc");
            path.push(a);
            v = self.arcs[a ^ 1].to;
        }
        path.reverse();
        Some(path)
    }
}

/// Up to `k` paths from `s` to `t` that share no router but `s` and `t`,
/// of least total weight among all sets of that many; fewer if the graph
/// has fewer (none if `t` is unreachable). Sorted by cost, then routers.
pub fn node_disjoint(g: &Graph, s: usize, t: usize, k: usize) -> Result<Vec<Path>, PathsError> {
    g.node(s)?;
    g.node(t)?;
    if s == t {
        return Err(PathsError::SameEnds(s));
    }
    let (vin, vout) = (|v: usize| 2 * v, |v: usize| 2 * v + 1);
    let mut f = Flow { arcs: Vec::new(), out: vec![Vec::new(); 2 * g.len()] };
    for v in 0..g.len() {
        if v != s && v != t {
            f.add(vin(v), vout(v), 0);
        }
    }
    for a in 0..g.len() {
        for &(b, w) in g.neighbours(a) {
            // Nothing enters the source or leaves the target.
            if b != s && a != t {
                f.add(vout(a), vin(b), w);
            }
        }
    }
    let (src, dst) = (vout(s), vin(t));
    for _ in 0..k {
        let Some(path) = f.shortest(src, dst) else { break };
        for a in path {
            f.arcs[a].cap -= 1;
            f.arcs[a ^ 1].cap += 1;
        }
    }
    // Decompose: a forward arc (even index) carries flow when its capacity is spent.
    let carries = |a: usize| a & 1 == 0 && f.arcs[a].cap == 0;
    let mut paths = Vec::new();
    for &first in f.out[src].iter().filter(|&&a| carries(a)) {
        let mut nodes = vec![s];
        let mut cost = 0u64;
        let mut a = first;
        loop {
            let v = f.arcs[a].to / 2; // the router whose `_in` the link arc enters
            cost += u64::try_from(f.arcs[a].cost).expect("link arcs have their weight");
            nodes.push(v);
            if v == t {
                break;
            }
            // Through v's internal arc, then on along the one link arc carrying its flow.
            let out = vout(v);
            a = *f.out[out].iter().find(|&&x| carries(x)).expect("flow is conserved through a split router");
        }
        paths.push(Path { nodes, cost });
    }
    paths.sort_by(|x, y| (x.cost, &x.nodes).cmp(&(y.cost, &y.nodes)));
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Two routes around a ring, and a shortcut that the shortest path takes
    /// but a disjoint pair must not: the classic trap for "shortest path,
    /// then the shortest path avoiding it".
    #[test]
    fn the_trap_graph() {
        // s=0, t=5. Shortest: 0-1-4-5 (3). Disjoint pair: 0-1-2-5 and 0-3-4-5.
        let mut g = Graph::new(6);
        for (a, b, w) in [(0, 1, 1), (1, 4, 1), (4, 5, 1), (1, 2, 2), (2, 5, 2), (0, 3, 2), (3, 4, 2)] {
            g.add_link(a, b, w).unwrap();
        }
        let one = node_disjoint(&g, 0, 5, 1).unwrap();
        assert_eq!(one, vec![Path { nodes: vec![0, 1, 4, 5], cost: 3 }]);
        let two = node_disjoint(&g, 0, 5, 2).unwrap();
        assert_eq!(two, vec![Path { nodes: vec![0, 1, 2, 5], cost: 5 }, Path { nodes: vec![0, 3, 4, 5], cost: 5 }]);
        // Only two exist.
        assert_eq!(node_disjoint(&g, 0, 5, 3).unwrap().len(), 2);
    }

    /// Link-disjoint is not enough: two paths through one router are refused.
    #[test]
    fn a_shared_router_is_a_single_point_of_failure() {
        // 0-1-2-3 and 0-4-2-5-3: both through router 2.
        let mut g = Graph::new(6);
        for (a, b) in [(0, 1), (1, 2), (2, 3), (0, 4), (4, 2), (2, 5), (5, 3)] {
            g.add_link(a, b, 1).unwrap();
        }
        assert_eq!(node_disjoint(&g, 0, 3, 2).unwrap().len(), 1);
    }

    #[test]
    fn direct_links_unreachable_targets_and_bad_arguments() {
        let mut g = Graph::new(4);
        g.add_link(0, 1, 9).unwrap();
        g.add_link(0, 1, 4).unwrap();
        assert_eq!(g.link(1, 0), Some(4));
        g.add_link(0, 2, 1).unwrap();
        g.add_link(2, 1, 1).unwrap();
        let p = node_disjoint(&g, 0, 1, 5).unwrap();
        assert_eq!(p, vec![Path { nodes: vec![0, 2, 1], cost: 2 }, Path { nodes: vec![0, 1], cost: 4 }]);
        assert_eq!(node_disjoint(&g, 0, 3, 2).unwrap(), vec![]);
        assert_eq!(node_disjoint(&g, 0, 0, 2), Err(PathsError::SameEnds(0)));
        assert_eq!(node_disjoint(&g, 0, 4, 2), Err(PathsError::NoSuchNode { node: 4, n: 4 }));
        assert_eq!(g.add_link(2, 2, 1), Err(PathsError::SameEnds(2)));
        assert_eq!(node_disjoint(&g, 0, 1, 0).unwrap(), vec![]);
    }

    #[test]
    fn weights_near_u64_max_do_not_overflow_the_search() {
        let mut g = Graph::new(4);
        for (a, b) in [(0, 1), (1, 3), (0, 2), (2, 3)] {
            g.add_link(a, b, u64::MAX / 4).unwrap();
        }
        let p = node_disjoint(&g, 0, 3, 2).unwrap();
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|p| p.cost == u64::MAX / 4 * 2));
    }

    /// Every simple path from `s` to `t`, with its cost.
    fn all_paths(g: &Graph, s: usize, t: usize) -> Vec<(Vec<usize>, u64)> {
        fn go(g: &Graph, v: usize, t: usize, path: &mut Vec<usize>, cost: u64, out: &mut Vec<(Vec<usize>, u64)>) {
            if v == t {
                out.push((path.clone(), cost));
                return;
            }
            for &(n, w) in g.neighbours(v) {
                if !path.contains(&n) {
                    path.push(n);
                    go(g, n, t, path, cost + w, out);
                    path.pop();
                }
            }
        }
        let mut out = Vec::new();
        go(g, s, t, &mut vec![s], 0, &mut out);
        out
    }

    /// The best (count, cost) over sets of at most `k` internally disjoint paths.
    fn brute_force(paths: &[(Vec<usize>, u64)], k: usize) -> (usize, u64) {
        fn go(paths: &[(Vec<usize>, u64)], from: usize, k: usize, used: &mut Vec<usize>, count: usize, cost: u64, best: &mut (usize, u64)) {
            if count > best.0 || (count == best.0 && cost < best.1) {
                *best = (count, cost);
            }
            if count == k {
                return;
            }
            for i in from..paths.len() {
                let (p, c) = &paths[i];
                let inner = &p[1..p.len() - 1];
                // Two direct links cannot both be used: there is one link per pair.
                let direct_taken = inner.is_empty() && used.contains(&usize::MAX);
                if direct_taken || inner.iter().any(|v| used.contains(v)) {
                    continue;
                }
                let mark = if inner.is_empty() { vec![usize::MAX] } else { inner.to_vec() };
                used.extend(&mark);
                go(paths, i + 1, k, used, count + 1, cost + c, best);
                used.truncate(used.len() - mark.len());
            }
        }
        let mut best = (0, 0);
        go(paths, 0, k, &mut Vec::new(), 0, 0, &mut best);
        best
    }

    proptest! {
        #[test]
        fn matches_brute_force_on_small_graphs(
            n in 2usize..7,
            links in proptest::collection::vec((0usize..7, 0usize..7, 0u64..10), 0..16),
            k in 1usize..4,
        ) {
            let mut g = Graph::new(n);
            for (a, b, w) in links {
                if a < n && b < n && a != b {
                    g.add_link(a, b, w).unwrap();
                }
            }
            let (s, t) = (0, n - 1);
            let got = node_disjoint(&g, s, t, k).unwrap();
            // Each is a path of the graph with its stated cost, and they are disjoint.
            let mut seen = std::collections::HashSet::new();
            for p in &got {
                prop_assert_eq!(p.nodes.first(), Some(&s));
                prop_assert_eq!(p.nodes.last(), Some(&t));
                let cost: u64 = p.nodes.windows(2).map(|w| g.link(w[0], w[1]).expect("a link")).sum();
                prop_assert_eq!(cost, p.cost);
                for v in &p.nodes[1..p.nodes.len() - 1] {
                    prop_assert!(seen.insert(*v), "router {} on two paths", v);
                }
            }
            let direct = got.iter().filter(|p| p.nodes.len() == 2).count();
            prop_assert!(direct <= 1);
            let best = brute_force(&all_paths(&g, s, t), k);
            prop_assert_eq!((got.len(), got.iter().map(|p| p.cost).sum::<u64>()), best);
        }
    }
}
