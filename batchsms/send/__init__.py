"""The send stage: the journal, the rate limiter and the runner that sends the plan."""
