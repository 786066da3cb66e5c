//! Random bytes for ids: straight from the operating system ([`os_fill`]), or from a
//! generator of the calling thread seeded from it once ([`thread_fill`]), which costs no
//! system call.

use std::cell::RefCell;

thread_local! {
    /// The calling thread's generator, seeded on its first use.
    static GENERATOR: RefCell<Option<fastrand::Rng>> = const { RefCell::new(None) };
}

/// Fills `bytes` from the operating system's random source.
///
/// # Panics
/// If that source fails, which a working system never does (as `getrandom`'s
/// documentation says); ids that are not random could collide, so there is no fallback.
pub(crate) fn os_fill(bytes: &mut [u8]) {
    if let Err(error) = getrandom::fill(bytes) {
        random_source_failed(error);
    }
}

/// Fills `bytes` from the calling thread's generator (wyrand, 64 bits of state), seeded
/// from the operating system on the thread's first call. Its outputs never repeat within
/// 2^64 draws, and two threads' seeds are 64 random bits apart, so their draws collide
/// with negligible probability: what ids that must differ need, without a system call
/// per id. Not for secrets.
///
/// # Panics
/// As [`os_fill`], on a thread's first call.
pub(crate) fn thread_fill(bytes: &mut [u8]) {
    GENERATOR.with(|generator| {
        let mut generator = generator.borrow_mut();
        let generator = generator.get_or_insert_with(|| {
            let mut seed = [0; 8];
            os_fill(&mut seed);
            fastrand::Rng::with_seed(u64::from_le_bytes(seed))
        });
        generator.fill(bytes);
    });
}

#[cold]
fn random_source_failed(error: getrandom::Error) -> ! {
    panic!("the operating system's random source failed: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_of_one_thread_and_of_two_threads_differ() {
        let draw = || {
            let mut bytes = [0; 10];
            thread_fill(&mut bytes);
            bytes
        };
        let mut draws: Vec<[u8; 10]> = (0..1000).map(|_| draw()).collect();
        draws.extend(
            std::thread::spawn(move || (0..1000).map(|_| draw()).collect::<Vec<_>>())
                .join()
                .expect("no panic"),
        );
        let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
        assert_eq!(distinct.len(), 2000);
    }
}
