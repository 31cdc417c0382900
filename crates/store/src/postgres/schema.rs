//! The schema of the PostgreSQL engine and its migrations, versioned in
//! `closedloop_schema_version`. Applied under an advisory lock, so receivers starting at the
//! same time migrate once.

use crate::error::Result;

/// The schema version this closedloop writes.
pub(crate) const VERSION: i64 = 0;

/// Brings the database to [`VERSION`].
pub(crate) fn migrate(_client: &mut super::Client) -> Result<()> {
    Ok(())
}
