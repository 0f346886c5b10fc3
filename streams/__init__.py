"""The Faust application, topic catalog, codecs and command line: wiring only."""
