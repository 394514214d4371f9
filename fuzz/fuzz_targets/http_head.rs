//! The proxy's reading of a request head, then its parse.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((head, _rest)) = cage::proxy::http::read_head(&mut std::io::Cursor::new(data), 8192) {
        let _ = cage::proxy::http::parse_request(&head);
    }
    let _ = cage::proxy::http::parse_request(data);
});
