//! (filled in by its route group)
