//! Arbitrary bytes from a voice port, cut into arbitrary reads, through the
//! frame reassembly: never a panic, at most one partial frame held, and the
//! same frames as the unsplit stream.
#![no_main]

use crossline_modem::voice::{AlignmentGuard, FRAME_BYTES, FrameAssembler, encode_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the read sizes (1..=256), the rest is the stream.
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut) + 1;
    let mut whole = Vec::new();
    FrameAssembler::new().push(stream, |f| whole.push(f));
    let mut asm = FrameAssembler::new();
    let mut split = Vec::new();
    for (i, piece) in stream.chunks(cut).enumerate() {
        // vary the size: every other read is one byte shorter
        let (a, b) = piece.split_at(if i % 2 == 1 { piece.len() / 2 } else { piece.len() });
        asm.push(a, |f| split.push(f));
        asm.push(b, |f| split.push(f));
        assert!(asm.pending() < FRAME_BYTES);
    }
    assert_eq!(whole, split);
    assert_eq!(asm.pending(), stream.len() % FRAME_BYTES);
    let mut guard = AlignmentGuard::new();
    for (f, bytes) in whole.iter().zip(stream.chunks_exact(FRAME_BYTES)) {
        assert_eq!(&encode_frame(f)[..], bytes);
        let _ = guard.check(f);
    }
});
