//! The API's limits, as the error the engine must return when one is exceeded.

use inmem_engine::{Error, Limit};

/// `Ok` if `actual` is within `max`, else the engine's `LimitExceeded` for `limit`.
pub(crate) fn check_limit(limit: Limit, actual: usize, max: usize) -> Result<(), Error> {
    if actual > max {
        return Err(Error::LimitExceeded { limit, actual: actual as u64, max: max as u64 });
    }
    Ok(())
}
