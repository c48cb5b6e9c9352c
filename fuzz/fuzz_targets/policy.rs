//! Parses arbitrary bytes as every policy kind and evaluates whatever parses against a few
//! requests: nothing may panic, and evaluation must be deterministic.
#![no_main]

use kms_policy::{
    authorize, AnyPrincipalExists, AuthorizationRequest, Caller, IdentityPolicies, Policy,
    PolicyKind, RequestContext, Resource,
};
use libfuzzer_sys::fuzz_target;

fn contexts() -> Vec<RequestContext> {
    let key = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let mut out = Vec::new();
    let callers = [
        Caller::from_arn("arn:aws:iam::111122223333:user/alice"),
        Caller::assumed_role("arn:aws:iam::111122223333:role/app", "s1"),
        Caller::from_arn("arn:aws:iam::444455556666:root"),
    ];
    for caller in callers.into_iter().flatten() {
        if let Ok(resource) = Resource::arn(key) {
            out.push(
                RequestContext::new(caller.clone(), "kms:Decrypt", resource)
                    .with_encryption_context([("stage", "restricted"), ("k", "v")])
                    .with("aws:SourceIp", "10.1.2.3")
                    .with("aws:CurrentTime", "2020-01-01T00:00:00Z")
                    .with_multi("kms:GrantOperations", ["Encrypt", "Decrypt"]),
            );
        }
        out.push(RequestContext::new(caller, "kms:ListKeys", Resource::Any));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let kinds = [
        PolicyKind::Key,
        PolicyKind::Identity,
        PolicyKind::Trust,
        PolicyKind::Session,
    ];
    for kind in kinds {
        let Ok(policy) = Policy::parse(text, kind, &AnyPrincipalExists) else {
            continue;
        };
        for context in contexts() {
            let first = policy.evaluate(&context);
            assert_eq!(first, policy.evaluate(&context));
            let identity = [&policy];
            let decision = authorize(
                &AuthorizationRequest::new(&context)
                    .resource_policy(&policy)
                    .identity_policies(IdentityPolicies {
                        principal_policies: &identity,
                        session_policies: Some(&identity),
                    })
                    .cross_account_capable(true),
            );
            if let Some(denial) = decision.denial() {
                let _ = denial.message(&context);
            }
        }
    }
});
