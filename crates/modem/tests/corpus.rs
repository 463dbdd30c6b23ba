//! Runs the checked-in fuzz corpus (crates/modem/fuzz/corpus/at_parser)
//! through the AT parser on stable, as the fuzz target does, so CI exercises
//! every input the fuzzer ever kept.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_modem::parser::{Splitter, exercise};

#[test]
fn fuzz_corpus_parses_without_panic_and_split_invariant() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/at_parser");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let _ = exercise(&data);
        let (mut a, mut b) = (Splitter::new(), Splitter::new());
        a.push(&data);
        for byte in &data {
            b.push(std::slice::from_ref(byte));
        }
        loop {
            let (x, y) = (a.next_frame(), b.next_frame());
            assert_eq!(x, y, "{}", path.display());
            if x.is_none() {
                break;
            }
        }
        n += 1;
    }
    assert!(n >= 10, "corpus has only {n} inputs");
}
