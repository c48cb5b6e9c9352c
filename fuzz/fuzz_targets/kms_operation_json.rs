//! The JSON body of every KMS operation, through the real router of an in-process server
//! (software root), signed: decoding, validation with AWS's wording, and the service behind it.
//! The first byte picks the operation. Every answer must be JSON; an error must be AWS's
//! `{"__type", "message"}` with a 4xx status, never KMSInternalException.
#![no_main]

use kms_fuzz::{check_error_shape, Kms, OPERATIONS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let operation = OPERATIONS[pick as usize % OPERATIONS.len()];
    let kms = Kms::get();
    let answer = kms.call(operation, body);
    check_error_shape(operation, body, &answer);
    if answer.status == 200 {
        answer.json();
    }
});
