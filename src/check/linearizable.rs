//! A linearizability checker for one object's concurrent history, generic over a sequential
//! [`Model`]. The `zk-linearizable-writes` check runs it once per znode; like every checker
//! it reads only what clients were told, never the ensemble's internals.
//!
//! Owns: the [`Model`] trait, the history record ([`Operation`]), the verdict ([`Outcome`],
//! [`Failure`]), the search ([`check`]) and a ready model of a ZooKeeper znode's data
//! ([`VersionedRegister`]).
//!
//! # Algorithm
//!
//! Wing & Gong's search with Lowe's memoization (the algorithm behind Knossos' `wgl` and
//! Porcupine). Every operation becomes a call entry at its invocation time and a return entry
//! at its completion time; the entries, sorted by time, form a doubly linked list. The calls
//! before the first return entry are the *candidates* to take effect next. When the model,
//! stepped from the current state, returns what a candidate's client was told, the candidate
//! is *lifted* (both of its entries unlinked) and pushed on a stack with the state before it,
//! and the search looks at the new candidates. When no candidate works, the op of the first
//! return entry can never take effect in time: the search pops the last op, relinks it and
//! tries the next candidate in its place. A cache of the configurations explored (set of
//! linearized ops, model state) prunes every configuration reached again by another order.
//!
//! Choices that keep the verdict conservative (never a false "not linearizable"):
//! - **Equal timestamps are concurrent.** At equal times, call entries sort before return
//!   entries, so an op called at the very microsecond another returned may take effect before
//!   it. Only `return_us < call_us` orders two ops.
//! - **An unknown outcome (`ret = None`) may or may not have taken effect**, at any time after
//!   its call, returning anything: its return entry sits at +infinity (as Knossos treats `:info`
//!   operations), even when the client learned "unknown" at a known time. The search may leave
//!   it out: it succeeds as soon as every op with a known outcome is linearized.
//!
//! # Unknown outcomes and the search order
//!
//! Unknown ops stay candidates forever, and a plain search drowns in them: after one wrong
//! guess it tries every subset of them before undoing it. So the search is organised around
//! them, without giving up exactness:
//! - At each configuration it tries known ops that leave the state unchanged first (reads,
//!   failed writes), then known ops that change it, and unknown ops last, the latest called
//!   first (one that took effect usually did so soon after its call). An unknown op that
//!   would leave the state unchanged is never tried: taking effect or not is then the same.
//! - The cache prunes a configuration when one with the same known ops and state and a
//!   *subset* of its unknown ops applied was explored: that one had every option this one has.
//! - First come *just-in-time* passes: an unknown op takes effect only as part of a short
//!   chain that lets a known op go next which the model refused before the chain (a write
//!   whose returned version says one more write happened first, a read of a value nobody
//!   known wrote). Chains start one long; when a pass stops making progress, chains may grow
//!   around the depth where it stalled, and a new pass starts. Each pass gives up after
//!   [`STALL_STEPS`] steps without progress; together they take at most half the budget.
//! - Then, if needed, the full search with the rest of the budget. A just-in-time pass that
//!   finds a linearization has found a real one, and one that ends without ever applying its
//!   restrictions is a proof of the opposite; otherwise only the full search decides.
//!
//! # Complexity and limits
//!
//! Exponential in the worst case (the problem is NP-complete). A linearizable history usually
//! costs `O(n · (c + u))` model steps, with `c` the ops open at once and `u` the unknown ops
//! called so far, plus `u²` per place where two unknown ops took effect back to back. Proving
//! a history *not* linearizable may take the full search, exponential in the unknown ops
//! open at the violation: with dozens of them expect [`Outcome::Inconclusive`]. `budget`
//! bounds the model steps tried (a few million take about a second); past it the verdict is
//! `Inconclusive`, never a guess. Memory: one cached configuration per linearized op tried,
//! about `(c + u) / 8` bytes plus the state. The checker knows nothing of independent keys:
//! the caller partitions a history per object and checks each part on its own, which keeps
//! `n`, `c` and `u` small.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, DefaultHasher};

/// A sequential specification.
pub trait Model: Clone + Eq + std::hash::Hash + std::fmt::Debug {
    /// An operation clients invoke.
    type Op: Clone + std::fmt::Debug;
    /// What an operation returns.
    type Ret: Clone + PartialEq + std::fmt::Debug;
    /// Apply `op` to this state: the next state and what the op returns.
    fn step(&self, op: &Self::Op) -> (Self, Self::Ret);
}

/// One operation of a concurrent history.
///
/// An op with `return_us = None` must have `ret = None`. An op with `ret = None` may still
/// have a `return_us` (the client learned "unknown" at that time); it is treated as completing
/// at +infinity anyway, since its effect can land any time after its call.
#[derive(Clone, Debug)]
pub struct Operation<M: Model> {
    /// Who invoked it (for reports).
    pub client: u64,
    /// Invocation time, microseconds.
    pub call_us: u64,
    /// Completion time, microseconds; `None` = it never completed (its client crashed, or
    /// the run ended).
    pub return_us: Option<u64>,
    /// What was invoked.
    pub op: M::Op,
    /// What the client was told; `None` = outcome unknown (connection loss, timeout): it may
    /// or may not have taken effect, and if it did, it may have returned anything.
    pub ret: Option<M::Ret>,
}

/// The verdict on a history.
#[derive(Clone, Debug)]
pub enum Outcome<M: Model> {
    /// A witness: indices into the history, in linearization order. Operations left out are
    /// unknown ones that never took effect.
    Linearizable {
        /// The linearization found.
        order: Vec<usize>,
    },
    /// No linearization exists.
    NotLinearizable(Failure<M>),
    /// The search budget ran out before a verdict.
    Inconclusive {
        /// Model steps tried.
        explored: u64,
    },
}

/// Why a history is not linearizable: where the deepest linearization attempt got stuck.
#[derive(Clone, Debug)]
pub struct Failure<M: Model> {
    /// The longest linearizable prefix the search found (indices, in order): the one that
    /// linearizes the most ops with a known outcome.
    pub longest_prefix: Vec<usize>,
    /// The ops with a known outcome that were candidates to take effect next but could not,
    /// in any of `states`. One of them (named in `explained`) had to take effect before it
    /// returned.
    pub stuck_at: Vec<usize>,
    /// The model states the search reached after linearizing the known ops of
    /// `longest_prefix`, in any order and with any unknown ops it tried (at most
    /// [`STATES_REPORTED`]).
    pub states: Vec<M>,
    /// A short human explanation: the stuck ops, their times, what they returned and what the
    /// model returns instead.
    pub explained: String,
}

/// The most model states a [`Failure`] reports.
pub const STATES_REPORTED: usize = 10;

/// A just-in-time pass that linearizes no more known ops in this many steps gives up: it is
/// backtracking out of a dead end, or its chains are too short.
pub const STALL_STEPS: u64 = 50_000;

/// Stuck operations a [`Failure`] explains in words; the rest are counted.
const OPS_EXPLAINED: usize = 5;

/// The longest chain of unknown ops a just-in-time pass tries.
const MAX_CHAIN: usize = 4;

/// When a just-in-time pass stalls at a depth (known ops linearized), chains may grow at the
/// configurations this many known ops shallower, too: the chain may have been needed before
/// a few reads that went first.
const ESCALATION_WINDOW: usize = 4;

/// The most just-in-time passes before the full search.
const MAX_JUST_IN_TIME_PASSES: usize = 24;

/// Checks that `history`, starting from `initial`, is linearizable, trying at most `budget`
/// model steps.
///
/// # Panics
/// On a malformed history (a caller bug): an op with a known outcome but no return time, or
/// one that returned before it was called.
pub fn check<M: Model>(initial: &M, history: &[Operation<M>], budget: u64) -> Outcome<M> {
    for (i, o) in history.iter().enumerate() {
        assert!(
            o.ret.is_none() || o.return_us.is_some(),
            "op #{i}: a known outcome needs a return time"
        );
        assert!(
            o.return_us.is_none_or(|r| r >= o.call_us),
            "op #{i}: returned before it was called"
        );
    }
    Search::new(initial, history).run(budget)
}

/// What a node of the entry list stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Call,
    Return,
}

/// End of the list.
const NIL: usize = usize::MAX;
/// The list's head sentinel.
const HEAD: usize = 0;

/// The doubly linked list of call and return entries, in time order. Node 0 is the head;
/// nodes `1..=2n` are entries.
struct Entries {
    op: Vec<usize>,
    kind: Vec<Kind>,
    /// For a call node, the node of its return.
    matching: Vec<usize>,
    /// For each op, the node of its call.
    call_node: Vec<usize>,
    prev: Vec<usize>,
    next: Vec<usize>,
}

impl Entries {
    fn new<M: Model>(history: &[Operation<M>]) -> Self {
        // Sort key: time, then calls before returns (equal timestamps are concurrent), then
        // the op index for a total, deterministic order. Unknown outcomes return at +infinity.
        let mut events: Vec<(u64, Kind, usize)> = Vec::with_capacity(2 * history.len());
        for (i, o) in history.iter().enumerate() {
            events.push((o.call_us, Kind::Call, i));
            events.push((return_us(o), Kind::Return, i));
        }
        events.sort_unstable();
        let len = events.len() + 1;
        let mut entries = Entries {
            op: vec![NIL; len],
            kind: vec![Kind::Call; len],
            matching: vec![NIL; len],
            call_node: vec![NIL; history.len()],
            prev: (0..len).map(|n| n.wrapping_sub(1)).collect(),
            next: (1..=len).map(|n| if n == len { NIL } else { n }).collect(),
        };
        for (position, &(_, kind, i)) in events.iter().enumerate() {
            let node = position + 1;
            entries.op[node] = i;
            entries.kind[node] = kind;
            match kind {
                Kind::Call => entries.call_node[i] = node,
                Kind::Return => entries.matching[entries.call_node[i]] = node,
            }
        }
        entries
    }

    /// Unlinks a call entry and its return.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.matching[call]);
    }

    /// Relinks what [`Entries::lift`] unlinked, in reverse order.
    fn unlift(&mut self, call: usize) {
        self.relink(self.matching[call]);
        self.relink(call);
    }

    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        if next != NIL {
            self.prev[next] = prev;
        }
    }

    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        if next != NIL {
            self.prev[next] = node;
        }
    }

    /// The ops of the call entries before the first return entry: the candidates to take
    /// effect next; and the op of that first return, which must take effect before it.
    fn candidates(&self) -> (Vec<usize>, Option<usize>) {
        let mut ops = Vec::new();
        let mut node = self.next[HEAD];
        while node != NIL {
            match self.kind[node] {
                Kind::Call => ops.push(self.op[node]),
                Kind::Return => return (ops, Some(self.op[node])),
            }
            node = self.next[node];
        }
        (ops, None)
    }
}

/// When an op's return entry sits: its return time if its outcome is known, else +infinity.
fn return_us<M: Model>(o: &Operation<M>) -> u64 {
    match o.ret {
        Some(_) => o
            .return_us
            .expect("checked: known outcomes have a return time"),
        None => u64::MAX,
    }
}

/// A fixed-size set of small integers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Bitset(Box<[u64]>);

impl Bitset {
    fn new(len: usize) -> Self {
        Bitset(vec![0; len.div_ceil(64)].into_boxed_slice())
    }

    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }

    fn is_subset(&self, other: &Bitset) -> bool {
        self.0.iter().zip(other.0.iter()).all(|(a, b)| a & !b == 0)
    }

    /// A compact, exact key for a set that is full up to a frontier and empty well after it,
    /// as the linearized known ops are when numbered in call order.
    fn frontier(&self) -> Frontier {
        let full = self.0.iter().take_while(|&&w| w == u64::MAX).count();
        let end = self.0.iter().rposition(|&w| w != 0).map_or(full, |p| p + 1);
        Frontier {
            full_words: full,
            rest: self.0[full..end.max(full)].into(),
        }
    }
}

/// A [`Bitset`] as its count of leading all-ones words and the words after them up to the
/// last non-zero one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Frontier {
    full_words: usize,
    rest: Box<[u64]>,
}

/// A fixed-key hasher: the cache is only probed, never iterated (each entry's list is, in
/// insertion order, for an `any`), so the verdict cannot depend on it, and a fixed key keeps
/// even the run time reproducible.
type FixedHasher = BuildHasherDefault<DefaultHasher>;

/// The deepest point of a pass, in known ops linearized, kept to explain a failure.
struct Deepest<M> {
    /// Known ops linearized.
    depth: usize,
    /// Steps explored when the pass got that deep.
    explored_at: u64,
    order: Vec<usize>,
    known: Bitset,
    states: Vec<M>,
    candidates: Vec<usize>,
    blocking: Option<usize>,
}

impl<M: Model> Deepest<M> {
    /// Nothing linearized yet.
    fn root(entries: &Entries, initial: &M, known_total: usize, explored: u64) -> Self {
        let (candidates, blocking) = entries.candidates();
        Deepest {
            depth: 0,
            explored_at: explored,
            order: Vec::new(),
            known: Bitset::new(known_total),
            states: vec![initial.clone()],
            candidates,
            blocking,
        }
    }
}

/// A configuration explored: the unknown ops applied with a set of known ops and a state, and
/// how many of them end the linearization in a row.
struct Seen {
    applied: Bitset,
    chain: usize,
}

/// One linearized op: its call node, the state and chain before it, and the walk that
/// linearized it (where to resume when it is undone).
struct Frame<M> {
    call: usize,
    state: M,
    chain: usize,
    walk: Walk,
}

/// Which candidates the search is walking through, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Walk {
    /// Known ops that leave the state unchanged (reads, failed writes), from the head to the
    /// first return entry: taking one of those first can hardly spoil another op.
    Unchanging,
    /// Known ops that change the state, from the head to the first return entry.
    Changing,
    /// Unknown ops called before the pivot ([`Search::pivot`]), from it back to the head:
    /// the latest called first, as one that took effect usually did soon after its call.
    UnknownBefore,
    /// Unknown ops called after the pivot, from it to the first return entry.
    UnknownAfter,
}

impl Walk {
    fn advance(self, entries: &Entries, node: usize) -> usize {
        match self {
            Walk::UnknownBefore => entries.prev[node],
            _ => entries.next[node],
        }
    }
}

/// How a pass searches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Unknown ops only in chains that serve a known op the model refused before them, no
    /// longer than the chain bound at the depth, and no more than [`STALL_STEPS`] steps
    /// without progress.
    JustInTime,
    /// Everything.
    Full,
}

/// What a just-in-time pass skipped.
#[derive(Clone, Copy, Debug, Default)]
struct Cuts {
    /// A longer chain of unknown ops.
    chain: bool,
    /// An unknown op that served no refused known op, or a known op after unknown ops it
    /// did not need.
    just_in_time: bool,
}

/// How one pass of the search ended.
enum Pass {
    Found(Vec<usize>),
    /// Every configuration within the pass's restrictions was explored.
    Exhausted(Cuts),
    OutOfBudget,
    /// A just-in-time pass went [`STALL_STEPS`] steps without linearizing more known ops.
    Stalled,
}

struct Search<'a, M: Model> {
    history: &'a [Operation<M>],
    entries: Entries,
    /// Each op's number among the ops with a known outcome (in call order), or among the
    /// unknown ones.
    slot: Vec<usize>,
    /// The state after the linearized ops.
    state: M,
    /// The linearized ops with a known outcome, by slot.
    known: Bitset,
    /// The linearized ops with an unknown outcome (those that took effect), by slot.
    applied: Bitset,
    /// Unknown ops at the end of the linearization, in a row.
    chain: usize,
    stack: Vec<Frame<M>>,
    /// For the configuration after each linearized op (and the first), the known ops the
    /// model refused there: those a chain of unknown ops may serve.
    needy: Vec<Vec<usize>>,
    /// The configurations explored this pass: for a set of known ops and a state, the sets
    /// of unknown ops applied that no other explored one dominates.
    cache: HashMap<(Frontier, M), Vec<Seen>, FixedHasher>,
    mode: Mode,
    /// For a just-in-time pass, the longest chain of unknown ops by depth.
    chain_bounds: Vec<usize>,
    /// What this pass skipped so far.
    cuts: Cuts,
    known_total: usize,
    unknown_total: usize,
    known_linearized: usize,
    explored: u64,
    deepest: Deepest<M>,
}

impl<'a, M: Model> Search<'a, M> {
    fn new(initial: &M, history: &'a [Operation<M>]) -> Self {
        let entries = Entries::new(history);
        let mut known: Vec<usize> = (0..history.len())
            .filter(|&i| history[i].ret.is_some())
            .collect();
        known.sort_by_key(|&i| (history[i].call_us, i));
        let mut slot = vec![0; history.len()];
        for (rank, &i) in known.iter().enumerate() {
            slot[i] = rank;
        }
        let mut unknown_total = 0;
        for (i, o) in history.iter().enumerate() {
            if o.ret.is_none() {
                slot[i] = unknown_total;
                unknown_total += 1;
            }
        }
        let known_total = known.len();
        Search {
            history,
            slot,
            state: initial.clone(),
            known: Bitset::new(known_total),
            applied: Bitset::new(unknown_total),
            chain: 0,
            stack: Vec::new(),
            needy: Vec::new(),
            cache: HashMap::default(),
            mode: Mode::Full,
            chain_bounds: vec![1; known_total + 1],
            cuts: Cuts::default(),
            known_total,
            unknown_total,
            known_linearized: 0,
            explored: 0,
            deepest: Deepest::root(&entries, initial, known_total, 0),
            entries,
        }
    }

    /// Just-in-time passes while they make progress, then the full search.
    fn run(mut self, budget: u64) -> Outcome<M> {
        if self.known_total == 0 {
            return Outcome::Linearizable { order: Vec::new() };
        }
        if self.unknown_total > 0 {
            let share = budget / 2;
            for _ in 0..MAX_JUST_IN_TIME_PASSES {
                let before = self.explored;
                let pass = self.pass(Mode::JustInTime, share);
                if std::env::var("LINDBG").is_ok() {
                    let d = &self.deepest;
                    eprintln!(
                        "DEBUG pass: explored {} deepest {} {} tail {:?}",
                        self.explored - before,
                        d.depth,
                        match &pass {
                            Pass::Found(_) => "found".to_string(),
                            Pass::OutOfBudget => "budget".into(),
                            Pass::Stalled => "stalled".into(),
                            Pass::Exhausted(c) => format!("{c:?}"),
                        },
                        &d.order[d.order.len().saturating_sub(12)..]
                    );
                    eprintln!(
                        "DEBUG   cands {:?} blocking {:?} states {:?}",
                        d.candidates, d.blocking, d.states
                    );
                }
                match pass {
                    Pass::Found(order) => return Outcome::Linearizable { order },
                    Pass::Exhausted(cuts) if !cuts.chain && !cuts.just_in_time => {
                        return Outcome::NotLinearizable(self.failure())
                    }
                    Pass::Exhausted(cuts) => {
                        self.reset();
                        if !cuts.chain || !self.escalate() {
                            break;
                        }
                    }
                    Pass::Stalled => {
                        self.reset();
                        if !self.escalate() {
                            break;
                        }
                    }
                    Pass::OutOfBudget => {
                        self.reset();
                        break;
                    }
                }
            }
        }
        match self.pass(Mode::Full, budget) {
            Pass::Found(order) => Outcome::Linearizable { order },
            Pass::Exhausted(_) => Outcome::NotLinearizable(self.failure()),
            Pass::OutOfBudget | Pass::Stalled => Outcome::Inconclusive {
                explored: self.explored,
            },
        }
    }

    /// Undoes a pass cut short.
    fn reset(&mut self) {
        while self.backtrack().is_some() {}
        self.cache.clear();
    }

    /// Lets chains of unknown ops grow around the depth where the last pass got stuck;
    /// false when they are as long as they may be.
    fn escalate(&mut self) -> bool {
        let depth = self.deepest.depth;
        let mut grown = false;
        for bound in &mut self.chain_bounds[depth.saturating_sub(ESCALATION_WINDOW)..=depth] {
            if *bound < MAX_CHAIN {
                *bound *= 2;
                grown = true;
            }
        }
        grown
    }

    /// The longest chain of unknown ops allowed at the current configuration.
    fn chain_bound(&self) -> usize {
        match self.mode {
            Mode::JustInTime => self.chain_bounds[self.known_linearized],
            Mode::Full => usize::MAX,
        }
    }

    /// One depth-first search in `mode`, until `budget` steps in all.
    fn pass(&mut self, mode: Mode, budget: u64) -> Pass {
        debug_assert!(self.stack.is_empty());
        self.mode = mode;
        self.cuts = Cuts::default();
        self.needy = vec![Vec::new()];
        // Only the last pass's deepest point explains a failure: the cache is per pass.
        self.deepest = Deepest::root(&self.entries, &self.state, self.known_total, self.explored);
        let mut walk = Walk::Unchanging;
        let mut node = self.entries.next[HEAD];
        loop {
            let walk_done = match walk {
                Walk::UnknownBefore => node == HEAD,
                _ => node == NIL || self.entries.kind[node] == Kind::Return,
            };
            if walk_done {
                match walk {
                    Walk::Unchanging => {
                        walk = Walk::Changing;
                        node = self.entries.next[HEAD];
                        continue;
                    }
                    Walk::Changing if self.chain < self.chain_bound() => {
                        if let Some(pivot) = self.pivot(node) {
                            walk = Walk::UnknownBefore;
                            node = self.entries.prev[pivot];
                            continue;
                        }
                    }
                    Walk::Changing => self.cuts.chain |= self.unknown_candidate_before(node),
                    Walk::UnknownBefore => {
                        let pivot = self
                            .pivot(self.first_return())
                            .expect("walking unknown ops");
                        if self.entries.kind[pivot] == Kind::Call {
                            walk = Walk::UnknownAfter;
                            node = self.entries.next[pivot];
                            continue;
                        }
                    }
                    Walk::UnknownAfter => {}
                }
                // The first return's op had to take effect before anything called later,
                // and no candidate worked.
                let Some((call, call_walk)) = self.backtrack() else {
                    return Pass::Exhausted(self.cuts);
                };
                walk = call_walk;
                node = walk.advance(&self.entries, call);
                continue;
            }
            let i = self.entries.op[node];
            let known = self.history[i].ret.is_some();
            let unknown_walk = matches!(walk, Walk::UnknownBefore | Walk::UnknownAfter);
            if known == unknown_walk || !self.may_follow_chain(i) {
                node = walk.advance(&self.entries, node);
                continue;
            }
            if self.explored >= budget {
                return Pass::OutOfBudget;
            }
            if mode == Mode::JustInTime && self.explored - self.deepest.explored_at >= STALL_STEPS {
                return Pass::Stalled;
            }
            self.explored += 1;
            if !self.try_linearize(node, walk) {
                node = walk.advance(&self.entries, node);
                continue;
            }
            if self.known_linearized == self.known_total {
                return Pass::Found(self.stack.iter().map(|f| self.entries.op[f.call]).collect());
            }
            self.observe_depth();
            walk = Walk::Unchanging;
            node = self.entries.next[HEAD];
        }
    }

    /// Where the walk through unknown ops starts, given the first return entry: the unknown
    /// ops called before it are tried first, the latest called first, then those called
    /// after it. In a just-in-time pass it is the call of the earliest called known op the
    /// chain may serve: an unknown op that took effect before a known op was most likely
    /// called before it. `None` when a just-in-time pass has no such op, so no chain.
    fn pivot(&mut self, first_return: usize) -> Option<usize> {
        if self.mode == Mode::Full {
            return Some(first_return);
        }
        let base = self.stack.len() - self.chain;
        let earliest = self.needy[base]
            .iter()
            .min_by_key(|&&k| (self.history[k].call_us, k));
        match earliest {
            Some(&k) => Some(self.entries.call_node[k]),
            None => {
                self.cuts.just_in_time |= self.unknown_candidate_before(first_return);
                None
            }
        }
    }

    /// The first return entry of the list.
    fn first_return(&self) -> usize {
        let mut node = self.entries.next[HEAD];
        while self.entries.kind[node] != Kind::Return {
            node = self.entries.next[node];
        }
        node
    }

    /// Whether an unknown op's call entry precedes `node`.
    fn unknown_candidate_before(&self, mut node: usize) -> bool {
        node = self.entries.prev[node];
        while node != HEAD {
            if self.history[self.entries.op[node]].ret.is_none() {
                return true;
            }
            node = self.entries.prev[node];
        }
        false
    }

    /// In a just-in-time pass, after a chain of unknown ops only a known op the model refused
    /// before the chain may go next.
    fn may_follow_chain(&mut self, i: usize) -> bool {
        if self.mode == Mode::Full || self.chain == 0 || self.history[i].ret.is_none() {
            return true;
        }
        let base = self.stack.len() - self.chain;
        let needed = self.needy[base].contains(&i);
        self.cuts.just_in_time |= !needed;
        needed
    }

    /// Linearizes the op of call entry `node` next if the model agrees with what its client
    /// was told, the op belongs to `walk`, and the resulting configuration is new.
    fn try_linearize(&mut self, node: usize, walk: Walk) -> bool {
        let i = self.entries.op[node];
        let operation = &self.history[i];
        let (next_state, ret) = self.state.step(&operation.op);
        let known = operation.ret.is_some();
        let agrees = match &operation.ret {
            Some(told) => *told == ret,
            None => next_state != self.state,
        };
        if !agrees {
            if walk == Walk::Unchanging && self.chain == 0 {
                self.needy
                    .last_mut()
                    .expect("one per configuration")
                    .push(i);
            }
            return false;
        }
        if known && (next_state == self.state) != (walk == Walk::Unchanging) {
            return false;
        }
        if !known && self.mode == Mode::JustInTime && self.chain + 1 == self.chain_bound() {
            // The last unknown op of a chain must let a refused known op go next.
            let base = self.stack.len() - self.chain;
            let serves = self.needy[base].iter().any(|&k| {
                let needed = &self.history[k];
                needed.ret.as_ref() == Some(&next_state.step(&needed.op).1)
            });
            if !serves {
                self.cuts.just_in_time = true;
                return false;
            }
        }
        let chain_before = self.chain;
        self.chain = if known { 0 } else { chain_before + 1 };
        self.mark(i, true);
        if !self.remember(&next_state) {
            self.mark(i, false);
            self.chain = chain_before;
            return false;
        }
        let before = std::mem::replace(&mut self.state, next_state);
        self.stack.push(Frame {
            call: node,
            state: before,
            chain: chain_before,
            walk,
        });
        self.needy.push(Vec::new());
        if known {
            self.known_linearized += 1;
        }
        self.entries.lift(node);
        true
    }

    /// Undoes the last linearized op; returns its call node and the walk that tried it, or
    /// `None` when none is left.
    fn backtrack(&mut self) -> Option<(usize, Walk)> {
        let frame = self.stack.pop()?;
        self.needy.pop();
        let i = self.entries.op[frame.call];
        self.entries.unlift(frame.call);
        self.mark(i, false);
        self.state = frame.state;
        self.chain = frame.chain;
        if self.history[i].ret.is_some() {
            self.known_linearized -= 1;
        }
        Some((frame.call, frame.walk))
    }

    /// Adds op `i` to the linearized ops, or removes it.
    fn mark(&mut self, i: usize, linearized: bool) {
        let set = match self.history[i].ret {
            Some(_) => &mut self.known,
            None => &mut self.applied,
        };
        if linearized {
            set.set(self.slot[i]);
        } else {
            set.clear(self.slot[i]);
        }
    }

    /// Records the configuration of the linearized ops and `state`; false when one at least
    /// as promising was explored already: the same known ops and state, a subset of these
    /// unknown ops applied and no longer a chain of them at the end. That one has every
    /// option this one has (an unknown op not applied can always stay out), so this one
    /// cannot succeed where it failed, and if it is still being explored, its search covers
    /// this one's.
    fn remember(&mut self, state: &M) -> bool {
        let (applied, chain) = (&self.applied, self.chain);
        let seen = self
            .cache
            .entry((self.known.frontier(), state.clone()))
            .or_default();
        if seen
            .iter()
            .any(|s| s.applied.is_subset(applied) && s.chain <= chain)
        {
            return false;
        }
        seen.retain(|s| !(applied.is_subset(&s.applied) && chain <= s.chain));
        seen.push(Seen {
            applied: applied.clone(),
            chain,
        });
        true
    }

    /// Records the current configuration if it is the deepest so far, or another state
    /// after the deepest set of known ops.
    fn observe_depth(&mut self) {
        let deepest = &mut self.deepest;
        if self.known_linearized > deepest.depth {
            deepest.depth = self.known_linearized;
            deepest.explored_at = self.explored;
            deepest.order = self.stack.iter().map(|f| self.entries.op[f.call]).collect();
            deepest.known = self.known.clone();
            deepest.states = vec![self.state.clone()];
            (deepest.candidates, deepest.blocking) = self.entries.candidates();
        } else if self.known_linearized == deepest.depth
            && deepest.states.len() < STATES_REPORTED
            && self.known == deepest.known
            && !deepest.states.contains(&self.state)
        {
            deepest.states.push(self.state.clone());
        }
    }

    /// The report of an exhausted search. At the deepest set of known ops, every candidate
    /// with a known outcome disagrees with the model in every state reached: one that agreed
    /// would have led deeper.
    fn failure(self) -> Failure<M> {
        let deepest = self.deepest;
        let stuck_at: Vec<usize> = deepest
            .candidates
            .into_iter()
            .filter(|&i| self.history[i].ret.is_some())
            .collect();
        let explained = explain(
            self.history,
            (deepest.depth, self.known_total),
            &stuck_at,
            deepest.blocking,
            &deepest.states,
        );
        Failure {
            longest_prefix: deepest.order,
            stuck_at,
            states: deepest.states,
            explained,
        }
    }
}

/// Words for a failure: how far the search got (known ops linearized, of all known ops),
/// which op had to take effect, and what each stuck op returned against what the model
/// returns.
fn explain<M: Model>(
    history: &[Operation<M>],
    (depth, known_total): (usize, usize),
    stuck_at: &[usize],
    blocking: Option<usize>,
    states: &[M],
) -> String {
    let mut text = format!(
        "at most {depth} of the {known_total} ops with a known outcome linearize; then none \
         of the {} candidates can take effect",
        stuck_at.len()
    );
    if let Some(b) = blocking {
        let return_us = history[b].return_us.expect("a blocking op returned");
        text.push_str(&format!(
            ", yet op #{b} must take effect before it returned at {return_us} µs"
        ));
    }
    for &i in stuck_at.iter().take(OPS_EXPLAINED) {
        let o = &history[i];
        let told = o.ret.as_ref().expect("stuck ops have a known outcome");
        let mut allowed: Vec<String> = Vec::new();
        for state in states {
            let entry = format!("{:?} from {state:?}", state.step(&o.op).1);
            if !allowed.contains(&entry) {
                allowed.push(entry);
            }
        }
        text.push_str(&format!(
            "\n  op #{i} (client {}, {:?}, called at {} µs, returned at {} µs) returned \
             {told:?}; the model returns {}",
            o.client,
            o.op,
            o.call_us,
            o.return_us.expect("known outcomes have a return time"),
            allowed.join(" or ")
        ));
    }
    if stuck_at.len() > OPS_EXPLAINED {
        text.push_str(&format!("\n  and {} more", stuck_at.len() - OPS_EXPLAINED));
    }
    text
}

/// A versioned register with compare-and-set, as a ZooKeeper znode's data under `setData`
/// with an expected version.
///
/// `value = None` is a missing znode. There is no delete, so a znode is missing only before
/// its create; its `version` is then whatever the initial state says ([`Self::missing`]: 0),
/// and a read of it returns that version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VersionedRegister {
    /// The znode's data; `None` = the znode does not exist.
    pub value: Option<i64>,
    /// The data version (`Stat.version`).
    pub version: i32,
}

impl VersionedRegister {
    /// A znode not created yet.
    pub fn missing() -> Self {
        VersionedRegister {
            value: None,
            version: 0,
        }
    }
}

/// An operation on a [`VersionedRegister`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterOp {
    /// `create` with this data.
    Create(i64),
    /// `setData`, conditional on the version unless `expected_version` is -1.
    Set {
        /// The new data.
        value: i64,
        /// The version the znode must have; -1 = any.
        expected_version: i32,
    },
    /// `getData`.
    Read,
}

/// What a [`RegisterOp`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterRet {
    /// The create succeeded.
    Ok,
    /// The create found the znode existing.
    NodeExists,
    /// The setData found no znode.
    NoNode,
    /// The setData's expected version did not match.
    BadVersion,
    /// The setData succeeded: the new version.
    Version(i32),
    /// A read: the data and its version.
    Value(Option<i64>, i32),
}

impl Model for VersionedRegister {
    type Op = RegisterOp;
    type Ret = RegisterRet;

    fn step(&self, op: &RegisterOp) -> (Self, RegisterRet) {
        match *op {
            RegisterOp::Create(value) => match self.value {
                Some(_) => (self.clone(), RegisterRet::NodeExists),
                None => (
                    VersionedRegister {
                        value: Some(value),
                        version: 0,
                    },
                    RegisterRet::Ok,
                ),
            },
            RegisterOp::Set {
                value,
                expected_version,
            } => {
                if self.value.is_none() {
                    (self.clone(), RegisterRet::NoNode)
                } else if expected_version != -1 && expected_version != self.version {
                    (self.clone(), RegisterRet::BadVersion)
                } else {
                    let version = self.version + 1;
                    let next = VersionedRegister {
                        value: Some(value),
                        version,
                    };
                    (next, RegisterRet::Version(version))
                }
            }
            RegisterOp::Read => (self.clone(), RegisterRet::Value(self.value, self.version)),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Hand-made histories that read like the definition (Herlihy & Wing): every op takes
    //! effect at one instant between its call and its return, and an op called after another
    //! returned takes effect after it.
    use super::*;
    use RegisterOp::{Create, Read};
    use RegisterRet::{BadVersion, NoNode, Value, Version};

    const BUDGET: u64 = 1_000_000;

    fn op(
        client: u64,
        call_us: u64,
        return_us: u64,
        op: RegisterOp,
        ret: RegisterRet,
    ) -> Operation<VersionedRegister> {
        Operation {
            client,
            call_us,
            return_us: Some(return_us),
            op,
            ret: Some(ret),
        }
    }

    /// An op whose outcome the client never learned; `return_us` is when it learned that.
    fn unknown(
        client: u64,
        call_us: u64,
        return_us: Option<u64>,
        op: RegisterOp,
    ) -> Operation<VersionedRegister> {
        Operation {
            client,
            call_us,
            return_us,
            op,
            ret: None,
        }
    }

    fn set(value: i64, expected_version: i32) -> RegisterOp {
        RegisterOp::Set {
            value,
            expected_version,
        }
    }

    fn read(value: i64, version: i32) -> RegisterRet {
        Value(Some(value), version)
    }

    fn verdict(history: &[Operation<VersionedRegister>]) -> Outcome<VersionedRegister> {
        check(&VersionedRegister::missing(), history, BUDGET)
    }

    fn order(history: &[Operation<VersionedRegister>]) -> Vec<usize> {
        match verdict(history) {
            Outcome::Linearizable { order } => order,
            other => panic!("expected linearizable, got {other:?}"),
        }
    }

    fn failure(history: &[Operation<VersionedRegister>]) -> Failure<VersionedRegister> {
        match verdict(history) {
            Outcome::NotLinearizable(failure) => failure,
            other => panic!("expected not linearizable, got {other:?}"),
        }
    }

    #[test]
    fn an_empty_history_is_linearizable() {
        assert_eq!(order(&[]), Vec::<usize>::new());
    }

    #[test]
    fn a_sequential_history_is_linearizable_in_its_order() {
        let history = [
            op(1, 0, 10, Create(1), RegisterRet::Ok),
            op(2, 20, 30, Read, read(1, 0)),
            op(1, 40, 50, set(2, 0), Version(1)),
            op(2, 60, 70, set(3, 0), BadVersion),
            op(3, 80, 90, Read, read(2, 1)),
            op(3, 100, 110, Create(9), RegisterRet::NodeExists),
        ];
        assert_eq!(order(&history), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn overlapping_writes_may_take_effect_in_either_order() {
        // Two blind sets overlap; a read after both sees either one, with version 2.
        for (last, first) in [(10, 20), (20, 10)] {
            let history = [
                op(1, 0, 5, Create(0), RegisterRet::Ok),
                op(
                    1,
                    10,
                    50,
                    set(10, -1),
                    Version(if last == 10 { 2 } else { 1 }),
                ),
                op(
                    2,
                    20,
                    60,
                    set(20, -1),
                    Version(if last == 20 { 2 } else { 1 }),
                ),
                op(3, 70, 80, Read, read(last, 2)),
            ];
            let order = order(&history);
            let expected = if first == 10 {
                [0, 1, 2, 3]
            } else {
                [0, 2, 1, 3]
            };
            assert_eq!(order, expected, "the set of {last} takes effect last");
        }
    }

    #[test]
    fn reads_overlapping_a_write_may_see_before_or_after() {
        let history = [
            op(1, 0, 5, Create(0), RegisterRet::Ok),
            op(1, 10, 100, set(1, 0), Version(1)),
            op(2, 20, 30, Read, read(1, 1)),
            // Called before that read returned, this one may still see the old value.
            op(3, 15, 90, Read, read(0, 0)),
        ];
        assert!(matches!(verdict(&history), Outcome::Linearizable { .. }));
    }

    #[test]
    fn a_read_after_a_completed_write_must_not_see_the_older_value() {
        // The classic stale read: the set returned at 20, a read called at 30 sees version 0.
        let history = [
            op(1, 0, 5, Create(0), RegisterRet::Ok),
            op(1, 10, 20, set(1, -1), Version(1)),
            op(2, 30, 40, Read, read(0, 0)),
        ];
        let failure = failure(&history);
        assert_eq!(failure.longest_prefix, vec![0, 1]);
        assert_eq!(failure.stuck_at, vec![2]);
        assert_eq!(
            failure.states,
            vec![VersionedRegister {
                value: Some(1),
                version: 1
            }]
        );
        let text = &failure.explained;
        assert!(text.contains("op #2 must take effect before it returned at 40 µs"));
        assert!(text.contains("called at 30 µs"), "{text}");
        assert!(text.contains("returned Value(Some(0), 0)"), "{text}");
        assert!(
            text.contains("the model returns Value(Some(1), 1)"),
            "{text}"
        );
    }

    #[test]
    fn a_bad_version_when_only_that_version_existed_is_not_linearizable() {
        let history = [
            op(1, 0, 10, Create(1), RegisterRet::Ok),
            op(2, 20, 30, set(2, 0), BadVersion),
        ];
        let failure = failure(&history);
        assert_eq!(failure.stuck_at, vec![1]);
        assert!(failure
            .explained
            .contains("returned BadVersion; the model returns Version(1)"));
    }

    #[test]
    fn the_lost_update_is_not_linearizable() {
        // Two concurrent compare-and-sets on version 0 both succeed.
        let history = [
            op(1, 0, 10, Create(0), RegisterRet::Ok),
            op(1, 20, 40, set(1, 0), Version(1)),
            op(2, 25, 45, set(2, 0), Version(1)),
        ];
        let failure = failure(&history);
        assert_eq!(failure.longest_prefix.len(), 2);
        assert!(
            failure.explained.contains("BadVersion"),
            "{}",
            failure.explained
        );
    }

    #[test]
    fn an_unknown_write_that_is_read_later_took_effect() {
        let history = [
            op(1, 0, 10, Create(0), RegisterRet::Ok),
            unknown(1, 20, Some(30), set(7, 0)),
            op(2, 40, 50, Read, read(7, 1)),
        ];
        assert_eq!(order(&history), vec![0, 1, 2]);
    }

    #[test]
    fn an_unknown_write_never_seen_never_happened() {
        let history = [
            op(1, 0, 10, Create(0), RegisterRet::Ok),
            unknown(1, 20, Some(30), set(7, -1)),
            op(2, 40, 50, Read, read(0, 0)),
            op(2, 60, 70, set(8, 0), Version(1)),
            op(3, 80, 90, Read, read(8, 1)),
            unknown(3, 100, None, set(9, -1)),
        ];
        assert_eq!(order(&history), vec![0, 2, 3, 4]);
    }

    #[test]
    fn an_unknown_write_may_take_effect_long_after_its_client_gave_up() {
        // The client was told "connection loss" at 30; the write lands after the set at 1000.
        let history = [
            op(1, 0, 10, Create(0), RegisterRet::Ok),
            unknown(1, 20, Some(30), set(7, -1)),
            op(2, 500, 510, Read, read(0, 0)),
            op(2, 1_000, 1_010, set(8, -1), Version(1)),
            op(3, 5_000, 5_010, Read, read(7, 2)),
        ];
        assert_eq!(order(&history), vec![0, 2, 3, 1, 4]);
    }

    #[test]
    fn a_read_of_a_value_nobody_wrote_is_not_linearizable() {
        let history = [
            op(1, 0, 10, Create(0), RegisterRet::Ok),
            unknown(1, 20, None, set(7, -1)),
            op(2, 30, 40, Read, read(5, 1)),
        ];
        let failure = failure(&history);
        assert_eq!(failure.stuck_at, vec![2]);
        // Whether the unknown set took effect or not, the read cannot follow.
        assert_eq!(failure.longest_prefix, vec![0]);
        let without = VersionedRegister {
            value: Some(0),
            version: 0,
        };
        let with = VersionedRegister {
            value: Some(7),
            version: 1,
        };
        assert_eq!(failure.states, vec![without, with]);
        assert!(failure.explained.contains("returned Value(Some(5), 1)"));
    }

    #[test]
    fn a_set_on_a_missing_znode_returns_no_node() {
        let history = [
            op(1, 0, 10, set(1, -1), NoNode),
            op(1, 20, 30, Read, Value(None, 0)),
        ];
        assert_eq!(order(&history), vec![0, 1]);
        let wrong = [
            op(1, 0, 10, Create(1), RegisterRet::Ok),
            op(1, 20, 30, set(1, -1), NoNode),
        ];
        failure(&wrong);
    }

    #[test]
    fn equal_timestamps_are_concurrent() {
        // The set returned at 20 and the read was called at 20: the read may precede it.
        let history = [
            op(1, 0, 5, Create(0), RegisterRet::Ok),
            op(1, 10, 20, set(1, 0), Version(1)),
            op(2, 20, 30, Read, read(0, 0)),
        ];
        assert_eq!(order(&history), vec![0, 2, 1]);
        // One microsecond later it may not.
        let mut later = history.clone();
        later[2].call_us = 21;
        failure(&later);
    }

    /// Ten blind sets, all concurrent and all with unknown outcomes, then a read of a value
    /// none of them wrote: proving it wrong means trying many orders.
    fn hard_history() -> Vec<Operation<VersionedRegister>> {
        let mut history = vec![op(0, 0, 5, Create(0), RegisterRet::Ok)];
        for client in 1..=10u64 {
            history.push(unknown(client, 10, None, set(client as i64, -1)));
        }
        history.push(op(11, 20, 30, Read, read(99, 3)));
        history
    }

    #[test]
    fn a_small_budget_is_inconclusive_never_wrong() {
        let history = hard_history();
        let small = check(&VersionedRegister::missing(), &history, 50);
        assert!(
            matches!(small, Outcome::Inconclusive { explored: 50 }),
            "{small:?}"
        );
        assert!(matches!(verdict(&history), Outcome::NotLinearizable(_)));
        // A linearizable history under the same tiny budget is never called wrong.
        let mut fine = history;
        fine.last_mut().unwrap().ret = Some(read(4, 3));
        for budget in [0, 1, 5, 50, 500] {
            let outcome = check(&VersionedRegister::missing(), &fine, budget);
            assert!(
                !matches!(outcome, Outcome::NotLinearizable(_)),
                "{outcome:?}"
            );
        }
        assert!(matches!(verdict(&fine), Outcome::Linearizable { .. }));
    }

    #[test]
    #[should_panic(expected = "a known outcome needs a return time")]
    fn a_known_outcome_without_a_return_is_a_caller_bug() {
        let mut history = vec![op(1, 0, 10, Create(0), RegisterRet::Ok)];
        history[0].return_us = None;
        verdict(&history);
    }
}
