"""SIR: recover the infection and recovery rates from epidemic counts."""
