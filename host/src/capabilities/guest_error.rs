//! The guest edge of errors: a host-side failure becomes the WIT `error` a monitor sees.

use crate::aws::transport::TransportError;
use crate::bindings::sentinela::plugin::types::{AwsError, Error};

/// What a monitor is told about a failed AWS request.
pub fn guest_error(error: TransportError) -> Error {
    match error {
        TransportError::Invalid(e) => Error::Invalid(e),
        e @ (TransportError::RequestTooLarge { .. } | TransportError::ResponseTooLarge(_)) => {
            Error::Limit(e.to_string())
        }
        e @ (TransportError::Timeout(_)
        | TransportError::Unavailable(_)
        | TransportError::Credentials(_)) => Error::Unavailable(e.to_string()),
        TransportError::Service(e) => Error::Aws(AwsError {
            code: e.code,
            message: e.message,
            status: e.status,
            retryable: e.retryable,
        }),
    }
}
