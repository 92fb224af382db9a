//! The VInet language front end (filled by the language work).
