//! Delta debugging: Zeller and Hildebrandt's ddmin ("Simplifying and Isolating
//! Failure-Inducing Input", 2002) over a list, with a test that may stop the search.
//!
//! Owns: which subsets to try, in a fixed order (the halves, then finer chunks and their
//! complements), so the same test gives the same result. With no stop, the result is
//! 1-minimal: it fails, and removing any one of its items passes.

/// What a test of a subset said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The subset still fails: keep it.
    Fails,
    /// It passes (or is not a valid input).
    Passes,
    /// No more tests: keep what has been found so far.
    Stop,
}

/// The smallest failing subset of `items` (order kept) that ddmin finds; `items` is assumed
/// to fail. The empty list is tried first.
pub fn ddmin<T: Clone>(items: &[T], mut test: impl FnMut(&[T]) -> Outcome) -> Vec<T> {
    let mut current = items.to_vec();
    if current.is_empty() {
        return current;
    }
    match test(&[]) {
        Outcome::Fails => return Vec::new(),
        Outcome::Stop => return current,
        Outcome::Passes => {}
    }
    let mut n = 2;
    while current.len() >= 2 {
        let chunks = split(&current, n);
        let mut smaller = None;
        'search: {
            for chunk in &chunks {
                match test(chunk) {
                    Outcome::Fails => {
                        smaller = Some((chunk.clone(), 2));
                        break 'search;
                    }
                    Outcome::Stop => return current,
                    Outcome::Passes => {}
                }
            }
            // With two chunks, each complement is the other chunk: tried already.
            if chunks.len() > 2 {
                for skip in 0..chunks.len() {
                    let complement: Vec<T> = chunks
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i != skip)
                        .flat_map(|(_, chunk)| chunk.iter().cloned())
                        .collect();
                    match test(&complement) {
                        Outcome::Fails => {
                            smaller = Some((complement, (n - 1).max(2)));
                            break 'search;
                        }
                        Outcome::Stop => return current,
                        Outcome::Passes => {}
                    }
                }
            }
        }
        match smaller {
            Some((subset, granularity)) => {
                current = subset;
                n = granularity.min(current.len()).max(2);
            }
            None if n >= current.len() => break,
            None => n = (n * 2).min(current.len()),
        }
    }
    current
}

/// `items` in `n` consecutive chunks, as even as can be (the first ones one longer).
fn split<T: Clone>(items: &[T], n: usize) -> Vec<Vec<T>> {
    let n = n.clamp(1, items.len().max(1));
    let (base, extra) = (items.len() / n, items.len() % n);
    let mut chunks = Vec::with_capacity(n);
    let mut start = 0;
    for i in 0..n {
        let len = base + usize::from(i < extra);
        chunks.push(items[start..start + len].to_vec());
        start += len;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fails_with(needed: &[u32]) -> impl Fn(&[u32]) -> Outcome + '_ {
        move |subset| {
            if needed.iter().all(|n| subset.contains(n)) {
                Outcome::Fails
            } else {
                Outcome::Passes
            }
        }
    }

    #[test]
    fn ddmin_finds_the_two_items_a_failure_needs() {
        let items: Vec<u32> = (0..20).collect();
        let mut tests = 0;
        let test = fails_with(&[3, 17]);
        let found = ddmin(&items, |s| {
            tests += 1;
            test(s)
        });
        assert_eq!(found, vec![3, 17]);
        assert!(tests < 60, "{tests} tests");
    }

    #[test]
    fn the_result_is_one_minimal_and_keeps_the_order() {
        let items: Vec<u32> = vec![9, 4, 7, 1, 8, 2, 6];
        let found = ddmin(&items, fails_with(&[8, 4, 6]));
        assert_eq!(found, vec![4, 8, 6]);
    }

    #[test]
    fn a_failure_that_needs_nothing_gives_the_empty_list() {
        assert_eq!(ddmin(&[1, 2, 3], |_| Outcome::Fails), Vec::<u32>::new());
    }

    #[test]
    fn a_stop_keeps_the_smallest_failing_list_found_so_far() {
        let items: Vec<u32> = (0..8).collect();
        let mut tests = 0;
        let needed = fails_with(&[1]);
        let found = ddmin(&items, |s| {
            tests += 1;
            match tests {
                1 | 2 => needed(s), // the empty list, then the first half
                _ => Outcome::Stop,
            }
        });
        assert_eq!(found, vec![0, 1, 2, 3]);
    }

    #[test]
    fn split_makes_even_consecutive_chunks() {
        assert_eq!(
            split(&[1, 2, 3, 4, 5], 3),
            vec![vec![1, 2], vec![3, 4], vec![5]]
        );
        assert_eq!(split(&[1, 2], 5), vec![vec![1], vec![2]]);
    }
}
