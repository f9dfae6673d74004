"""The derivative engine: Taylor arithmetic on jets, input derivatives of a network on either backend, the networks."""
