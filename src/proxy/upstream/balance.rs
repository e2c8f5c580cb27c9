//! How a pool picks a server, as pure functions over the candidates that
//! can take a request now (each with its weight and requests in flight):
//!
//! - smooth weighted round robin, nginx's: every pick adds each candidate's
//!   weight to its running score, takes the highest and takes the total
//!   off it, so weights 5:1:1 give `a a b a c a a` rather than five `a` in
//!   a row;
//! - least connections relative to weight, ties broken from a rotating
//!   start so that an idle pool is still spread;
//! - the power of two random choices: the less loaded of two candidates
//!   drawn at random;
//! - weighted rendezvous hashing: each candidate scores `weight / -ln(u)`
//!   with `u` drawn from the hash of the key and the server, the highest
//!   wins. Removing a server moves only the keys it had, and a server that
//!   comes back takes back exactly those.

use std::cell::Cell;
use std::hash::{DefaultHasher, Hash, Hasher};

/// What a picker knows of one candidate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    /// The server's index in its pool.
    pub(crate) index: usize,
    pub(crate) weight: u32,
    pub(crate) in_flight: usize,
    /// A stable hash of the server's address, for rendezvous hashing.
    pub(crate) id: u64,
}

/// One smooth weighted round-robin pick; `current` holds the running score
/// of every server of the pool, by index.
pub(crate) fn round_robin(candidates: &[Candidate], current: &mut [i64]) -> Option<usize> {
    let total: i64 = candidates.iter().map(|c| i64::from(c.weight)).sum();
    let mut best: Option<usize> = None;
    for c in candidates {
        let score = current.get_mut(c.index)?;
        *score += i64::from(c.weight);
        if best.is_none_or(|b| current[b] < current[c.index]) {
            best = Some(c.index);
        }
    }
    let best = best?;
    current[best] -= total;
    Some(best)
}

/// Whether `a` is less loaded than `b`, relative to their weights.
fn lighter(a: &Candidate, b: &Candidate) -> bool {
    (a.in_flight as u128) * u128::from(b.weight) < (b.in_flight as u128) * u128::from(a.weight)
}

/// The candidate with the fewest requests in flight per weight; `start`
/// rotates which of equally loaded ones wins.
pub(crate) fn least_conn(candidates: &[Candidate], start: usize) -> Option<usize> {
    let n = candidates.len();
    let mut best: Option<&Candidate> = None;
    for offset in 0..n {
        let c = &candidates[(start + offset) % n];
        if best.is_none_or(|b| lighter(c, b)) {
            best = Some(c);
        }
    }
    best.map(|c| c.index)
}

/// The less loaded of two distinct candidates drawn at random.
pub(crate) fn random_two(candidates: &[Candidate]) -> Option<usize> {
    match candidates.len() {
        0 => None,
        1 => Some(candidates[0].index),
        n => {
            let a = random_below(n);
            let b = (a + 1 + random_below(n - 1)) % n;
            let (a, b) = (&candidates[a], &candidates[b]);
            Some(if lighter(b, a) { b.index } else { a.index })
        }
    }
}

/// The candidate with the highest weighted rendezvous score for `key`.
pub(crate) fn rendezvous(candidates: &[Candidate], key: u64) -> Option<usize> {
    candidates
        .iter()
        .map(|c| (score(key, c), c.index))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, index)| index)
}

/// `weight / -ln(u)`, `u` in (0, 1) from the key and the server.
fn score(key: u64, c: &Candidate) -> f64 {
    let mixed = mix(key ^ mix(c.id));
    // 53 bits into (0, 1), never 0 so that ln stays finite.
    let u = ((mixed >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    f64::from(c.weight) / -u.ln()
}

/// splitmix64's finaliser: every input bit moves every output bit.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A stable hash of `value`: the same in every process, so that a restart
/// sends each key where it went before.
pub(crate) fn stable_hash(value: impl Hash) -> u64 {
    // DefaultHasher::new() uses fixed keys.
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    mix(now ^ stable_hash(std::thread::current().id()))
}

/// A number below `n` (n > 0), from a per-thread xorshift generator: the
/// choice needs spread, not secrecy.
fn random_below(n: usize) -> usize {
    RNG.with(|rng| {
        let mut x = rng.get() | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        rng.set(x);
        (mix(x) % n as u64) as usize
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(weights: &[u32]) -> Vec<Candidate> {
        weights
            .iter()
            .enumerate()
            .map(|(index, &weight)| Candidate {
                index,
                weight,
                in_flight: 0,
                id: stable_hash(format!("http://10.0.0.{index}:80")),
            })
            .collect()
    }

    #[test]
    fn round_robin_is_smooth_and_weighted() {
        let c = servers(&[5, 1, 1]);
        let mut current = vec![0; 3];
        let picks: Vec<usize> = (0..7).map(|_| round_robin(&c, &mut current).unwrap()).collect();
        assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn least_conn_takes_the_lightest_per_weight() {
        let mut c = servers(&[1, 2, 1]);
        c[0].in_flight = 1;
        c[1].in_flight = 1;
        c[2].in_flight = 1;
        assert_eq!(least_conn(&c, 0), Some(1));
        c[2].in_flight = 0;
        assert_eq!(least_conn(&c, 0), Some(2));
    }

    #[test]
    fn random_two_avoids_the_loaded_one_of_two() {
        let mut c = servers(&[1, 1]);
        c[0].in_flight = 5;
        for _ in 0..100 {
            assert_eq!(random_two(&c), Some(1));
        }
    }

    #[test]
    fn removing_one_of_n_servers_moves_only_its_keys() {
        for n in [3usize, 5, 10] {
            let all = servers(&vec![1; n]);
            let fewer: Vec<Candidate> = all[..n - 1].to_vec();
            let keys = 20_000u64;
            let mut moved = 0;
            let mut owned_by_removed = 0;
            for k in 0..keys {
                let key = stable_hash(k);
                let before = rendezvous(&all, key).unwrap();
                let after = rendezvous(&fewer, key).unwrap();
                if before == n - 1 {
                    owned_by_removed += 1;
                }
                if before != after {
                    moved += 1;
                    assert_eq!(before, n - 1, "a key moved between two servers that stayed");
                }
            }
            assert_eq!(moved, owned_by_removed);
            let share = moved as f64 / keys as f64;
            assert!(
                share <= 1.0 / n as f64 + 0.05,
                "{n} servers: {share} of keys moved"
            );
        }
    }

    #[test]
    fn rendezvous_follows_weights() {
        let c = servers(&[1, 3]);
        let heavy = (0..20_000u64)
            .filter(|k| rendezvous(&c, stable_hash(k)) == Some(1))
            .count();
        let share = heavy as f64 / 20_000.0;
        assert!((0.70..0.80).contains(&share), "{share}");
    }
}
