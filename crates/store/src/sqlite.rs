//! SQLite implementation of the store traits (in progress).
