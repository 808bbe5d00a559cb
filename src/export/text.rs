//! Text rendering of a captured request (the spec's "debugging slow requests" tree).
