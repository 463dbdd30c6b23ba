//! Benchmarks: decoding an SMS-DELIVER and encoding a 3-part Cyrillic SUBMIT.
//! Run with `cargo bench -p crossline-pdu` (quick: add `-- --quick`).

// Benchmark setup may unwrap: a failure here is a broken benchmark, not input.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use crossline_pdu::{Address, Direction, SubmitOptions, decode, decode_hex, encode_submit};

fn bench(c: &mut Criterion) {
    let deliver = "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37";
    let bytes: Vec<u8> = (0..deliver.len() / 2)
        .map(|i| u8::from_str_radix(deliver.get(2 * i..2 * i + 2).unwrap(), 16).unwrap())
        .collect();
    c.bench_function("decode DELIVER (GSM 7-bit)", |b| {
        b.iter(|| decode(black_box(&bytes), Direction::MobileTerminated, true))
    });
    let ucs2 = "00040C9183501032547600086211323151238024041F04400438043204560442002C0020044F043A00200441043F0440043004320438003F";
    c.bench_function("decode_hex DELIVER (UCS2 Cyrillic)", |b| {
        b.iter(|| decode_hex(black_box(ucs2), Direction::MobileTerminated, true))
    });

    let to = Address::parse("+380501234567").unwrap();
    let text = "Привіт, як справи? ".repeat(9);
    let opts = SubmitOptions::default();
    assert_eq!(encode_submit(&to, &text, &opts).unwrap().len(), 3);
    c.bench_function("encode_submit 3-part Cyrillic", |b| {
        b.iter(|| encode_submit(black_box(&to), black_box(&text), &opts))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
