//! The DNS stub's decoding of a query, and its answer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = cage::proxy::dns::decode(data) {
        let _ = cage::proxy::dns::encode(&q, cage::proxy::dns::Rcode::NoError, &[]);
    }
});
