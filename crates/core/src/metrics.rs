//! Contact-center metrics computed from routing records.
