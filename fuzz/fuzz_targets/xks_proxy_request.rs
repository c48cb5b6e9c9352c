//! The proxy side of the XKS Proxy API: request paths and bodies of every operation through the
//! real router of an in-process proxy (SoftHSM), signed as AWS KMS signs. The first byte picks
//! the operation's path (or takes the path from the input); every answer must be JSON, errors
//! the spec's `{"errorName", "errorMessage"}` with the name's status (never InternalException
//! for client input).
#![no_main]

use kms_fuzz::{Proxy, XKS_KEY_ID, XKS_PREFIX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (path, body) = match pick % 5 {
        0 => (format!("/{XKS_PREFIX}/kms/xks/v1/health"), rest),
        1 => (
            format!("/{XKS_PREFIX}/kms/xks/v1/keys/{XKS_KEY_ID}/metadata"),
            rest,
        ),
        2 => (
            format!("/{XKS_PREFIX}/kms/xks/v1/keys/{XKS_KEY_ID}/encrypt"),
            rest,
        ),
        3 => (
            format!("/{XKS_PREFIX}/kms/xks/v1/keys/{XKS_KEY_ID}/decrypt"),
            rest,
        ),
        _ => {
            let mut parts = rest.splitn(2, |b| *b == b'\n');
            let path = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            (path, parts.next().unwrap_or_default())
        }
    };
    let proxy = Proxy::get();
    let answer = proxy.call(&path, body);
    if answer.status == 0 {
        return; // not a URI at all: no request can carry it
    }
    if answer.status == 200 {
        let _ = answer.json();
        return;
    }
    let v = answer.json();
    let name = v
        .get("errorName")
        .and_then(|n| n.as_str())
        .unwrap_or_else(|| panic!("HTTP {} without errorName: {v}", answer.status));
    let parsed =
        xks_wire::ErrorName::parse(name).unwrap_or_else(|| panic!("unknown errorName {name}"));
    assert_eq!(answer.status, parsed.http_status(), "{name}");
    assert!(
        answer.status != 500,
        "InternalException for client input {:?}: {v}",
        String::from_utf8_lossy(body)
    );
});
