//! Leader election, after ZooKeeper's fast leader election (FLE).
//!
//! Owns: one election round of a LOOKING server — its vote, the votes it has received, and
//! when to decide. A server starts with a vote for itself and adopts any better vote it
//! hears (better = higher (epoch, last zxid, id): the newest history wins). It decides once a
//! quorum agrees with its vote and no better vote arrived within a short finalize wait; or,
//! joining an ensemble that already elected, once a quorum of servers outside the election
//! report the same leader and that leader itself reports LEADING. Either way it takes the
//! vote it decided for as its own: that is what it reports, following, to later lookers —
//! with the epoch it then serves in (the server sets it once the new epoch is established,
//! ZOOKEEPER-1817), so every member of an ensemble reports one leader in one epoch.
//!
//! Pure: time is an argument; messages come out as return values. Losing messages is fine:
//! notifications are re-broadcast with backoff until the election ends.
//!
//! Simplifications vs ZooKeeper: no observers or weighted quorums; a LEADING/FOLLOWING
//! notification from the current round counts toward the quorum like a LOOKING one.

use super::proto::{PeerMessage, PeerState, Vote};
use super::types::ServerId;
use std::collections::BTreeMap;

/// How long a quorum for our vote must stand before we decide (ZooKeeper's finalizeWait).
pub const FINALIZE_WAIT_MS: u64 = 200;
/// First re-broadcast interval; doubles up to [`MAX_NOTIFICATION_INTERVAL_MS`].
pub const NOTIFICATION_INTERVAL_MS: u64 = 200;
/// Longest re-broadcast interval.
pub const MAX_NOTIFICATION_INTERVAL_MS: u64 = 1600;

/// The outcome of an election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// This server leads.
    Lead,
    /// This server follows that one.
    Follow(ServerId),
}

/// One LOOKING server's election.
#[derive(Clone, Debug)]
pub struct Election {
    me: ServerId,
    servers: Vec<ServerId>,
    quorum: usize,
    round: u64,
    initial: Vote,
    vote: Vote,
    /// Votes of this round, by sender (including our own).
    received: BTreeMap<ServerId, Vote>,
    /// What servers outside the election (following or leading) report.
    outside: BTreeMap<ServerId, (Vote, PeerState)>,
    decide_at_ms: Option<u64>,
    next_broadcast_ms: u64,
    interval_ms: u64,
}

/// Messages to send: `(to, message)`.
pub type Outbox = Vec<(ServerId, PeerMessage)>;

impl Election {
    /// Starts round `round` voting for ourselves; returns the first broadcast.
    pub fn start(
        me: ServerId,
        servers: &[ServerId],
        round: u64,
        initial: Vote,
        now_ms: u64,
    ) -> (Election, Outbox) {
        assert_eq!(initial.leader, me, "a server first votes for itself");
        let mut election = Election {
            me,
            servers: servers.to_vec(),
            quorum: servers.len() / 2 + 1,
            round,
            initial,
            vote: initial,
            received: BTreeMap::from([(me, initial)]),
            outside: BTreeMap::new(),
            decide_at_ms: None,
            next_broadcast_ms: now_ms + NOTIFICATION_INTERVAL_MS,
            interval_ms: NOTIFICATION_INTERVAL_MS,
        };
        let outbox = election.broadcast();
        let decision = election.check_quorum(now_ms);
        debug_assert!(decision.is_none());
        (election, outbox)
    }

    /// The current round.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// Our current vote.
    pub fn vote(&self) -> Vote {
        self.vote
    }

    fn notification(&self) -> PeerMessage {
        PeerMessage::Notification {
            round: self.round,
            vote: self.vote,
            state: PeerState::Looking,
        }
    }

    fn broadcast(&self) -> Outbox {
        self.servers
            .iter()
            .filter(|&&s| s != self.me)
            .map(|&s| (s, self.notification()))
            .collect()
    }

    /// A notification from `from`.
    pub fn on_notification(
        &mut self,
        from: ServerId,
        round: u64,
        vote: Vote,
        state: PeerState,
        now_ms: u64,
    ) -> (Outbox, Option<Decision>) {
        let mut outbox = Vec::new();
        if from == self.me || !self.servers.contains(&from) {
            return (outbox, None);
        }
        match state {
            PeerState::Looking => {
                match next_vote(self.round, self.vote, self.initial, round, vote) {
                    NextVote::NewRound(ours) => {
                        // A newer round: start over in it, from our own vote or theirs.
                        self.round = round;
                        self.received.clear();
                        self.vote = ours;
                        self.received.insert(self.me, self.vote);
                        self.decide_at_ms = None;
                        outbox = self.broadcast();
                    }
                    NextVote::Stale => {
                        // An older round: tell the sender where we are.
                        outbox.push((from, self.notification()));
                        return (outbox, None);
                    }
                    NextVote::Adopt => {
                        self.vote = vote;
                        self.received.insert(self.me, vote);
                        self.decide_at_ms = None;
                        outbox = self.broadcast();
                    }
                    NextVote::Keep => {}
                }
                self.received.insert(from, vote);
                (outbox, self.check_quorum(now_ms))
            }
            PeerState::Following | PeerState::Leading => {
                self.outside.insert(from, (vote, state));
                if round == self.round {
                    self.received.insert(from, vote);
                    if self.count(&self.received, &vote) >= self.quorum
                        && self.leader_confirmed(&vote)
                    {
                        return (outbox, Some(self.adopt(vote)));
                    }
                }
                // Joining an ensemble that already decided: a quorum outside the election
                // names the same leader, and that leader says it leads.
                if self.count_outside(&vote) >= self.quorum && self.leader_confirmed(&vote) {
                    self.round = round;
                    return (outbox, Some(self.adopt(vote)));
                }
                (outbox, None)
            }
        }
    }

    /// Re-broadcasts with backoff, and decides once the finalize wait has passed.
    pub fn tick(&mut self, now_ms: u64) -> (Outbox, Option<Decision>) {
        let mut outbox = Vec::new();
        if now_ms >= self.next_broadcast_ms {
            outbox = self.broadcast();
            self.interval_ms = (self.interval_ms * 2).min(MAX_NOTIFICATION_INTERVAL_MS);
            self.next_broadcast_ms = now_ms + self.interval_ms;
        }
        if let Some(at) = self.decide_at_ms {
            if now_ms >= at && self.count(&self.received, &self.vote) >= self.quorum {
                return (outbox, Some(self.decision(self.vote)));
            }
        }
        (outbox, None)
    }

    fn check_quorum(&mut self, now_ms: u64) -> Option<Decision> {
        if self.count(&self.received, &self.vote) >= self.quorum {
            self.decide_at_ms.get_or_insert(now_ms + FINALIZE_WAIT_MS);
        } else {
            self.decide_at_ms = None;
        }
        None
    }

    fn count(&self, votes: &BTreeMap<ServerId, Vote>, vote: &Vote) -> usize {
        votes.values().filter(|v| agree(v, vote)).count()
    }

    fn count_outside(&self, vote: &Vote) -> usize {
        self.outside
            .values()
            .filter(|(v, _)| agree(v, vote))
            .count()
    }

    /// The proposed leader is ourselves, or reports LEADING itself.
    fn leader_confirmed(&self, vote: &Vote) -> bool {
        vote.leader == self.me
            || self
                .outside
                .get(&vote.leader)
                .is_some_and(|(_, state)| *state == PeerState::Leading)
    }

    /// Decides for the ensemble's vote, making it ours (ZooKeeper's `endVote` becomes the
    /// peer's current vote): following, we report the vote we follow, so a later LOOKING
    /// server counts us toward that leader. Were we to report our own stale vote, servers
    /// that joined late would not count, and a server looking after them could wait forever
    /// for a quorum outside the election.
    fn adopt(&mut self, vote: Vote) -> Decision {
        self.vote = vote;
        self.decision(vote)
    }

    fn decision(&self, vote: Vote) -> Decision {
        if vote.leader == self.me {
            Decision::Lead
        } else {
            Decision::Follow(vote.leader)
        }
    }
}

/// What a LOOKING server does with a LOOKING notification's vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextVote {
    /// From an older round: it does not count; the sender hears our round and vote.
    Stale,
    /// From a newer round: start over in it with this vote, the better of the sender's and
    /// our initial vote for ourselves (a vote adopted in the older round is forgotten).
    NewRound(Vote),
    /// From our round, and better than our vote ([`Vote::beats`]): adopt it, rebroadcast.
    Adopt,
    /// From our round, and not better: keep our vote.
    Keep,
}

/// The vote order of fast leader election: how a LOOKING server in `round`, voting `ours`
/// (having started from `initial`), takes `theirs` sent in `their_round`. Votes compare by
/// (epoch, last zxid, server id), newest history first ([`Vote::beats`]).
///
/// Cases: `src/zk/testdata/vote_order.txt`.
pub fn next_vote(
    round: u64,
    ours: Vote,
    initial: Vote,
    their_round: u64,
    theirs: Vote,
) -> NextVote {
    if their_round > round {
        NextVote::NewRound(if theirs.beats(&initial) {
            theirs
        } else {
            initial
        })
    } else if their_round < round {
        NextVote::Stale
    } else if theirs.beats(&ours) {
        NextVote::Adopt
    } else {
        NextVote::Keep
    }
}

/// Whether two votes count toward the same quorum: they name the same leader in the same
/// epoch (the zxid is not compared).
///
/// Cases: `src/zk/testdata/vote_order.txt`.
pub fn agree(a: &Vote, b: &Vote) -> bool {
    a.leader == b.leader && a.epoch == b.epoch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zk::types::{Epoch, Zxid};

    fn ids(n: u64) -> Vec<ServerId> {
        (1..=n).map(ServerId).collect()
    }

    fn vote(leader: u64, zxid: u64, epoch: u32) -> Vote {
        Vote {
            leader: ServerId(leader),
            zxid: Zxid(zxid),
            epoch: Epoch(epoch),
        }
    }

    /// `(epoch, E:C, id)` → a vote for `id` with last zxid `E:C`.
    fn table_vote(parts: &[String]) -> Option<Vote> {
        let [epoch, zxid, id] = parts else {
            return None;
        };
        let (e, c) = zxid.split_once(':')?;
        Some(Vote {
            leader: ServerId(id.parse().ok()?),
            zxid: Zxid::new(Epoch(e.parse().ok()?), c.parse().ok()?),
            epoch: Epoch(epoch.parse().ok()?),
        })
    }

    /// The vote order ([`Vote::beats`], [`next_vote`], [`agree`]) as a table.
    #[test]
    fn vote_order_rules() {
        crate::testdata::run_file("src/zk/testdata/vote_order.txt", |case| {
            let vote = |key: &str| -> Vote {
                table_vote(&case.list::<String>(key))
                    .unwrap_or_else(|| case.fail(format!("`{key}=` is (epoch,E:C,id)")))
            };
            let show = |v: Vote| {
                let (e, c) = (v.zxid.epoch().0, v.zxid.counter());
                format!("vote=({},{e}:{c},{})", v.epoch.0, v.leader.0)
            };
            match case.command.as_str() {
                "compare" => {
                    let (a, b) = (vote("a"), vote("b"));
                    assert!(
                        !(a.beats(&b) && b.beats(&a)),
                        "{}:{}",
                        case.source,
                        case.line
                    );
                    let winner = if a.beats(&b) {
                        "a wins"
                    } else if b.beats(&a) {
                        "b wins"
                    } else {
                        "same vote"
                    };
                    winner.into()
                }
                "agree" => {
                    let (a, b) = (vote("a"), vote("b"));
                    assert_eq!(agree(&a, &b), agree(&b, &a));
                    if agree(&a, &b) { "agree" } else { "apart" }.into()
                }
                "notification" => {
                    let ours = vote("ours");
                    let initial = case.values("initial").map_or(ours, |_| vote("initial"));
                    let theirs = vote("theirs");
                    let round = case.value("round");
                    match next_vote(round, ours, initial, case.value("their-round"), theirs) {
                        NextVote::Stale => format!("stale {}", show(ours)),
                        NextVote::NewRound(vote) => format!("new-round {}", show(vote)),
                        NextVote::Adopt => format!("adopt {}", show(theirs)),
                        NextVote::Keep => format!("keep {}", show(ours)),
                    }
                }
                other => case.fail(format!("unknown command {other}")),
            }
        });
    }

    #[test]
    fn a_server_adopts_a_better_vote_and_rebroadcasts() {
        let (mut e, out) = Election::start(ServerId(1), &ids(3), 1, vote(1, 10, 1), 0);
        assert_eq!(out.len(), 2, "first broadcast to both peers");
        let (out, decided) =
            e.on_notification(ServerId(2), 1, vote(2, 20, 1), PeerState::Looking, 5);
        assert_eq!(e.vote().leader, ServerId(2));
        assert_eq!(out.len(), 2);
        assert_eq!(
            decided, None,
            "a quorum must stand for the finalize wait first"
        );
        // Server 1 and 2 agree on 2: quorum of 3. Decide after the finalize wait.
        assert_eq!(e.tick(5 + FINALIZE_WAIT_MS - 1).1, None);
        assert_eq!(
            e.tick(5 + FINALIZE_WAIT_MS).1,
            Some(Decision::Follow(ServerId(2)))
        );
    }

    #[test]
    fn a_worse_vote_does_not_change_ours_and_a_quorum_for_ourselves_means_lead() {
        let (mut e, _) = Election::start(ServerId(3), &ids(3), 1, vote(3, 10, 1), 0);
        let (out, _) = e.on_notification(ServerId(1), 1, vote(1, 9, 1), PeerState::Looking, 1);
        assert!(out.is_empty(), "nothing new to say");
        assert_eq!(e.vote().leader, ServerId(3));
        let (_, _) = e.on_notification(ServerId(1), 1, vote(3, 10, 1), PeerState::Looking, 2);
        assert_eq!(e.tick(2 + FINALIZE_WAIT_MS).1, Some(Decision::Lead));
    }

    #[test]
    fn a_better_vote_during_the_finalize_wait_restarts_it() {
        let (mut e, _) = Election::start(ServerId(1), &ids(5), 1, vote(1, 10, 1), 0);
        e.on_notification(ServerId(2), 1, vote(1, 10, 1), PeerState::Looking, 1);
        e.on_notification(ServerId(3), 1, vote(1, 10, 1), PeerState::Looking, 1);
        e.on_notification(ServerId(4), 1, vote(4, 11, 1), PeerState::Looking, 50);
        assert_eq!(e.vote().leader, ServerId(4));
        assert_eq!(e.tick(1 + FINALIZE_WAIT_MS).1, None, "no quorum for 4 yet");
    }

    #[test]
    fn a_newer_round_resets_the_votes() {
        let (mut e, _) = Election::start(ServerId(1), &ids(3), 1, vote(1, 10, 1), 0);
        e.on_notification(ServerId(2), 1, vote(1, 10, 1), PeerState::Looking, 1);
        let (out, _) = e.on_notification(ServerId(3), 7, vote(3, 5, 1), PeerState::Looking, 2);
        assert_eq!(e.round(), 7);
        assert_eq!(
            e.vote().leader,
            ServerId(1),
            "our own vote is better than 3's"
        );
        assert_eq!(out.len(), 2);
        // 2's vote was for round 1: it no longer counts.
        assert_eq!(e.tick(2 + FINALIZE_WAIT_MS).1, None);
    }

    #[test]
    fn an_older_round_gets_our_notification_back() {
        let (mut e, _) = Election::start(ServerId(1), &ids(3), 4, vote(1, 10, 1), 0);
        let (out, decided) =
            e.on_notification(ServerId(2), 2, vote(2, 99, 9), PeerState::Looking, 1);
        assert_eq!(
            out,
            vec![(
                ServerId(2),
                PeerMessage::Notification {
                    round: 4,
                    vote: vote(1, 10, 1),
                    state: PeerState::Looking
                }
            )]
        );
        assert_eq!(decided, None);
        assert_eq!(e.vote().leader, ServerId(1));
    }

    #[test]
    fn a_rejoining_server_follows_the_established_leader() {
        // Servers 2 (leading) and 3 (following 2) already elected in round 5.
        let (mut e, _) = Election::start(ServerId(1), &ids(3), 1, vote(1, 50, 2), 0);
        let (_, decided) =
            e.on_notification(ServerId(3), 5, vote(2, 40, 2), PeerState::Following, 1);
        assert_eq!(decided, None, "the leader has not confirmed it leads");
        let (_, decided) = e.on_notification(ServerId(2), 5, vote(2, 40, 2), PeerState::Leading, 2);
        assert_eq!(decided, Some(Decision::Follow(ServerId(2))));
        assert_eq!(
            (e.vote(), e.round()),
            (vote(2, 40, 2), 5),
            "it follows with the ensemble's vote, the one it reports to later lookers"
        );
    }

    #[test]
    fn a_looking_server_joins_an_ensemble_whose_followers_all_joined_late() {
        // 3 leads 5 servers; 2 and 4 followed it from its own round, 1 and 5 joined later
        // through the outside path. Now 4 looks: the leader and three followers must count.
        let mut joined = Vec::new();
        for late in [1, 5] {
            let (mut e, _) = Election::start(ServerId(late), &ids(5), 2, vote(late, 7, 1), 0);
            for (from, state) in [
                (2, PeerState::Following),
                (4, PeerState::Following),
                (3, PeerState::Leading),
            ] {
                e.on_notification(ServerId(from), 3, vote(3, 9, 1), state, 1);
            }
            joined.push((late, e.vote(), e.round()));
        }
        let (mut e, _) = Election::start(ServerId(4), &ids(5), 4, vote(4, 9, 2), 0);
        let mut decided = None;
        for (from, reported, round) in joined {
            decided = e
                .on_notification(ServerId(from), round, reported, PeerState::Following, 2)
                .1;
        }
        assert_eq!(decided, None, "the leader has not confirmed it leads");
        let (_, decided) = e.on_notification(ServerId(3), 3, vote(3, 9, 1), PeerState::Leading, 3);
        assert_eq!(decided, Some(Decision::Follow(ServerId(3))));
    }

    #[test]
    fn notifications_are_rebroadcast_with_backoff() {
        let (mut e, _) = Election::start(ServerId(1), &ids(3), 1, vote(1, 1, 1), 0);
        assert!(e.tick(NOTIFICATION_INTERVAL_MS - 1).0.is_empty());
        assert_eq!(e.tick(NOTIFICATION_INTERVAL_MS).0.len(), 2);
        let next = NOTIFICATION_INTERVAL_MS + 2 * NOTIFICATION_INTERVAL_MS;
        assert!(e.tick(next - 1).0.is_empty());
        assert_eq!(e.tick(next).0.len(), 2);
    }

    #[test]
    fn a_lone_server_of_one_leads() {
        let (mut e, out) = Election::start(ServerId(1), &ids(1), 1, vote(1, 0, 0), 0);
        assert!(out.is_empty());
        assert_eq!(e.tick(FINALIZE_WAIT_MS).1, Some(Decision::Lead));
    }
}
