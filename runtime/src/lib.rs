//! The router runtime (filled by the runtime work).
