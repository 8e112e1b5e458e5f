//! The repr parser must answer every input with a value or a refusal,
//! never a panic, a hang or a stack overflow.
#![no_main]

use celeriac::pyrepr::{parse_args, parse_kwargs, Dialect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for dialect in [Dialect::Saferepr, Dialect::Python] {
            let _ = parse_args(text, dialect);
            let _ = parse_kwargs(text, dialect);
        }
    }
});
