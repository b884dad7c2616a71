"""Mutation testing (``make mutate``): how many plausible one-line slips the test suite catches."""
