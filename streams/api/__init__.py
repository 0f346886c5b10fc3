"""The HTTP API (contract section 6): routes, tokens, which worker owns which key."""
