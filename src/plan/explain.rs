//! `explain`: is a path or host allowed, and by which rule.
