//! Strong passwords for `set-password` without one: 20 characters from the OS-seeded CSPRNG
//! (rand's `ThreadRng`), at least one each of lower case, upper case, digit and symbol,
//! without look-alikes (0/O, 1/l/I) so a person can type it.

use rand::Rng;
use rand::seq::SliceRandom;

const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const DIGITS: &[u8] = b"23456789";
const SYMBOLS: &[u8] = b"-_.+=!@%^*";
/// Generated length (~120 bits).
pub const LENGTH: usize = 20;

/// A new random password.
pub fn generate() -> String {
    let mut rng = rand::rng();
    let all: Vec<u8> = [LOWER, UPPER, DIGITS, SYMBOLS].concat();
    let mut chars: Vec<u8> = [LOWER, UPPER, DIGITS, SYMBOLS]
        .iter()
        .map(|class| class[rng.random_range(0..class.len())])
        .collect();
    while chars.len() < LENGTH {
        chars.push(all[rng.random_range(0..all.len())]);
    }
    chars.shuffle(&mut rng);
    chars.into_iter().map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strong_and_distinct() {
        let a = generate();
        assert_eq!(a.len(), LENGTH);
        for class in [LOWER, UPPER, DIGITS, SYMBOLS] {
            assert!(a.bytes().any(|b| class.contains(&b)), "{a}");
        }
        assert_ne!(a, generate());
    }
}
