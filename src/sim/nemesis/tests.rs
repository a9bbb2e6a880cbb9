//! The nemesis's rules, checked against a toy world that applies its steps.

use super::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeMap;

/// What the toy world did to each node, and the network.
#[derive(Default)]
struct Toy {
    names: Vec<(String, Role)>,
    down: BTreeSet<String>,
    paused: BTreeSet<String>,
    clogged: BTreeSet<String>,
    partition: Option<Vec<Vec<String>>>,
    loss: Option<f64>,
}

impl Toy {
    fn new(zk: usize, brokers: usize, clients: usize) -> Self {
        let mut names = Vec::new();
        names.extend((1..=zk).map(|i| (format!("zk-{i}"), Role::Zk)));
        names.extend((1..=brokers).map(|i| (format!("broker-{i}"), Role::Broker)));
        names.extend((1..=clients).map(|i| (format!("producer-{i}"), Role::Client)));
        Toy {
            names,
            ..Toy::default()
        }
    }

    fn view(&self) -> Vec<NodeView> {
        self.names
            .iter()
            .map(|(name, role)| NodeView {
                name: name.clone(),
                role: *role,
                healthy: !self.down.contains(name)
                    && !self.paused.contains(name)
                    && !self.clogged.contains(name),
            })
            .collect()
    }

    fn apply(&mut self, step: &Step) {
        match step {
            Step::Kill(n) | Step::Pause(n) | Step::Clog(n) => {
                assert!(self.view().iter().any(|v| v.name == *n && v.healthy), "{n}");
                match step {
                    Step::Kill(_) => self.down.insert(n.clone()),
                    Step::Pause(_) => self.paused.insert(n.clone()),
                    _ => self.clogged.insert(n.clone()),
                };
            }
            Step::PowerLoss(ns) => {
                assert!(!ns.is_empty());
                self.down.extend(ns.iter().cloned());
            }
            Step::Partition(sides) => {
                assert!(self.partition.is_none(), "one partition at a time");
                self.partition = Some(sides.clone());
            }
            Step::Loss(rate) => {
                assert!(self.loss.is_none() && (0.05..=0.3).contains(rate));
                self.loss = Some(*rate);
            }
            Step::Restart(ns) => {
                for n in ns {
                    assert!(self.down.remove(n), "restart of {n}, which is up");
                }
            }
            Step::Resume(n) => assert!(self.paused.remove(n)),
            Step::Unclog(n) => assert!(self.clogged.remove(n)),
            Step::HealPartition => assert!(self.partition.take().is_some()),
            Step::EndLoss => assert!(self.loss.take().is_some()),
            Step::Idle => {}
        }
    }

    /// The largest group of healthy ensemble servers that can all talk to each other.
    fn zk_quorum_group(&self) -> usize {
        let view = self.view();
        let live: Vec<&String> = view
            .iter()
            .filter(|v| v.role == Role::Zk && v.healthy)
            .map(|v| &v.name)
            .collect();
        let Some(sides) = &self.partition else {
            return live.len();
        };
        let side_of = |n: &String| sides.iter().position(|s| s.contains(n));
        (0..sides.len())
            .map(|side| {
                live.iter()
                    .filter(|n| side_of(n).is_none_or(|s| s == side))
                    .count()
            })
            .max()
            .unwrap_or(live.len())
    }

    fn healthy_brokers(&self) -> usize {
        self.view()
            .iter()
            .filter(|v| v.role == Role::Broker && v.healthy)
            .count()
    }

    fn quiet(&self) -> bool {
        self.down.is_empty()
            && self.paused.is_empty()
            && self.clogged.is_empty()
            && self.partition.is_none()
            && self.loss.is_none()
    }
}

fn config(actions: &[FaultAction], every: (u64, u64)) -> NemesisConfig {
    NemesisConfig {
        actions: actions.to_vec(),
        every: (Duration::from_secs(every.0), Duration::from_secs(every.1)),
    }
}

const ALL: [FaultAction; 6] = [
    FaultAction::Kill,
    FaultAction::PowerLoss,
    FaultAction::Pause,
    FaultAction::Partition,
    FaultAction::Clog,
    FaultAction::Loss,
];

/// Runs the nemesis for `length` on `toy`, then lets every fault end; returns the steps.
fn run(
    toy: &mut Toy,
    config: &NemesisConfig,
    seed: u64,
    length: Duration,
) -> Vec<(Duration, Step)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut nemesis = Nemesis::new(config, &mut rng);
    let zk = toy.names.iter().filter(|(_, r)| *r == Role::Zk).count();
    let brokers = toy.names.iter().filter(|(_, r)| *r == Role::Broker).count();
    let mut all = Vec::new();
    while nemesis.next_due() < length {
        let now = nemesis.next_due();
        for step in nemesis.steps(now, &toy.view(), &mut rng) {
            toy.apply(&step);
            if zk > 0 {
                assert!(
                    toy.zk_quorum_group() > zk / 2,
                    "seed {seed}: ensemble lost its majority at {now:?} after {step:?}"
                );
            }
            if brokers > 0 {
                assert!(
                    toy.healthy_brokers() >= 1,
                    "seed {seed}: no broker healthy at {now:?}"
                );
            }
            all.push((now, step));
        }
    }
    // No new faults from here: drain the ones in force.
    nemesis.next_fault = Duration::MAX;
    while nemesis.next_due() < Duration::MAX {
        let now = nemesis.next_due();
        for step in nemesis.steps(now, &toy.view(), &mut rng) {
            toy.apply(&step);
            all.push((now, step));
        }
    }
    all
}

#[test]
fn keeps_a_majority_of_the_ensemble_and_a_broker_and_undoes_every_fault() {
    let config = config(&ALL, (1, 4));
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut correlated = 0;
    for seed in 0..200 {
        let mut toy = Toy::new(3, 3, 2);
        let steps = run(&mut toy, &config, seed, Duration::from_secs(120));
        assert!(toy.quiet(), "seed {seed}: faults left in force");
        for (_, step) in &steps {
            *seen.entry(step.action()).or_default() += 1;
            if matches!(step, Step::PowerLoss(ns) if ns.len() > 1) {
                correlated += 1;
            }
        }
    }
    for action in [
        "kill",
        "power-loss",
        "pause",
        "partition",
        "clog",
        "loss",
        "restart",
        "resume",
        "unclog",
        "heal",
    ] {
        assert!(
            seen.get(action).copied().unwrap_or(0) > 0,
            "{action} never happened: {seen:?}"
        );
    }
    assert!(correlated > 0, "no correlated power loss");
}

#[test]
fn five_servers_tolerate_two_impaired() {
    let config = config(&[FaultAction::Kill], (1, 10));
    let mut most_down = 0;
    for seed in 0..50 {
        let mut toy = Toy::new(5, 0, 0);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut nemesis = Nemesis::new(&config, &mut rng);
        while nemesis.next_due() < Duration::from_secs(60) {
            let now = nemesis.next_due();
            for step in nemesis.steps(now, &toy.view(), &mut rng) {
                toy.apply(&step);
                most_down = most_down.max(toy.down.len());
                assert!(toy.down.len() <= 2, "seed {seed}: {:?}", toy.down);
            }
        }
    }
    assert_eq!(
        most_down, 2,
        "overlapping kills never reached the minority bound"
    );
}

#[test]
fn sits_out_when_nothing_fits() {
    // One broker and nothing else: killing it would leave no broker healthy.
    let config = config(&[FaultAction::Kill, FaultAction::Pause], (1, 2));
    let mut toy = Toy::new(0, 1, 1);
    let steps = run(&mut toy, &config, 7, Duration::from_secs(20));
    assert!(!steps.is_empty());
    assert!(steps.iter().all(|(_, s)| *s == Step::Idle), "{steps:?}");
}

#[test]
fn writers_are_targets_only_without_servers() {
    let config = config(&[FaultAction::Kill], (1, 2));
    let mut toy = Toy::new(0, 0, 0);
    toy.names.push(("writer-1".into(), Role::Writer));
    let steps = run(&mut toy, &config, 3, Duration::from_secs(10));
    assert!(
        steps.contains(&(steps[0].0, Step::Kill("writer-1".into()))),
        "{steps:?}"
    );

    let mut toy = Toy::new(3, 0, 0);
    toy.names.push(("writer-1".into(), Role::Writer));
    let steps = run(&mut toy, &config, 3, Duration::from_secs(30));
    assert!(steps
        .iter()
        .all(|(_, s)| !matches!(s, Step::Kill(n) if n == "writer-1")));
}

#[test]
fn clients_keep_every_link_in_halves_and_bridges_and_stay_with_the_rest_when_one_is_isolated() {
    let config = config(&[FaultAction::Partition], (1, 3));
    let mut shapes = BTreeSet::new();
    for seed in 0..40 {
        let mut toy = Toy::new(3, 3, 1);
        for (_, step) in run(&mut toy, &config, seed, Duration::from_secs(30)) {
            let Step::Partition(sides) = step else {
                continue;
            };
            assert_eq!(sides.len(), 2);
            let listed: usize = sides.iter().map(Vec::len).sum();
            let client_listed = sides.iter().flatten().any(|n| n == "producer-1");
            let shape = match (listed, sides[0].len()) {
                (7, 1) => "isolate",
                (6, _) => "halves",
                (5, _) => "bridge",
                other => panic!("unexpected sides {sides:?} ({other:?})"),
            };
            assert_eq!(client_listed, shape == "isolate", "{sides:?}");
            shapes.insert(shape);
        }
    }
    assert_eq!(shapes.len(), 3, "{shapes:?}");
}

#[test]
fn same_seed_same_schedule() {
    let config = config(&ALL, (1, 5));
    let a = run(&mut Toy::new(3, 4, 2), &config, 11, Duration::from_secs(60));
    let b = run(&mut Toy::new(3, 4, 2), &config, 11, Duration::from_secs(60));
    let c = run(&mut Toy::new(3, 4, 2), &config, 12, Duration::from_secs(60));
    assert_eq!(a, b);
    assert_ne!(a, c);
}
