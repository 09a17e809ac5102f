"""logisync's domain: pure functions and state machines, no I/O, no clock, no engine."""
