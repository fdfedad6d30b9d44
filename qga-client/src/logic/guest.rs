//! Checks made before a request is sent, so that the agent never sees what it would refuse.

use qga_proto::base64::Base64Bytes;
use qga_proto::qga::GuestSetUserPassword;

use crate::error::{Error, Result};

/// The `guest-set-user-password` request, or [`Error::InvalidArgument`] for a password with
/// a newline or a user name that is empty or has `:` or a newline.
pub(crate) fn set_user_password(
    username: &str,
    password: &[u8],
    crypted: bool,
) -> Result<GuestSetUserPassword> {
    if username.is_empty() || username.contains([':', '\n']) {
        return Err(Error::InvalidArgument(
            "a user name must be non-empty and contain no ':' or newline".into(),
        ));
    }
    if password.contains(&b'\n') {
        return Err(Error::InvalidArgument(
            "a password must not contain a newline".into(),
        ));
    }
    Ok(GuestSetUserPassword {
        username: username.to_owned(),
        password: Base64Bytes(password.to_vec()),
        crypted,
    })
}
