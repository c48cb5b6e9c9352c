//! `GetCallerIdentity`: who the credentials of the request belong to. No permission is needed
//! and no policy is consulted, so even an explicit deny does not block it (reference §8.2).

use super::xml::XmlWriter;
use crate::model::Principal;

/// The members of `<GetCallerIdentityResult>`: `Arn`, `UserId` (`AIDA...` for users,
/// `AROA...:<session>` for role sessions, the account for root) and `Account`.
pub fn write_result(w: &mut XmlWriter, principal: &Principal) {
    w.element("Arn", &principal.arn)
        .element(
            "UserId",
            principal.unique_id().unwrap_or(&principal.account),
        )
        .element("Account", &principal.account);
}
