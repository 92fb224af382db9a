//! Certificate generation (filled by the proof work).
